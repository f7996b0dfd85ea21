"""Startup only: which registers an analyzer reads in one request. Used while the config is checked
(config.py: the watchdog bound) and while the analyzers are built (nodesetup.py); a module of its
own so that neither loads the other's code for it (at startup the heap is the tightest)."""
from decode import register_count

_STATUS = -1  # member index marking the status register inside a read block (as analyzer.py)


def _nregs(typ):
    return 1 if typ == "bit" else register_count(typ)


def plan_blocks(values, status, max_regs=125):
    """Group value/status registers into as few read requests as possible: same fc, contiguous
    (no gaps: unmapped registers would make the whole request fail), at most max_regs (2000 bits).
    Returns [[fc, start, count, [(member, offset), ...]], ...]; member is a value index or -1."""
    items = []
    for i, v in enumerate(values):
        items.append((v["fc"], v["addr"], _nregs(v["type"]), i))
    if status is not None:
        items.append((status["fc"], status["addr"], 1, _STATUS))
    items.sort(key=lambda t: (t[0], t[1], t[3]))
    blocks = []
    cur = None
    for fc, addr, n, member in items:
        top = 2000 if fc <= 2 else max_regs
        if (cur is not None and fc == cur[0] and addr <= cur[1] + cur[2]
                and max(cur[1] + cur[2], addr + n) - cur[1] <= top):
            cur[2] = max(cur[1] + cur[2], addr + n) - cur[1]
        else:
            cur = [fc, addr, n, []]
            blocks.append(cur)
        cur[3].append((member, addr - cur[1]))
    return blocks
