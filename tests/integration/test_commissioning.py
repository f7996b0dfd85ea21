"""A site commissioned as a technician does it, every step an `edgemon` subprocess: provision ->
config (from a site inventory) -> build -> deploy (to the virtual board: romfs partition, node.json,
every file hashed on the board, reset, first status) -> probe (over MQTT cmd) -> data in InfluxDB
through the running gateway, seq contiguous. Real Mosquitto enforcing the provisioned account and
ACL, real InfluxDB, the real firmware at 64k, the pymodbus bus simulator behind an RTU-over-TCP
serial server."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import paho.mqtt.client as paho
import pytest
import requests

from edgemon.dev.bussim import BusSimulator
from edgemon.dev.nodeproc import FIRMWARE_DIR
from edgemon.dev.procutil import child_kwargs
from edgemon.dev.stack import Mosquitto

pytestmark = pytest.mark.integration

SITE, NODE = "qd-plant", "node01"
COD = 41.5


def edgemon(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "edgemon.cli", *args], capture_output=True, text=True, timeout=timeout)


def _spawn(argv, log):
    return subprocess.Popen(argv, stdout=open(log, "ab"), stderr=subprocess.STDOUT, **child_kwargs())


def _stop(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Records:
    """The node's data records as the broker delivers them (the gateway's account reads all)."""

    def __init__(self, port, user, password):
        self.recs: list[dict] = []
        self.lock = threading.Lock()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"watch-{time.time_ns()}")
        self.c.username_pw_set(user, password)
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(f"edge/v1/{SITE}/{NODE}/data", qos=1)
        self.c.loop_start()

    def _on(self, client, userdata, m):
        d = json.loads(m.payload)
        with self.lock:
            self.recs.extend(d.get("batch", [d]))

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def _influx(url, db, q):
    r = requests.get(url + "/query", params={"db": db, "q": q, "epoch": "ms"}, timeout=10)
    r.raise_for_status()
    out = []
    for res in r.json()["results"]:
        for s in res.get("series", []) or []:
            out += [dict(zip(s["columns"], v)) for v in s["values"]]
    return out


def test_bare_virtual_board_to_data_in_influxdb(tmp_path, stack):
    db = stack.new_database()
    bureau = tmp_path / "bureau"
    bureau.mkdir()
    broker = Mosquitto(tmp_path / "broker", acl_path=bureau / "acl")
    gw_password = broker.add_user("gw")
    # The gateway's own ACL block (the server stack's part); provision appends the nodes' blocks.
    (bureau / "acl").write_text("user gw\ntopic readwrite edge/v1/#\n\n")
    broker.start()
    gt = bureau / "gateway.toml"
    gt.write_text(f"""[gateway]
id = "gw-commissioning"
state_dir = "state"
[mqtt]
host = "127.0.0.1"
port = {broker.port}
username = "gw"
password = "{gw_password}"
[influx]
url = "{stack.influx_url}"
database = "{db}"
[trust]
keys_file = "keys.toml"
""")
    bus = BusSimulator(framing="rtu")
    bus.add(1, "cod_generic")
    bus.set_value(1, "w01018", COD)
    bus.start()
    board_dir = tmp_path / "board"
    procs = {}
    watch = None
    try:
        # 1. provision: account, ACL, key, gateway entry; the broker reloads its files
        r = edgemon("node", "provision", "--config", str(gt), "--passwd", str(broker.passwd_path),
                    "--acl", str(bureau / "acl"), "--poll-s", "1", SITE, NODE)
        assert r.returncode == 0, r.stdout + r.stderr
        broker.reload()
        secrets = bureau / "state" / "provisioned" / f"{SITE}.{NODE}.secrets.json"
        # 2. config from the bureau's inventory
        inv = bureau / "sites.toml"
        inv.write_text(f"""format = 1
[sites.{SITE}]
poll_s = 1
broker = {{ host = "127.0.0.1", port = {broker.port} }}
[sites.{SITE}.nodes.{NODE}]
bus = {{ kind = "rtu_tcp", host = "127.0.0.1", port = {bus.port} }}
analyzers = [ {{ name = "cod", profile = "cod_generic", unit = 1, timeout_ms = 500 }} ]
""")
        node_json = bureau / f"{SITE}.{NODE}.json"
        r = edgemon("node", "config", "--inventory", str(inv), "--secrets", str(secrets), SITE, NODE,
                    "-o", str(node_json))
        assert r.returncode == 0, r.stdout + r.stderr
        # 3. build the unix-port image (the virtual board's), its file list beside it
        r = edgemon("node", "build", "--target", "pc", "--json")
        assert r.returncode == 0, r.stderr
        image = json.loads(r.stdout)["image"]
        # the gateway runs, and a bare board is powered (nothing on it yet)
        procs["gateway"] = _spawn([sys.executable, "-m", "edgemon.cli", "gateway", "run", "--config", str(gt)],
                                  tmp_path / "gateway.log")
        procs["board"] = _spawn([sys.executable, "-m", "edgemon.dev.virtualboard", str(board_dir)],
                                tmp_path / "runner.log")
        for _ in range(100):
            if (board_dir / ".board.pid").exists():
                break
            time.sleep(0.05)
        watch = Records(broker.port, "gw", gw_password)
        # 4. deploy: checked on the board, reset, first status. What an earlier firmware left beside
        # /node.json goes: its checked copy (the new boot checks the config again) and a pending config op
        # (a stale copy that would match the new file: without the deploy's cleanup the node would run it)
        stale = dict(json.loads(node_json.read_text()), poll_s=999)
        fw_version = re.search(r'FW_VERSION = "([^"]+)"', (FIRMWARE_DIR / "record.py").read_text())[1]
        digest = hashlib.sha256(node_json.read_bytes() + fw_version.encode()).hexdigest()
        (board_dir / "node.json.checked").write_text(digest + "\n" + json.dumps(stale))
        (board_dir / "node.json.config-new").write_text(json.dumps(stale))
        (board_dir / "node.json.config-trial").write_text("0300")
        r = edgemon("node", "deploy", "--config", str(gt), "--virtual", str(board_dir), "--image", image,
                    SITE, NODE, str(node_json), "--wait", "60")
        assert r.returncode == 0, r.stdout + r.stderr + (board_dir / "console.log").read_text()[-2000:]
        print(r.stdout)
        assert "all match" in r.stdout and f"{SITE}/{NODE} is up: fw " in r.stdout and "signature ok" in r.stdout
        assert (board_dir / "node.json").read_bytes() == node_json.read_bytes()
        assert oct((board_dir / "node.json").stat().st_mode & 0o777) == "0o600"
        assert not (board_dir / "node.json.config-trial").exists() and not (board_dir / "node.json.config-new").exists()
        checked = (board_dir / "node.json.checked").read_text().split("\n", 1)
        assert checked[0] == digest and json.loads(checked[1])["poll_s"] == json.loads(node_json.read_text())["poll_s"]
        # 5. probe over the command channel: the analyzer's value from its raw registers
        r = edgemon("node", "probe", "--config", str(gt), SITE, NODE, "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        rows = [x for x in json.loads(r.stdout) if x["param"] == "w01018"]
        assert rows and abs(rows[0]["value"] - COD) < 1e-3 and rows[0]["flag"] == "N", rows
        # 5b. the same over the board's USB link (no broker, no gateway.toml): stopped, probed, reset
        r = edgemon("node", "probe", "--virtual", str(board_dir), SITE, NODE, "--json")
        assert r.returncode == 0, r.stdout + r.stderr + (board_dir / "console.log").read_text()[-2000:]
        rows = [x for x in json.loads(r.stdout) if x["param"] == "w01018"]
        assert rows and abs(rows[0]["value"] - COD) < 1e-3 and rows[0]["regs"], rows
        # 6. data: the records reach InfluxDB through the gateway, seq contiguous from 1
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and len(watch.recs) < 5:
            time.sleep(0.2)
        # 7. logs: the status, the boot event as the gateway stored it; then live: a reboot seen on
        # the board's console and as a new boot event, and a forged event refused (exit 5)
        r = edgemon("node", "logs", "--config", str(gt), SITE, NODE)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "status   online, fw 0.4.0" in r.stdout and "signature ok; retained" in r.stdout, r.stdout
        assert " event boot " in r.stdout, r.stdout
        follow = subprocess.Popen([sys.executable, "-m", "edgemon.cli", "node", "logs", "--config", str(gt), SITE,
                                   NODE, "--follow", "--for", "12", "--virtual", str(board_dir)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(3)
        r = edgemon("node", "cmd", "--config", str(gt), SITE, NODE, "reboot")
        assert r.returncode == 0, r.stdout + r.stderr
        time.sleep(5)
        from edgemon.keys import signed_payload
        forged = signed_payload(b'{"ts":1,"kind":"boot","detail":"forged"}', b"\x01" * 32)
        watch.c.publish(f"edge/v1/{SITE}/{NODE}/event", forged, qos=1).wait_for_publish(5)
        out = follow.communicate(timeout=30)[0]
        assert follow.returncode == 5, out
        assert "console  (board) the node reset itself" in out, out
        assert re.search(r"console  \(board\) boot \d+", out.split("the node reset itself", 1)[1]), out
        assert out.count(" event boot ") >= 2 and "REFUSED  event forged" in out, out  # stored + live
        assert "status   online" in out and "; live)" in out, out
        _stop(procs.pop("board"))  # power off: no more records
        time.sleep(1.0)
        with watch.lock:
            recs = sorted(watch.recs, key=lambda x: x["seq"])
        assert len(recs) >= 5, recs
        assert [x["seq"] for x in recs] == list(range(1, len(recs) + 1))
        want = {x["ts"] for x in recs}
        got: set = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and got != want:
            got = {p["time"] for p in _influx(stack.influx_url, db,
                   f"SELECT value FROM reading WHERE site = '{SITE}' AND node = '{NODE}' AND param = 'w01018'")}
            time.sleep(0.5)
        assert got == want, (sorted(want - got)[:5], sorted(got - want)[:5], (tmp_path / "gateway.log").read_text()[-1500:])
        vals = _influx(stack.influx_url, db, "SELECT value, flag FROM reading WHERE param = 'w01018'")
        assert vals and all(abs(v["value"] - COD) < 1e-3 and v["flag"] == "N" for v in vals), vals[:3]
    finally:
        if watch:
            watch.close()
        for p in procs.values():
            _stop(p)
        bus.stop()
        broker.stop()


def test_deploy_refuses_and_reports_without_resetting_the_board(tmp_path, stack):
    """A file list that does not match what the board holds, a config for another node, a board
    with no power, a port that does not exist, and a node that cannot reach its broker."""
    from edgemon.keys import load_keys

    gt = tmp_path / "gateway.toml"
    kf = tmp_path / "keys.toml"
    kf.write_text(f'[keys]\n"{SITE}/{NODE}" = "{"ab" * 32}"\n')
    os.chmod(kf, 0o600)
    gt.write_text(f"""[gateway]
id = "gw-refusals"
state_dir = "state"
[mqtt]
host = "127.0.0.1"
port = {stack.mqtt_port}
username = "{stack.mqtt_user}"
password = "{stack.mqtt_password}"
[influx]
url = "{stack.influx_url}"
database = "unused"
[trust]
keys_file = "keys.toml"
""")
    assert load_keys(kf)
    cfg = json.loads(open(os.path.join(os.path.dirname(__file__), "..", "..", "firmware", "examples",
                                       "node.json")).read())
    cfg.update(site=SITE, node=NODE, key="ab" * 32, poll_s=1)
    cfg["mqtt"].update(host="127.0.0.1", port=1, timeout_ms=300)  # nothing listens on port 1
    node_json = tmp_path / "node.json"
    node_json.write_text(json.dumps(cfg))
    r = edgemon("node", "build", "--target", "pc", "--json")
    assert r.returncode == 0, r.stderr
    built = json.loads(r.stdout)
    image = tmp_path / "img.romfs"
    image.write_bytes(open(built["image"], "rb").read())
    listing = dict(built, image=str(image))
    listing["files"] = [dict(f) for f in built["files"]]
    listing["files"][3]["sha256"] = "0" * 64  # what a copy cut short or a stale image looks like
    image.with_suffix(".files.json").write_text(json.dumps(listing))
    board_dir = tmp_path / "board"

    def deploy(*extra, node_file=node_json, wait="5"):
        return edgemon("node", "deploy", "--config", str(gt), *extra, SITE, NODE, str(node_file), "--wait", wait)

    r = deploy("--virtual", str(board_dir), "--image", str(image))
    assert r.returncode == 1 and "not powered" in r.stderr and "edgemon.dev.virtualboard" in r.stderr, r.stderr
    other = tmp_path / "other.json"
    other.write_text(json.dumps(dict(cfg, node="node02")))
    r = deploy("--port", "/dev/ttyNOPE0", node_file=other)
    assert r.returncode == 1 and f"node config is for {SITE}/node02, not {SITE}/{NODE}" in r.stderr, r.stderr
    r = deploy("--port", "/dev/ttyNOPE0")
    assert r.returncode == 1 and "/dev/ttyNOPE0: no such port" in r.stderr, r.stderr
    r = deploy()
    assert r.returncode == 2 and "--port" in r.stderr
    board = _spawn([sys.executable, "-m", "edgemon.dev.virtualboard", str(board_dir)], tmp_path / "runner.log")
    try:
        for _ in range(100):
            if (board_dir / ".board.pid").exists():
                break
            time.sleep(0.05)
        r = deploy("--virtual", str(board_dir), "--image", str(image))
        bad = "/rom/" + listing["files"][3]["path"]
        assert r.returncode == 1 and "it is not reset" in r.stderr and bad in r.stderr, r.stdout + r.stderr
        assert r.stderr.count("/rom/") == 1  # only the one file that differs
        assert "(board) boot" not in (board_dir / "console.log").read_text()
        # the right list: the files check out and the board boots, but the node cannot reach its broker
        image.with_suffix(".files.json").write_text(json.dumps(dict(built, image=str(image))))
        r = deploy("--virtual", str(board_dir), "--image", str(image), wait="4")
        assert r.returncode == 4 and "all match" in r.stdout and "no status within 4 s" in r.stderr, r.stdout + r.stderr
        assert "(board) boot 1" in (board_dir / "console.log").read_text()
    finally:
        _stop(board)
