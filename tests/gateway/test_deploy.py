"""deploy.py (what a board must hold, the board's hash script, the comparison) and boardlink.py (the
mpremote steps and their failures). The hash script runs here under the real MicroPython unix port,
the interpreter a board has; the whole deploy runs in tests/integration/test_commissioning.py."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import subprocess

import pytest

from edgemon.boardlink import MpremoteLink, explain
from edgemon.deploy import (MAIN_STUB, DeployError, Expected, check_node_json, compare, expected_files, hash_script,
                            parse_hashes)
from edgemon.dev.nodeproc import micropython_command

LISTING = {"files": [{"path": "node.mpy", "bytes": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}]}


def test_expected_files_are_the_image_under_rom_then_config_and_stub():
    want = expected_files(LISTING, b"{}", b"# slotboot")
    assert [e.path for e in want] == ["/rom/node.mpy", "/node.json", "/main.py", "/slotboot.py"]
    assert want[3] == Expected("/slotboot.py", hashlib.sha256(b"# slotboot").hexdigest(), 10)
    assert want[1] == Expected("/node.json", hashlib.sha256(b"{}").hexdigest(), 2)
    assert want[2].sha256 == hashlib.sha256(MAIN_STUB).hexdigest()
    with pytest.raises(DeployError, match="no files"):
        expected_files({"files": []}, b"{}", b"")


def test_the_node_config_must_be_this_nodes_and_carry_its_key():
    ok = {"site": "s", "node": "n", "key": "00", "mqtt": {}}
    assert check_node_json(json.dumps(ok).encode(), "s", "n") == ok
    with pytest.raises(DeployError, match="for s/m, not s/n"):
        check_node_json(json.dumps(dict(ok, node="m")).encode(), "s", "n")
    with pytest.raises(DeployError, match="no 'key'"):
        check_node_json(json.dumps({"site": "s", "node": "n", "mqtt": {}}).encode(), "s", "n")
    with pytest.raises(DeployError, match="not JSON"):
        check_node_json(b"{", "s", "n")


def test_micropython_hashes_what_it_holds_as_cpython_does(tmp_path):
    (tmp_path / "node.json").write_bytes(os.urandom(1500))  # more than one 512-byte read
    (tmp_path / "main.py").write_bytes(MAIN_STUB)
    script = tmp_path / "check.py"
    script.write_text(hash_script(["/node.json", "/main.py", "/gone.txt"], rom_mount=False, root=str(tmp_path)))
    r = subprocess.run([micropython_command(), "-X", "heapsize=64k", str(script)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    got = parse_hashes("REPL noise\n" + r.stdout)
    data = (tmp_path / "node.json").read_bytes()
    assert got["/node.json"] == (hashlib.sha256(data).hexdigest(), 1500)
    assert got["/gone.txt"] is None
    want = [Expected("/node.json", hashlib.sha256(data).hexdigest(), 1500),
            Expected("/main.py", hashlib.sha256(MAIN_STUB).hexdigest(), len(MAIN_STUB)),
            Expected("/gone.txt", "0" * 64, 1), Expected("/rom/x.mpy", "0" * 64, 1)]
    problems = compare(want, got)
    assert problems == ["/gone.txt: missing on the board", "/rom/x.mpy: the board did not answer for it"]
    want[0] = Expected("/node.json", "1" * 64, 1500)
    assert compare(want[:2], got) == [f"/node.json: on the board 1500 bytes sha256 {got['/node.json'][0][:16]}, "
                                      f"expected 1500 bytes sha256 {'1' * 16}"]


def test_mpremote_steps_and_their_failures(tmp_path):
    link = MpremoteLink("/dev/ttyUSB0")
    assert link.argv("romfs", "deploy", "img.romfs")[1:] == ["connect", "/dev/ttyUSB0", "romfs", "deploy", "img.romfs"]
    with pytest.raises(DeployError, match="/dev/ttyNOPE: no such port"):
        MpremoteLink("/dev/ttyNOPE").halt()
    # a port that is there but silent (a board without MicroPython, or busy): mpremote waits for
    # its raw REPL forever; the link gives up after its timeout with what to do
    master, slave = pty.openpty()
    try:
        with pytest.raises(DeployError, match="no answer within 2 s: press the board's EN/RST"):
            MpremoteLink(os.ttyname(slave), timeout_s=2).halt()
    finally:
        os.close(master)
        os.close(slave)
    assert "group dialout" in explain("mpremote: failed to access /dev/ttyUSB0 (it may be in use by another program)")
    assert "MicroPython >= 1.25" in explain("mpremote: ROMFS is not enabled on this device")
    assert explain("something else\nlast words\n") == "mpremote failed: last words"
