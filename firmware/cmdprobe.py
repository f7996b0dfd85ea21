"""The probe op of the command channel (cmdchan.py, docs/ARCHITECTURE.md section 3): each analyzer
read now, its raw registers beside the decoded values; with args scan, who answers on a bus. Loaded for the probe only (compat.call_once)
and dropped after: apart from cmdchan.py so the other ops (a config, say, whose payload is held
meanwhile) load less code in a 64k heap."""
import struct
from binascii import hexlify


def sample(node, name):
    """probe: each analyzer (or the one named) read now, as a poll reads it: its read blocks' raw
    registers (hex; bits as 0/1) as [fc, start, raw, members] (members: value index, offset in the
    block; -1 the status word), then each value as "param":[value, flag, type, order] after scaling,
    as a record would carry it. The analyzer's values layout (analyzer._V_*: param 0, type 2, order
    3, 9 entries a value) is read here by number; tests/firmware/test_fw_layout.py keeps them in step.
    (Names reused and the class made here, not at import: each new name and a class cost heap.)"""
    from record import format_number

    class _Tap:
        # The analyzer's master, keeping what each read returned: the probe shows the very registers
        # the values were decoded from (a second read could differ: analyzers move).
        def __init__(self, master):
            self.master = master
            self.out = {}

        def read_registers(self, unit, fc, start, *rest):
            got = self.master.read_registers(unit, fc, start, *rest)
            self.out[(fc, start)] = hexlify(b"".join([struct.pack(">H", r) for r in got])).decode()
            return got

        def read_bits(self, unit, fc, start, *rest):
            got = self.master.read_bits(unit, fc, start, *rest)
            self.out[(fc, start)] = "".join(["1" if b else "0" for b in got])
            return got

    out = []
    for a in node.analyzers:
        if name is not None and a.name != name:
            continue
        got = {}
        tap = _Tap(a.master)
        a.master = tap
        try:
            a.sample(got)
        finally:
            a.master = tap.master
        blocks = []
        for fc, start, count, members in a.blocks:
            blocks.append('[%d,%d,"%s",[%s]]' % (fc, start, tap.out.get((fc, start), "no answer (flag B or D)"),
                                                ",".join(["%d" % m for m in members])))
        v = a.vals
        vals = []
        for j in range(0, len(v), 9):
            x, f = got.get(v[j], (None, "B"))
            vals.append('"%s":[%s,"%s","%s","%s"]' % (v[j], format_number(x), f, v[j + 2], v[j + 3]))
        out.append('"%s":{"unit":%d,"blocks":[%s],"values":{%s}}' % (a.name, a.unit, ",".join(blocks), ",".join(vals)))
    if not out:
        raise ValueError("no analyzer named %s" % name)
    return "{" + ",".join(out) + "}"


def scan(node, args):
    """probe with args scan [first, last] (unit ids), bauds [..] (a UART bus only), timeout_ms, and
    analyzer (whose bus; the first by default): who answers FC03 register 0 (count 1) at each unit id
    and baud. An answer or a Modbus exception both mean a device is there. The bus's baud is put back
    after; the poll loop waits meanwhile (the watchdog and the MQTT link are kept alive)."""
    name = args.get("analyzer")
    a = [x for x in node.analyzers if name is None or x.name == name]
    if not a:
        raise ValueError("no analyzer named %s" % name)
    m = a[0].master
    t = m.transport
    lo, hi = args.get("scan") or (1, 247)
    bauds = args.get("bauds") or [None]
    ms = args.get("timeout_ms", 100)
    if not (type(lo) is int and type(hi) is int and 1 <= lo <= hi <= 247 and type(ms) is int and 20 <= ms <= 2000):
        raise ValueError("args: scan [first, last] unit ids 1..247 and timeout_ms 20..2000 expected")
    if bauds != [None] and not hasattr(t, "set_baud"):
        raise ValueError("bauds: this bus is not a UART (%s); scan it without bauds" % a[0].name)
    out = []
    n = 0
    try:
        for b in bauds:
            if b is not None:
                t.set_baud(b)
            for u in range(lo, hi + 1):
                try:
                    m.read_registers(u, 3, 0, 1, ms)
                    out.append('[%d,%s,"answers"]' % (u, b or "null"))
                except Exception as e:
                    if hasattr(e, "code"):  # a Modbus exception: someone is there
                        out.append('[%d,%s,"exception %d"]' % (u, b or "null", e.code))
                n += 1
                if n % 8 == 0:
                    node._feed()
                    node.mqtt.maintain()
    finally:
        if bauds != [None]:
            t.set_baud(t.baud0)
    return '{"analyzer":"%s","tried":%d,"found":[%s]}' % (a[0].name, n, ",".join(out))
