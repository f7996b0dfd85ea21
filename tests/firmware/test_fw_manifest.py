"""The device manifest (firmware/MANIFEST) against the sources and the build: it lists every device
file and nothing from host/, it is closed under imports (a board never misses a module), `make mpy`
packs exactly it, and a broken manifest is refused with every problem and its line."""
import glob
import os

import pytest

from edgemon.dev.fwmanifest import ManifestError, image_files, parse_manifest, read_manifest
from edgemon.dev.nodeproc import build_mpy
from fwimports import closure, graph
from fwpaths import FIRMWARE, HOST
from pathlib import Path


# Imports inside a function that only one kind of machine calls: main.py imports boardmain on an
# ESP32 only; start.py's PC start imports hw_unix, its board start (start.board_node) hw_esp32.
ONE_MACHINE_ONLY = {"board": {("start", "hw_unix")}, "pc": {("main", "boardmain"), ("start", "hw_esp32")}}


def _stem(path):
    return os.path.basename(path)[:-3]


def _edges(paths):
    """{module: firmware or host modules it imports} for the given sources."""
    known = {_stem(p) for p in glob.glob(os.path.join(FIRMWARE, "*.py")) + glob.glob(os.path.join(HOST, "*.py"))}
    g = graph(paths)
    return {m: {n for n in g[m].imports if n in known} for m in g}


def test_every_device_file_is_listed_and_nothing_from_host():
    listed = set(image_files(Path(FIRMWARE)))
    on_disk = {os.path.relpath(p, FIRMWARE) for p in glob.glob(os.path.join(FIRMWARE, "*.py"))}
    on_disk |= {os.path.relpath(p, FIRMWARE) for p in glob.glob(os.path.join(FIRMWARE, "profiles", "*.json"))}
    assert sorted(on_disk - listed) == [], "in firmware/ but not in firmware/MANIFEST: add them, or move host-only code to firmware/host/"
    assert sorted(listed - on_disk) == [], "listed but not a device file"
    host = {os.path.basename(p) for p in glob.glob(os.path.join(HOST, "*.py"))}
    assert {"modbus_slave.py", "regencode.py", "record_tools.py", "compat_cpython.py", "tls.py"} <= host
    assert not host & {os.path.basename(p) for p in listed}


def test_the_manifest_is_closed_under_imports_for_each_image():
    """Each image's modules import only modules on that image: a board never misses one at runtime,
    and no device module reaches into host/ (compat.py's CPython branch is the one allowed edge)."""
    for target in (None, "board", "pc"):
        mods = {_stem(p) for p in image_files(Path(FIRMWARE), target) if p.endswith(".py")}
        edges = _edges([os.path.join(FIRMWARE, m + ".py") for m in sorted(mods)])
        roots = {"boardmain"} if target == "board" else {"main"} | ({"romboot"} if target != "board" else set())
        reach = closure(edges, roots)
        missing = {(m, n) for m in reach for n in edges.get(m, ()) if n not in mods}
        # host/tls.py stands in for MicroPython's built-in `tls` on CPython only (a device's built-in wins)
        missing -= {("compat", "compat_cpython"), ("mqtt_tls_link", "tls")} | ONE_MACHINE_ONLY.get(target, set())
        assert not missing, f"image {target or 'unix-port'}: imports of modules not on it: {sorted(missing)}"
        assert reach >= {"node", "mqtt", "flashqueue", "compat"}


def test_the_board_image_leaves_the_pc_files_out():
    board = image_files(Path(FIRMWARE), "board")
    pc = image_files(Path(FIRMWARE), "pc")
    assert "boardmain.py" in board and "hw_esp32.py" in board and "hw_unix.py" not in board and "romboot.py" not in board
    assert "hw_unix.py" in pc and "boardmain.py" not in pc
    assert set(board) | set(pc) == set(image_files(Path(FIRMWARE)))


def test_make_mpy_packs_exactly_the_manifest():
    out = build_mpy()
    built = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)
    want = sorted(p[:-3] + ".mpy" if p.endswith(".py") else p for p in image_files(Path(FIRMWARE)))
    assert built == want


def test_a_broken_manifest_is_refused_with_every_problem_and_its_line(tmp_path):
    (tmp_path / "a.py").write_text("")
    (tmp_path / "b.json").write_text("{}")
    text = "\n".join([
        "# comment", "a.py", "a.py   # again", "b.json  laptop", "gone.py", "/etc/x.py",
        "../up.py", "notes.txt", "b.json board",
    ])
    with pytest.raises(ManifestError) as e:
        parse_manifest(text, "M", tmp_path)
    lines = str(e.value).splitlines()
    assert [ln.split(":")[1] for ln in lines] == ["3", "4", "5", "6", "7", "8"]
    assert "listed twice (first on line 2)" in lines[0]
    assert "at most one of board, pc" in lines[1]
    assert "no such file" in lines[2] and "fix:" in lines[2]
    assert all(ln.startswith("M:") and "fix:" in ln for ln in lines)
    entries = parse_manifest("a.py\nb.json board\n", "M", tmp_path)
    assert [(x.path, x.only, x.line) for x in entries] == [("a.py", None, 1), ("b.json", "board", 2)]
    with pytest.raises(ManifestError, match="lists no files"):
        parse_manifest("# nothing\n", "M")
    with pytest.raises(ManifestError, match="MANIFEST: missing"):
        read_manifest(tmp_path)
