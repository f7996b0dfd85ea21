"""A node set up for MQTT over TLS as a technician does it, every step an `edgemon` subprocess: the
broker's CA and the node's certificate (edgemon.pki, as `edgemon broker ca init` and `node provision
--ca` make them) -> `node config` from an inventory with tls_ca and tls_mutual (node.json naming
/certs/..., the DER files beside it) -> `node deploy` to the virtual board: the TLS files copied to
its /certs and hashed on the board with the rest; a node.json whose TLS files are not beside it is
refused before the board is touched. Then the firmware (MicroPython unix port) runs the deployed
node.json with the board's /certs mounted where the board has it and publishes through a real
Mosquitto TLS listener that asks for the node's certificate.

(The virtual board's node itself runs on this PC's filesystem, where /certs is not the board's
folder; so the connection is checked by the firmware run here, and the deploy's wait for a status
is cut short.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import paho.mqtt.client as paho
import pytest

from edgemon.dev.nodeproc import FIRMWARE_DIR, micropython_command
from edgemon.dev.procutil import child_kwargs
from edgemon.dev.stack import Mosquitto, TlsListener, ensure_installed
from edgemon.pki import CertificateAuthority

pytestmark = pytest.mark.integration

SITE, NODE = "qd-plant", "node01"
KEY = "ab" * 32


def edgemon(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "edgemon.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_tls_files_configured_deployed_checked_and_the_node_connects(tmp_path):
    try:
        ensure_installed(("mosquitto", "mosquitto_passwd"))
    except Exception as exc:  # pragma: no cover - the Makefile installs it
        pytest.skip(str(exc))
    bureau = tmp_path / "bureau"
    ca = CertificateAuthority(bureau / "ca")
    ca.init()
    server = ca.server(bureau / "ca", ["127.0.0.1"])
    prov = bureau / "state" / "provisioned"
    ca.node(prov, SITE, NODE)  # SITE.NODE.crt/.key beside the secrets, as `node provision --ca` writes them
    broker = Mosquitto(tmp_path / "broker", tls=TlsListener(ca.cert_path, server.cert, server.key, mutual=True))
    gw_password = broker.add_user("gw")
    node_password = broker.add_user(f"{SITE}.{NODE}")
    secrets = prov / f"{SITE}.{NODE}.secrets.json"
    secrets.write_text(json.dumps({"site": SITE, "node": NODE, "key": KEY,
                                   "mqtt": {"user": f"{SITE}.{NODE}", "password": node_password}}))
    (bureau / "keys.toml").write_text(f'[keys]\n"{SITE}/{NODE}" = "{KEY}"\n')
    (bureau / "keys.toml").chmod(0o600)
    broker.start()
    board_dir = tmp_path / "board"
    board = watch = None
    try:
        gt = bureau / "gateway.toml"
        gt.write_text(f"""[gateway]
id = "gw-tls"
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
        # 1. node config: TLS from the inventory's broker table (nothing listens on the analyzer's port:
        # the node's records carry "no answer" flags, which is enough to see them arrive)
        inv = bureau / "sites.toml"
        inv.write_text(f"""format = 1
[sites.{SITE}]
poll_s = 0.5
broker = {{ host = "127.0.0.1", port = {broker.tls.port}, tls_ca = "ca/ca.crt", tls_mutual = true }}
[sites.{SITE}.nodes.{NODE}]
bus = {{ kind = "rtu_tcp", host = "127.0.0.1", port = 1 }}
analyzers = [ {{ name = "cod", profile = "cod_generic", unit = 1, timeout_ms = 200 }} ]
""")
        node_json = bureau / f"{SITE}.{NODE}.json"
        r = edgemon("node", "config", "--inventory", str(inv), "--secrets", str(secrets), SITE, NODE,
                    "-o", str(node_json))
        assert r.returncode == 0, r.stdout + r.stderr
        cfg = json.loads(node_json.read_text())
        assert cfg["mqtt"]["tls"] == {"ca": "/certs/ca.der", "cert": "/certs/node.der", "key": "/certs/node.key.der"}
        local = bureau / f"{SITE}.{NODE}.certs"
        assert sorted(p.name for p in local.iterdir()) == ["ca.der", "node.der", "node.key.der"]
        # 2. a node.json without its TLS files beside it: refused, nothing sent (the board is not even powered)
        alone = tmp_path / "elsewhere" / node_json.name
        alone.parent.mkdir()
        shutil.copy(node_json, alone)
        r = edgemon("node", "deploy", "--config", str(gt), "--virtual", str(board_dir), SITE, NODE, str(alone),
                    "--wait", "1")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "names TLS files that are not here (nothing was sent)" in r.stderr, r.stderr
        for f in ("ca.der", "node.der", "node.key.der"):
            assert f"/certs/{f}: {alone.parent / (SITE + '.' + NODE + '.certs') / f} is not there" in r.stderr, r.stderr
        assert "edgemon node config" in r.stderr and not board_dir.exists()
        # 3. deploy to the virtual board: the TLS files go to its /certs, hashed on the board with the rest
        r = edgemon("node", "build", "--target", "pc", "--json")
        assert r.returncode == 0, r.stderr
        built = json.loads(r.stdout)
        board = subprocess.Popen([sys.executable, "-m", "edgemon.dev.virtualboard", str(board_dir)],
                                 stdout=open(tmp_path / "runner.log", "ab"), stderr=subprocess.STDOUT, **child_kwargs())
        for _ in range(100):
            if (board_dir / ".board.pid").exists():
                break
            time.sleep(0.05)
        r = edgemon("node", "deploy", "--config", str(gt), "--virtual", str(board_dir), "--image", built["image"],
                    SITE, NODE, str(node_json), "--wait", "1")
        out = r.stdout + r.stderr
        assert "ok (TLS: /certs/ca.der, /certs/node.der, /certs/node.key.der from qd-plant.node01.certs/)" in out, out
        assert "/slotboot.py, /certs/ca.der, /certs/node.der, /certs/node.key.der ... ok" in out, out
        assert f"checking {len(built['files']) + 6} files on the board ... all match" in out, out
        assert r.returncode == 4, out  # (the status: see the module's docstring)
        for f in ("ca.der", "node.der", "node.key.der"):
            assert (board_dir / "certs" / f).read_bytes() == (local / f).read_bytes()
        assert (board_dir / "node.json").read_bytes() == node_json.read_bytes()
        # 4. the deployed node.json and /certs, as the board has them, over TLS to the broker
        got = []
        watch = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="tls-watch")
        watch.username_pw_set("gw", gw_password)
        watch.on_message = lambda c, u, m: got.append(m.topic)
        watch.connect("127.0.0.1", broker.port)
        watch.subscribe(f"edge/v1/{SITE}/{NODE}/#", qos=1)
        watch.loop_start()
        run = tmp_path / "run"
        run.mkdir()
        (run / "boot.py").write_text(
            "import sys, vfs\n"
            f"vfs.mount(vfs.VfsPosix({str(board_dir / 'certs')!r}), '/certs')\n"
            f"sys.path.insert(0, {str(FIRMWARE_DIR)!r})\n"
            f"sys.argv[1:] = [{str(board_dir / 'node.json')!r}, '--cycles', '3', '--state-dir', 'state']\n"
            "import main\n")
        p = subprocess.run([micropython_command(), "-X", "heapsize=256k", "boot.py"], cwd=run, capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "mqtt_tls_link" in p.stdout and "mqtt=up" in p.stdout and "cannot load" not in p.stdout, p.stdout
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and got.count(f"edge/v1/{SITE}/{NODE}/data") < 3:
            time.sleep(0.05)
        assert got.count(f"edge/v1/{SITE}/{NODE}/data") >= 3, (got, p.stdout)
        assert f"edge/v1/{SITE}/{NODE}/status" in got, got
    finally:
        if watch:
            watch.loop_stop()
            watch.disconnect()
        if board and board.poll() is None:
            board.terminate()
            board.wait(15)
        broker.stop()
