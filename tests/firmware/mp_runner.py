"""Runs every test_* function of tests/firmware/cases/test_*.py under MicroPython (or CPython):
prints PASS/FAIL lines and "N passed, M failed"; exit code 1 on any failure.
Usage: micropython -X heapsize=512k tests/firmware/mp_runner.py [name-filter]"""
import sys
import os

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_cases = _here + "/cases"
_firmware = _here + "/../../firmware"
sys.path.insert(0, _cases)
sys.path.insert(0, _firmware)

import gc


def main():
    filt = sys.argv[1] if len(sys.argv) > 1 else None
    mods = sorted(n[:-3] for n in os.listdir(_cases) if n.startswith("test_") and n.endswith(".py"))
    passed = failed = 0
    for mname in mods:
        # Each case module (and the firmware modules it pulls in) is dropped after its run, so
        # the heap holds one module set at a time, as the device would.
        loaded = set(sys.modules.keys())
        try:
            mod = __import__(mname)
        except Exception as e:
            print("FAIL %s (import): %s: %s" % (mname, type(e).__name__, e))
            failed += 1
            continue
        for name in sorted(dir(mod)):
            if not name.startswith("test_"):
                continue
            fn = getattr(mod, name)
            if not callable(fn):
                continue
            full = mname + "." + name
            if filt and filt not in full:
                continue
            try:
                fn()
                print("PASS " + full)
                passed += 1
            except Exception as e:
                msg = str(e)
                print("FAIL %s: %s%s" % (full, type(e).__name__, (": " + msg) if msg else ""))
                if hasattr(sys, "print_exception"):
                    sys.print_exception(e)
                failed += 1
            gc.collect()
        mod = fn = None
        for k in list(sys.modules.keys()):
            if k not in loaded:
                del sys.modules[k]
        gc.collect()
    print("%d passed, %d failed" % (passed, failed))
    return failed


if main():
    sys.exit(1)
