"""`edgemon node update` end to end on the virtual board (two romfs partitions) through a real
Mosquitto enforcing the provisioned ACL: a good image is downloaded, checked, booted on trial and
confirmed by the node itself; a corrupt image and a manifest not signed with the node's key change
nothing; an image that starts but cannot reach the broker is left by the node itself after its
trial. No record is lost across any of it (seq contiguous on the broker). The tests run in order
on one board: each starts from the state the one before left."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from edgemon.dev.bussim import BusSimulator
from edgemon.dev.nodeproc import FIRMWARE_DIR
from edgemon.dev.procutil import child_kwargs
from edgemon.dev.stack import Mosquitto

pytestmark = pytest.mark.integration

SITE, NODE = "ota-site", "node01"
TARGET = f"{SITE}/{NODE}"


def edgemon(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "edgemon.cli", *args], capture_output=True, text=True, timeout=timeout)


class Watch:
    """Data seqs and live statuses of the node, as the broker delivers them."""

    def __init__(self, port, user, password):
        self.seqs: list[int] = []
        self.fws: list[str] = []
        self.lock = threading.Lock()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"ota-watch-{time.time_ns()}")
        self.c.username_pw_set(user, password)
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port)
        self.c.subscribe([(f"edge/v1/{SITE}/{NODE}/data", 1), (f"edge/v1/{SITE}/{NODE}/status", 1)])
        self.c.loop_start()

    def _on(self, client, userdata, m):
        d = json.loads(m.payload)
        with self.lock:
            if m.topic.endswith("/data"):
                self.seqs.extend(r["seq"] for r in d.get("batch", [d]))
            elif d.get("state") == "online" and not m.retain:
                self.fws.append(d.get("fw"))

    def wait_more_records(self, n, timeout=30):
        start = len(self.seqs)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.seqs) < start + n:
            time.sleep(0.1)
        assert len(self.seqs) >= start + n, f"no {n} new records within {timeout} s"

    def contiguous(self):
        s = sorted(set(self.seqs))
        return s == list(range(s[0], s[-1] + 1))


def _variant(tmp: Path, version: str, broken: bool = False) -> Path:
    """The firmware with another FW_VERSION (and, broken, an MQTT client that never connects), built
    into an image with its listing as `edgemon node build` makes them."""
    from edgemon.node_setup_cli import build_image

    src = tmp / f"fw-{version}"
    shutil.copytree(FIRMWARE_DIR, src, ignore=shutil.ignore_patterns("__pycache__"))
    rec = src / "record.py"
    rec.write_text(re.sub(r'^FW_VERSION = "[^"]+"', f'FW_VERSION = "{version}"', rec.read_text(), flags=re.M))
    if broken:
        mq = src / "mqtt.py"
        text = mq.read_text()
        i = text.index("    def connect(self")
        j = text.index("\n", text.index(":", i)) + 1
        mq.write_text(text[:j] + '        raise OSError("this build cannot reach any broker")\n' + text[j:])
    image, _ = build_image("pc", src=src)
    return image


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ota")
    bureau = tmp / "bureau"
    bureau.mkdir()
    broker = Mosquitto(tmp / "broker", acl_path=bureau / "acl")
    gw_password = broker.add_user("gw")
    (bureau / "acl").write_text("user gw\ntopic readwrite edge/v1/#\n\n")
    broker.start()
    gt = bureau / "gateway.toml"
    gt.write_text(f"""[gateway]
id = "gw-ota"
state_dir = "state"
[mqtt]
host = "127.0.0.1"
port = {broker.port}
username = "gw"
password = "{gw_password}"
[influx]
url = "http://127.0.0.1:1"
database = "unused"
[trust]
keys_file = "keys.toml"
""")
    bus = BusSimulator(framing="rtu")
    bus.add(1, "cod_generic")
    bus.set_value(1, "w01018", 33.0)
    bus.start()
    board_dir = tmp / "board"
    runner = watch = None
    try:
        r = edgemon("node", "provision", "--config", str(gt), "--passwd", str(broker.passwd_path),
                    "--acl", str(bureau / "acl"), "--poll-s", "1", SITE, NODE)
        assert r.returncode == 0, r.stdout + r.stderr
        broker.reload()
        inv = bureau / "sites.toml"
        inv.write_text(f"""format = 1
[sites.{SITE}]
poll_s = 1
broker = {{ host = "127.0.0.1", port = {broker.port} }}
[sites.{SITE}.nodes.{NODE}]
bus = {{ kind = "rtu_tcp", host = "127.0.0.1", port = {bus.port} }}
analyzers = [ {{ name = "cod", profile = "cod_generic", unit = 1, timeout_ms = 500 }} ]
""")
        node_json = bureau / "node.json"
        r = edgemon("node", "config", "--inventory", str(inv), "--secrets",
                    str(bureau / "state" / "provisioned" / f"{SITE}.{NODE}.secrets.json"), SITE, NODE, "-o", str(node_json))
        assert r.returncode == 0, r.stdout + r.stderr
        r = edgemon("node", "build", "--target", "pc", "--json")
        assert r.returncode == 0, r.stderr
        image = json.loads(r.stdout)["image"]
        runner = subprocess.Popen([sys.executable, "-m", "edgemon.dev.virtualboard", str(board_dir)],
                                  stdout=open(tmp / "runner.log", "ab"), stderr=subprocess.STDOUT, **child_kwargs())
        for _ in range(100):
            if (board_dir / ".board.pid").exists():
                break
            time.sleep(0.05)
        watch = Watch(broker.port, "gw", gw_password)
        r = edgemon("node", "deploy", "--config", str(gt), "--virtual", str(board_dir), "--image", image,
                    SITE, NODE, str(node_json), "--wait", "60")
        assert r.returncode == 0, r.stdout + r.stderr
        watch.wait_more_records(3)
        yield {"gt": gt, "dir": board_dir, "watch": watch, "tmp": tmp, "bureau": bureau}
    finally:
        if watch:
            watch.c.loop_stop()
            watch.c.disconnect()
        if runner and runner.poll() is None:
            runner.send_signal(signal.SIGTERM)
            runner.wait(20)
        console = board_dir / "console.log"
        if console.exists():
            print("console tail:\n" + "\n".join(console.read_text().splitlines()[-40:]))
        bus.stop()
        broker.stop()


def _console(board) -> str:
    return (board["dir"] / "console.log").read_text()


def test_a_good_image_is_booted_on_trial_and_confirmed_by_the_node(board):
    v2 = _variant(board["tmp"], "0.3.1-ota")
    # a fleet of two: the board as the canary, then a node that is provisioned but never answers
    keys = board["bureau"] / "keys.toml"
    keys.write_text(keys.read_text() + f'"{SITE}/ghost" = "{"cd" * 32}"\n')
    fleet = board["bureau"] / "fleet.txt"
    fleet.write_text(f"# canary first\n{TARGET}\n{SITE}/ghost\n")
    r = edgemon("node", "update", "--config", str(board["gt"]), "--serve", "127.0.0.1:0", "--image", str(v2),
                "--trial", "30", "--wait", "60", "--ack-wait", "5", "--targets", str(fleet))
    assert r.returncode == 4, r.stdout + r.stderr + _console(board)[-3000:]
    assert f"canary {TARGET}: " in r.stdout and "updated: fw 0.3.1-ota, confirmed by the node" in r.stdout, r.stdout
    assert f"[2/2] {SITE}/ghost: no ack" in r.stdout and f"halted at {SITE}/ghost: 1 of 2 updated" in r.stderr
    assert (board["dir"] / "slot").read_text() == "1"  # the second partition, confirmed
    assert (board["dir"] / "romfs-1.img").read_bytes() == v2.read_bytes()
    w = board["watch"]
    w.wait_more_records(3)
    assert w.fws[-1] == "0.3.1-ota" and w.contiguous(), w.seqs


def test_a_corrupt_image_changes_nothing(board):
    from edgemon.otaserve import ImageServer

    v2 = board["dir"] / "romfs-1.img"
    good = v2.read_bytes()
    other = _variant(board["tmp"], "0.3.9-corrupt")
    blob = bytearray(other.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    import hashlib

    sha = hashlib.sha256(other.read_bytes()).hexdigest()  # the manifest's: the image as built
    with ImageServer(bytes(blob), sha, "127.0.0.1", 0) as srv:
        r = edgemon("node", "cmd", "--config", str(board["gt"]), SITE, NODE, "update", "--arg", f'url="{srv.url}"',
                    "--arg", f"bytes={len(blob)}", "--arg", f'sha256="{sha}"', "--arg", "trial_s=30", "--wait", "60")
    assert r.returncode == 3 and "SHA-256 is not the manifest's: not switched" in r.stdout + r.stderr, r.stdout + r.stderr
    assert (board["dir"] / "slot").read_text() == "1" and v2.read_bytes() == good  # the running image untouched
    w = board["watch"]
    w.wait_more_records(3)
    assert w.fws[-1] == "0.3.1-ota" and w.contiguous()


def test_a_manifest_not_signed_with_the_nodes_key_is_refused(board):
    bad_keys = board["bureau"] / "wrong-keys.toml"
    bad_keys.write_text(f'[keys]\n"{TARGET}" = "{"ab" * 32}"\n')
    os.chmod(bad_keys, 0o600)
    gt = board["bureau"] / "wrong.toml"
    gt.write_text(board["gt"].read_text().replace('keys_file = "keys.toml"', f'keys_file = "{bad_keys}"'))
    v = _variant(board["tmp"], "0.3.9-forged")
    r = edgemon("node", "update", "--config", str(gt), "--serve", "127.0.0.1:0", "--image", str(v), "--trial", "30",
                "--wait", "20", "--ack-wait", "8", TARGET)
    assert r.returncode == 4 and "halted at" in r.stderr and "no ack" in r.stdout, r.stdout + r.stderr
    assert "forged: signature does not match" in _console(board)
    assert (board["dir"] / "slot").read_text() == "1"
    board["watch"].wait_more_records(2)


def test_an_image_that_cannot_reach_the_broker_is_left_by_the_node_itself(board):
    v3 = _variant(board["tmp"], "0.3.2-broken", broken=True)
    r = edgemon("node", "update", "--config", str(board["gt"]), "--serve", "127.0.0.1:0", "--image", str(v3),
                "--trial", "30", "--wait", "90", TARGET)
    out = r.stdout + r.stderr
    assert r.returncode == 4 and "image written and checked (partition 0)" in out, out + _console(board)[-3000:]
    assert "rolled back by itself" in out and "running fw 0.3.1-ota again" in out, out
    assert "slot: image 0 did not confirm itself: back to image 1" in _console(board)
    assert (board["dir"] / "slot").read_text() == "1"
    w = board["watch"]
    w.wait_more_records(3)
    assert w.fws[-1] == "0.3.1-ota"
    assert w.contiguous(), w.seqs  # the broken image's records, kept on flash, delivered after the rollback
