"""deploy.py's TLS part: which files a node config's mqtt.tls names for the board, their place in
what the board must hold (hashed with the rest), and the board's mkdir script, run here under the
MicroPython unix port with the hash script after it (a cert file cut short is named)."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from edgemon.deploy import (DeployError, Expected, compare, expected_files, hash_script, mkdir_script, parse_hashes,
                            tls_files)
from edgemon.dev.nodeproc import micropython_command
from edgemon.nodeconfig import certs_dir

LISTING = {"files": [{"path": "node.mpy", "bytes": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}]}


def test_the_files_mqtt_tls_names():
    assert tls_files({"mqtt": {"host": "h"}}) == []
    mutual = {"ca": "/certs/ca.der", "cert": "/certs/node.der", "key": "/certs/node.key.der", "server_hostname": "m"}
    assert tls_files({"mqtt": {"tls": mutual}}) == [("ca", "/certs/ca.der"), ("cert", "/certs/node.der"),
                                                    ("key", "/certs/node.key.der")]
    pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    assert tls_files({"mqtt": {"tls": {"ca": pem}}}) == []  # inline PEM: no file to copy
    for bad in ("certs/ca.der", "/rom/ca.der", "/node.json", "/certs/"):
        with pytest.raises(DeployError, match="mqtt.tls.ca"):
            tls_files({"mqtt": {"tls": {"ca": bad}}})
    assert certs_dir("run/qd-plant.node01.json").as_posix() == "run/qd-plant.node01.certs"
    assert certs_dir("node").as_posix() == "node.certs"


def test_tls_files_are_expected_after_the_config_and_stubs():
    want = expected_files(LISTING, b"{}", b"#", [("/certs/ca.der", b"\x30\x82ca"), ("/certs/node.der", b"n")])
    assert [e.path for e in want] == ["/rom/node.mpy", "/node.json", "/main.py", "/slotboot.py", "/certs/ca.der",
                                      "/certs/node.der"]
    assert want[4] == Expected("/certs/ca.der", hashlib.sha256(b"\x30\x82ca").hexdigest(), 4)


def test_the_board_makes_the_folders_and_hashes_the_tls_files(tmp_path):
    mp = micropython_command()
    script = tmp_path / "mk.py"
    script.write_text(mkdir_script(["/certs", "/certs", "/a/b"], root=str(tmp_path)))
    for _ in range(2):  # a second run (folders there) is quiet
        r = subprocess.run([mp, "-X", "heapsize=64k", str(script)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and not r.stdout, r.stdout + r.stderr
    assert (tmp_path / "certs").is_dir() and (tmp_path / "a" / "b").is_dir()
    ca, key = b"\x30\x82" + bytes(range(256)) * 3, b"\x30\x81key"
    (tmp_path / "certs" / "ca.der").write_bytes(ca)
    (tmp_path / "certs" / "node.key.der").write_bytes(key[:-1])  # a copy cut short
    want = expected_files(LISTING, b"{}", b"#", [("/certs/ca.der", ca), ("/certs/node.key.der", key)])[4:]
    (tmp_path / "h.py").write_text(hash_script([e.path for e in want], rom_mount=False, root=str(tmp_path)))
    r = subprocess.run([mp, "-X", "heapsize=64k", str(tmp_path / "h.py")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    problems = compare(want, parse_hashes(r.stdout))
    assert len(problems) == 1 and problems[0].startswith("/certs/node.key.der: on the board 4 bytes"), problems
