"""Hides the few differences between MicroPython and CPython (ticks, wall clock, heap, random).
Every other firmware module imports time/gc helpers from here, never from `time`/`gc` directly.
It also holds the node's one definition of the HJ 212 data flags (FLAGS): every module loads this
one first, so the checks, the analyzers and the record codec share it at no heap cost (in
reccodec.py, loaded by the config checks, a profiles config needed 2 KB more heap to start)."""
import sys
import time
import gc

IS_MP = sys.implementation.name == "micropython"
FLAGS = "NFMSDCTB"  # HJ 212 data flags; reccodec stores a flag as its index here (3 bits)
# const(): `_NAME = const(1)` is folded into the bytecode by the MicroPython compiler and, with the
# leading underscore, never stored in the module's globals (-37 bytes of heap a name on the device).

if IS_MP:
    from micropython import const
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
    sleep_ms = time.sleep_ms
    # Some ports count from 2000-01-01 instead of 1970; the wire contract wants Unix ms.
    _EPOCH_OFFSET_S = 946684800 if time.gmtime(0)[0] == 2000 else 0

    def now_ms():
        """Wall-clock time, integer milliseconds since the Unix epoch."""
        if hasattr(time, "time_ns"):
            return time.time_ns() // 1000000 + _EPOCH_OFFSET_S * 1000
        return (int(time.time()) + _EPOCH_OFFSET_S) * 1000

    def mem_alloc():
        return gc.mem_alloc()

    def mem_free():
        return gc.mem_free()

    def print_exc(e):
        sys.print_exception(e)
else:
    # CPython (tests, PC tools): the CPython half lives in host/, the folder that never reaches a device
    sys.path.append(__file__[:-9] + "host")  # __file__ ends in "compat.py"
    # imported by a long string: an import statement would intern the name on the device too
    mod = __import__("compat_cpython")
    ticks_ms, ticks_diff, ticks_add, sleep_ms = mod.ticks_ms, mod.ticks_diff, mod.ticks_add, mod.sleep_ms
    now_ms, mem_alloc, mem_free, print_exc, const = mod.now_ms, mod.mem_alloc, mod.mem_free, mod.print_exc, mod.const
    del mod


def collect():
    # CPython (tests): the young generation only; a full collection walks the whole test process
    # (0.1 s each inside pytest) and the node calls this every cycle. The device's heap is MicroPython's.
    gc.collect() if IS_MP else gc.collect(0)


def call_once(mod, fn, *args):
    """mod.fn(*args) from a module needed only now (startup, rare paths): imported for the call and
    dropped from sys.modules after, so its bytecode can be collected, unless a caller further up
    the stack imported it first (then that caller drops it)."""
    had = mod in sys.modules
    try:
        return getattr(__import__(mod), fn)(*args)
    finally:
        if not had:
            sys.modules.pop(mod, None)


try:
    import random as _random

    def rand_below(n):
        """Uniform-ish int in [0, n); used only for backoff jitter."""
        if n <= 1:
            return 0
        return _random.getrandbits(30) % n
except ImportError:  # ports built without random: jitter from the tick counter is good enough
    def rand_below(n):
        if n <= 1:
            return 0
        return ticks_ms() % n
