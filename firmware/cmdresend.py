"""The resend op of the command channel (cmdchan.py, docs/ARCHITECTURE.md section 3): records
from..to published again from flash, as they were first sent (the same bytes, the same
signature), one record a publish. Only what is still on flash can be sent: the queue drops a
segment once the broker acknowledged every record in it; the answer says which seqs went. Loaded
for the op only (compat.call_once) and dropped after."""
from record import put_record_rows


def resend(node, args):
    a = args.get("from")
    b = args.get("to", a)
    q = node.queue
    if type(a) is not int or type(b) is not int or not 0 <= a <= b or b - a >= 10000:
        raise ValueError("args: from and to, seqs with from <= to, at most 10000 of them")
    if b > q.last_seq:
        raise ValueError("to: the last record stored is %d" % q.last_seq)
    first = None
    n = 0
    after = a - 1
    out = node._out  # the loop's record buffer (the loop waits while a command runs)
    while after < b:
        items = q.peek(1, after, node._rows)
        if not items or items[0][0] > b:
            break
        seq, ts, clk, schema, rows = items[0]
        items = None
        out[:] = b""
        put_record_rows(out, ts, seq, clk, schema, rows)
        rows = None
        node._publish_signed(node.data_topic, out, False)
        node._feed()
        if first is None:
            first = seq
        n += 1
        after = seq
    return '{"first":%s,"last":%s,"sent":%d}' % (first, after if n else None, n)
