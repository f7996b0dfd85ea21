"""End-to-end confirmation, the node's half (docs/ARCHITECTURE.md section 6.1). A record leaves
the flash queue only once the gateway confirms it is in its store: a broker's PUBACK says no more
than "the broker holds it", and a broker killed before its next save loses what it held.

The gateway publishes on the node's edge/v1/{site}/{node}/confirm (retained, QoS 1; the node
subscribes beside cmd at each connect) {"upto":U,"ranges":[[lo,hi],...],"again":0|1,...,"sig":..}
signed with the node's key: every record <= U is stored, and those in the ranges. The queue frees
up to U, or from its own floor through the ranges that continue it (records an older gateway's
PUBACK freed are not the gateway's to know). "again": 1 (the gateway just connected) sends every
unconfirmed record again now. A forged one frees nothing; one beyond the last stored seq (another
queue's) is refused. node.py keeps the rest: the resend timer and the wait for a first one.

run() is loaded for the call (compat.call_once from node.py, when one came) and dropped after. signed() is
also the command channel's check (cmdchan.py)."""
import json
from binascii import hexlify


def signed(mac, payload):
    """None when payload ends in ,"sig":"<64 hex>"} that is the HMAC of the rest plus "}", else why not."""
    i = payload.rfind(b',"sig":"')
    if mac is None:
        return "refused: this node has no key (it takes signed messages only)"
    if i < 0 or payload[i + 72:] != b'"}':
        return "unsigned: no sig member at the end"
    want = hexlify(mac.digest(memoryview(payload)[:i], b"}"))
    got = payload[i + 8:i + 72]
    d = 0
    for k in range(64):
        d |= got[k] ^ want[k]
    return "forged: signature does not match" if d else None


def run(node, payload):
    """One confirmation (bytes): checked, then the flash queue frees what it covers."""
    q = node.queue
    err = signed(node.mac, payload)
    if err is None:
        try:
            payload = json.loads(payload)
            f = payload["upto"]
            if type(f) is not int:
                raise ValueError
            if f < q.acked:
                f = q.acked
            rs = payload.get("ranges", ())
            while True:
                g = None  # a range beyond a gap after f
                for r in rs:  # sorted: each may continue the one before
                    if r[0] <= f + 1 and r[1] > f:
                        f = r[1]
                    elif r[0] > f + 1:
                        g = r
                # Records right after f that flash damage made unreadable can never reach a
                # gateway: peek skips them (counted lost, reported in queue_overflow) and the
                # floor moves past them, else a gap no confirmation covers would stall the queue.
                # (Only when a range lies beyond a gap: a peek away from the send cursor costs a
                # segment scan.)
                r = q.peek(1, f, node._rows) if g is not None and f < q.last_seq else None
                if not r or r[0][0] == f + 1:
                    break
                f = r[0][0] - 1
            if f > q.last_seq:
                err = "refused: confirms seq %d, the last stored is %d (not this queue's)" % (f, q.last_seq)
        except Exception:
            err = "bad confirmation: {\"upto\": int, \"ranges\": [[lo, hi], ...]} expected"
    if err is not None:
        node._error("confirm", ValueError(err))
        return
    cf = node._cf
    if cf[0] is not None:  # the first one: from now on only a confirmation frees a record
        cf[0] = None
        p = __import__("pointer").Pointer(q.dir + "/confirmed.ptr")
        if not p.value:
            p.store(1)  # for good: a gateway that confirms was seen (no wait for one after a reboot)
        node.log("confirm: the gateway confirms; records stay on flash until it has them")
    if f > q.acked:
        q.ack(f)
        if node._sent < f:
            node._sent = f  # (those need not go again)
        cf[2] = 30000  # progress: the resend timer starts again from 30 s
        cf[1] = __import__("compat").ticks_add(__import__("compat").ticks_ms(), 30000)
    if payload.get("again") and node._sent > q.acked:
        node._sent = q.acked
