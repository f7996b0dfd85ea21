"""Paths and interpreter lookup shared by the firmware pytest modules."""
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIRMWARE = os.path.join(REPO, "firmware")
# host-only helpers (test fakes, simulators, compat.py's CPython half): never on a device
HOST = os.path.join(FIRMWARE, "host")
CASES = os.path.join(HERE, "cases")


def venv_tool(name):
    """The tool next to the running Python (same venv bin dir), else on PATH; None if missing."""
    cand = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(cand):
        return cand
    return shutil.which(name)


def need_tool(name, package):
    path = venv_tool(name)
    if path is None:
        raise AssertionError("%s not found next to %s or on PATH: pip install %s" % (name, sys.executable, package))
    return path
