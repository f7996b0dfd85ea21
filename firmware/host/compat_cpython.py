"""compat.py's CPython half: MicroPython's ticks, wall clock, heap figures and exception printing
on CPython. A module of its own so that none of it is in the device's heap (each name a module
holds costs heap on the device, even in a branch that never runs there)."""
import time

_T0 = time.monotonic_ns()
_TICKS_PERIOD = 1 << 30  # MicroPython's ticks wrap at 2**30 on most ports; mimic it so wrap bugs show up here too


def ticks_ms():
    return ((time.monotonic_ns() - _T0) // 1000000) & (_TICKS_PERIOD - 1)


def ticks_diff(a, b):
    d = (a - b) & (_TICKS_PERIOD - 1)
    if d >= _TICKS_PERIOD // 2:
        d -= _TICKS_PERIOD
    return d


def ticks_add(t, delta):
    return (t + delta) & (_TICKS_PERIOD - 1)


def sleep_ms(ms):
    if ms > 0:
        time.sleep(ms / 1000.0)


def now_ms():
    """Wall-clock time, integer milliseconds since the Unix epoch."""
    return time.time_ns() // 1000000


# CPython has no gc.mem_alloc/mem_free: heap figures are a MicroPython concept, report 0.

def mem_alloc():
    return 0


def mem_free():
    return 0


def print_exc(e):
    import traceback
    traceback.print_exception(type(e), e, e.__traceback__)


def const(x):
    return x
