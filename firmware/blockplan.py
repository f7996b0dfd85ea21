"""Startup only: which registers an analyzer reads in one request. Used while the config is checked
(config.py: the watchdog bound) and while the analyzers are built (nodesetup.py); a module of its
own so that neither loads the other's code for it (at startup the heap is the tightest)."""
from decode import register_count
from compat import const

_STATUS = -1  # member index marking the status register inside a read block (as analyzer.py)
_FC = const(0)  # a block: [fc, start, count, [(member, offset), ...]]
_START = const(1)
_COUNT = const(2)
_MEMBERS = const(3)


def _nregs(typ):
    return 1 if typ == "bit" else register_count(typ)


def plan_blocks(values, status, max_regs=125):
    """Group value/status registers into as few read requests as possible: same fc, contiguous
    (no gaps: unmapped registers would make the whole request fail), at most max_regs (2000 bits).
    Returns [[fc, start, count, [(member, offset), ...]], ...]; member is a value index or -1."""
    items = []  # (fc, addr, member, registers): sorted by fc, address, then member
    for i, v in enumerate(values):
        items.append((v["fc"], v["addr"], i, _nregs(v["type"])))
    if status is not None:
        items.append((status["fc"], status["addr"], _STATUS, 1))
    items.sort()  # (fc, addr, member) is unique: the registers count never decides
    blocks = []
    cur = None
    for fc, addr, member, n in items:
        top = 2000 if fc <= 2 else max_regs
        if (cur is not None and fc == cur[_FC] and addr <= cur[_START] + cur[_COUNT]
                and max(cur[_START] + cur[_COUNT], addr + n) - cur[_START] <= top):
            cur[_COUNT] = max(cur[_START] + cur[_COUNT], addr + n) - cur[_START]
        else:
            cur = [fc, addr, n, []]
            blocks.append(cur)
        cur[_MEMBERS].append((member, addr - cur[_START]))
    return blocks
