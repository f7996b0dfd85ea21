"""`make bench` part: time from a breaching record published to the broker to its SMS PDU written to
the (simulated, pty) modem, through a real Mosquitto, Gateway (with the alarm observer), InfluxDB;
under background load (normal readings from many nodes) and, as the reference, with none."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .alarms import build_observer
from .ingest import Gateway, GatewayConfig
from .sms.modemsim import ModemSimulator
from .stack import LocalStack

SAMPLES = 40
LOAD_NODES = 20
LOAD_RECORDS_PER_S = 200  # records/s, 4 readings each: 800 readings/s of background


def _pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


def _client(stack, cid):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311)
    c.username_pw_set(stack.gateway_user, stack.gateway_password)
    c.connect(stack.mosquitto.host, stack.mosquitto.port)
    c.loop_start()
    return c


def _measure(stack: LocalStack, work: Path, load: bool) -> list[float]:
    tag = "load" if load else "idle"
    work.mkdir(parents=True)
    sim = ModemSimulator(work).start()
    cfg = work / "alarms.toml"
    cfg.write_text(f"""
[sms]
port = "{sim.path}"
burst = 100000
rate_per_hour = 100000
[sites.bench]
name = "基准测试站"
profile = "laixi-plant"
roles = {{ duty = ["+8613800000001"] }}
[sites.bench.rules.instant]
raise_n = 1
clear_n = 1
""", encoding="utf-8")
    gw = Gateway(GatewayConfig(mqtt_host=stack.mosquitto.host, mqtt_port=stack.mosquitto.port,
                               mqtt_user=stack.gateway_user, mqtt_password=stack.gateway_password,
                               influx_url=stack.influx.url, influx_db=stack.influx.database,
                               state_dir=work / "gw", client_id=f"bench-alarm-{tag}"))
    obs = build_observer(cfg, work / "gw" / "alarms", gw.write_lines)
    gw.add_observer(obs)
    gw.start()
    pub = _client(stack, f"bench-alarm-pub-{tag}")
    stop = threading.Event()

    def background():
        loader = _client(stack, f"bench-alarm-load-{tag}")
        seq, period = 0, 1.0 / LOAD_RECORDS_PER_S
        next_t = time.perf_counter()
        while not stop.is_set():
            node = f"load{seq % LOAD_NODES}"
            rec = {"ts": int(time.time() * 1000), "seq": seq, "clk": "ntp",
                   "readings": {"w01018": {"v": 25.0, "f": "N"}, "w21003": {"v": 1.0, "f": "N"},
                                "w21011": {"v": 0.2, "f": "N"}, "w01001": {"v": 7.2, "f": "N"}}}
            loader.publish(f"edge/v1/bench/{node}/data", json.dumps(rec), qos=1)
            seq += 1
            next_t += period
            time.sleep(max(0.0, next_t - time.perf_counter()))
        loader.loop_stop()
        loader.disconnect()

    bg = threading.Thread(target=background, daemon=True)
    if load:
        bg.start()
        time.sleep(2)
    out = []
    try:
        for i in range(SAMPLES):
            node = f"alarm{i}"  # a new alarm each time: one episode, one SMS
            rec = {"ts": int(time.time() * 1000), "seq": i, "clk": "ntp", "readings": {"w01018": {"v": 55.5, "f": "N"}}}
            n_before = len(sim.received)
            t0 = time.perf_counter()
            pub.publish(f"edge/v1/bench/{node}/data", json.dumps(rec), qos=1)
            if not sim.wait_for(n_before + 1, timeout_s=30):
                raise RuntimeError("no SMS within 30 s")
            out.append((sim.received[n_before].at_perf - t0) * 1000)
            time.sleep(0.2)
    finally:
        stop.set()
        if load:
            bg.join(5)
        pub.loop_stop()
        pub.disconnect()
        gw.stop()
        obs.stop()
        sim.stop()
    return out


def run(results: dict) -> None:
    with tempfile.TemporaryDirectory(prefix="edgemon-bench-alarm-") as tmp, \
            LocalStack(Path(tmp) / "stack") as stack:
        print(f"alarm -> SMS: {SAMPLES} breaching records, no background load (reference)", flush=True)
        idle = _measure(stack, Path(tmp) / "idle", load=False)
        print(f"alarm -> SMS: {SAMPLES} breaching records under {LOAD_RECORDS_PER_S} records/s "
              f"({LOAD_RECORDS_PER_S * 4} readings/s) from {LOAD_NODES} nodes", flush=True)
        loaded = _measure(stack, Path(tmp) / "load", load=True)
    print(f"\n{'breaching record published -> SMS PDU at the modem':52} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, vals in (("under background load", loaded), ("reference: no background load", idle)):
        print(f"{name:52} {_pct(vals, 50):8.0f} {_pct(vals, 99):8.0f} {max(vals):8.0f}")
    print()
    results["alarm"] = {
        "sms_p50_ms": _pct(loaded, 50), "sms_p99_ms": _pct(loaded, 99),
        "reference_no_load_sms_p50_ms": _pct(idle, 50), "reference_no_load_sms_p99_ms": _pct(idle, 99),
        "background_readings_per_s": LOAD_RECORDS_PER_S * 4, "samples": SAMPLES,
    }


if __name__ == "__main__":
    r: dict = {}
    run(r)
    print(json.dumps(r, indent=2))
