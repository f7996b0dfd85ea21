"""The probe op of the command channel (cmdchan.py, docs/ARCHITECTURE.md section 3): each analyzer
read now, its raw registers beside the decoded values. Loaded for the probe only (compat.call_once)
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
