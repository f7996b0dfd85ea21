"""Board scenarios on the virtual board (firmware/main.py on the MicroPython unix port, real Mosquitto)."""
import json
import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "firmware"))

from rtu_server import RtuServer, cod_registers  # noqa: E402
from test_main_cli import EXAMPLE, _run, mosquitto  # noqa: E402,F401  (fixture)
from test_power_cut import KEY, Proxy, _records  # noqa: E402


def _subscribe(port):
    import paho.mqtt.client as paho
    got = []
    sub = paho.Client(paho.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda c, u, m: got.append((m.topic, bytes(m.payload)))
    sub.connect("127.0.0.1", port)
    sub.subscribe("edge/v1/#", qos=1)
    sub.loop_start()
    time.sleep(0.3)
    return sub, got


def _cfg(tmp_path, rtu_port, mqtt_port):
    cfg = json.load(open(EXAMPLE))
    cfg.update(poll_s=0.05, key=KEY, state_dir=str(tmp_path / "state"))
    cfg["analyzers"][0]["transport"]["port"] = rtu_port
    cfg["mqtt"]["port"] = mqtt_port
    p = tmp_path / "node.json"
    p.write_text(json.dumps(cfg))
    return p


def test_outage_and_replay(tmp_path, mosquitto):  # noqa: F811
    srv = RtuServer(cod_registers(35.2, 0))
    proxy = Proxy(mosquitto)
    sub, got = _subscribe(mosquitto)
    try:
        proxy.set_up(False)
        p = _cfg(tmp_path, srv.port, proxy.port)
        r = _run(p, "--cycles", "40")
        assert r.returncode == 0 and "queue=40" in r.stdout, r.stdout[-500:]
        proxy.set_up(True)
        r = _run(p, "--cycles", "5")
        assert r.returncode == 0, r.stdout[-500:]
        time.sleep(0.5)
    finally:
        sub.loop_stop()
        sub.disconnect()
        proxy.stop()
        srv.stop()
    data = [pl for t, pl in got if t.endswith("/data")]
    seqs = [s for pl in data for s, _ in _records(pl)]
    assert sorted(set(seqs)) == list(range(1, 46))
    assert any(pl.startswith(b'{"batch":[') for pl in data)


def test_boot_event_signed(tmp_path, mosquitto):  # noqa: F811
    import hashlib
    import hmac
    srv = RtuServer(cod_registers(35.2, 0))
    sub, got = _subscribe(mosquitto)
    try:
        r = _run(_cfg(tmp_path, srv.port, mosquitto), "--cycles", "2")
        assert r.returncode == 0, r.stdout[-500:]
        time.sleep(0.3)
    finally:
        sub.loop_stop()
        sub.disconnect()
        srv.stop()
    events = [pl for t, pl in got if t.endswith("/event")]
    assert events and json.loads(events[0])["kind"] == "boot"
    for t, pl in got:
        i = pl.rfind(b',"sig":"')
        body = pl[:i] + b"}"
        assert pl[i + 8:-2].decode() == hmac.new(bytes.fromhex(KEY), body, hashlib.sha256).hexdigest(), t


def _signed(cfg_path):
    """The config at cfg_path, signing with the key _records checks signatures with."""
    cfg = json.loads(cfg_path.read_text())
    cfg["key"] = KEY
    cfg_path.write_text(json.dumps(cfg))
    return cfg_path


def _check_boot(cfg_path):
    """The boot a board makes first with a new config (the validator loaded, beside it nothing
    else): it keeps the checked copy and resets (exit 75 on a PC). The 64k runs are the boots after."""
    import subprocess
    from edgemon.dev.nodeproc import firmware_command
    argv, env = firmware_command("256k", cfg_path, "--lean", mode="romfs")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=str(cfg_path.parent),
                       env=dict(os.environ, **env))
    assert r.returncode == 75, (r.stdout + r.stderr)[-600:]
    return cfg_path


def test_reboot_with_a_backlog_in_a_64k_heap(tmp_path, mosquitto):  # noqa: F811
    """The node as a board runs it (ROMFS, -X heapsize=64k, 4 analyzers x 5 values, signed) reboots
    with thousands of records on flash (several segments) and replays them: every record arrives,
    once, signed, seq contiguous, and no MemoryError anywhere (the heap the issue names)."""
    import socket
    import subprocess
    from edgemon.bench.fwrig import BenchSlave, bench_node_config
    from edgemon.dev.nodeproc import firmware_command

    slave = BenchSlave()
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens there: the broker is "down" while the backlog builds
    n = 3000
    try:
        cfg = _signed(bench_node_config(tmp_path, slave.port, dead_port, 0.001))
        argv, env = firmware_command("256k", cfg, "--cycles", str(n), mode="romfs")
        fill = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                              env=dict(os.environ, **env))
        assert fill.returncode == 0 and "queue=%d" % n in fill.stdout, (fill.stdout + fill.stderr)[-600:]
        segs = [f for f in os.listdir(tmp_path / "state" / "bench" / "fw") if f.endswith(".q")]
        assert len(segs) >= 5, segs  # a backlog spread over several segments
        sub, got = _subscribe(mosquitto)
        try:
            cfg = _check_boot(_signed(bench_node_config(tmp_path, slave.port, mosquitto, 10)))
            argv, env = firmware_command("64k", cfg, "--cycles", "2", mode="romfs")
            boot = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                                  env=dict(os.environ, **env))
            time.sleep(0.5)
        finally:
            sub.loop_stop()
            sub.disconnect()
    finally:
        slave.stop()
    out = boot.stdout + boot.stderr
    assert boot.returncode == 0 and "MemoryError" not in out and "error" not in out, out[-800:]
    recs = {}
    for t, pl in got:
        if t.endswith("/data"):
            for seq, body in _records(pl):
                assert recs.setdefault(seq, body) == body, seq  # a resend is byte-identical
    # The backlog, then the two records of this boot's own cycles: contiguous from 1, none missing.
    assert recs and sorted(recs) == list(range(1, max(recs) + 1)) and max(recs) >= n + 1, \
        (len(recs), min(recs or [0]), max(recs or [0]))


@pytest.mark.parametrize("written", ["inline", "profiles"])
def test_poll_loop_1000_cycles_in_a_64k_heap(tmp_path, mosquitto, written):  # noqa: F811
    """The issue's heap figure as a pass/fail behaviour (the smallest heap is `make bench`'s): the
    node as a board runs it (ROMFS, -X heapsize=64k, 4 analyzers x 5 float32 values, signed; or
    the same bus written with four profiles, 19 values, as field configs are) polls 1,000 cycles
    with no MemoryError and no error of any kind, and every record reaches the broker, once,
    signed, seq 1..1000."""
    import subprocess
    from edgemon.bench.fwrig import BenchSlave, bench_node_config, profile_config
    from edgemon.dev.nodeproc import firmware_command

    n = 1000
    slave = BenchSlave()
    sub, got = _subscribe(mosquitto)
    try:
        cfg = _signed(bench_node_config(tmp_path, slave.port, mosquitto, 0.001))
        if written == "profiles":
            cfg = profile_config(cfg)
        _check_boot(cfg)
        argv, env = firmware_command("64k", cfg, "--cycles", str(n), mode="romfs")
        run = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                             env=dict(os.environ, **env))
        deadline = time.time() + 10
        while time.time() < deadline and sum(1 for t, _ in got if t.endswith("/data")) < 1:
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        sub.loop_stop()
        sub.disconnect()
        slave.stop()
    out = run.stdout + run.stderr
    assert run.returncode == 0 and "MemoryError" not in out and "error" not in out, out[-800:]
    cycles = [line for line in run.stdout.splitlines() if line.startswith("cycle seq=")]
    assert len(cycles) == n and cycles[-1].startswith("cycle seq=%d " % n)
    values = 20 if written == "inline" else 19
    assert all(line.count("/") == values for line in cycles), cycles[0]  # every value, every cycle
    if written == "inline":
        assert all(line.count("/N") == 20 for line in cycles), cycles[0]  # and every one read
    recs = {}
    for t, pl in got:
        if t.endswith("/data"):
            for seq, body in _records(pl):  # signatures checked there
                assert recs.setdefault(seq, body) == body, seq  # a resend (QoS 1) only byte-identical
    assert sorted(recs) == list(range(1, n + 1)), (len(recs), min(recs or [0]), max(recs or [0]))
