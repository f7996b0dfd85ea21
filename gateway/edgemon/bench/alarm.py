"""`make bench` part: time from a breaching record's arrival at the gateway to its SMS PDU written to
the (simulated, pty) modem, under the gateway's reference load, through a real Mosquitto, Gateway
(with the alarm observer), InfluxDB; beside the same breaches with no background load (reference).

Background: the bench_gateway workload (200,000 QoS 1 messages from 1,000 sites, 5 readings each;
the same publisher, in its own process; EDGEMON_BENCH_SCALE shrinks it). The gateway runs in this
process so that a thin observer around the real alarm observer can note when the gateway received
each breaching record (receive_ms). While the load runs, SAMPLES breaching records (each on its own
node: a new alarm episode, one SMS, its index in the value) are published as the gateway takes in
each 1/SAMPLES of the load, without waiting for earlier SMS. Publish -> PDU (which includes the wait
in the broker's queue behind the load) is reported too. The load must end up fully in InfluxDB."""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..alarms import build_observer
from .common import pct, reading_count, scale as workload_scale
from .gateway import MESSAGES, SITES, bench_child
from ..config import GatewayConfig
from ..ingest import Gateway
from .loadgen import PARAMS
from ..dev.modemsim import ModemSimulator
from ..sms.pdu import decode_submit
from ..dev.stack import LocalStack

SAMPLES = 40
ALARM_SITE = "bench"


class _Arrivals:
    """Wraps the real alarm observer: notes the gateway's receive_ms of each alarm-site record (and
    when the observer got it), then forwards the call unchanged."""

    def __init__(self, inner):
        self.inner = inner
        self.seen: dict[tuple[str, int], tuple[int, float]] = {}  # (node, seq) -> (receive_ms, observed ms)

    def on_records(self, site, node, records, receive_ms):
        if site == ALARM_SITE:
            for r in records:
                self.seen[(node, r.seq)] = (receive_ms, time.time() * 1000)
        self.inner.on_records(site, node, records, receive_ms)

    def __getattr__(self, name):  # on_status, on_tick, stop
        return getattr(self.inner, name)


def _count_now(gw: Gateway, name: str) -> int:
    # the counter itself: gw.stats copies every node's stats under the gateway's lock, too heavy to poll
    return gw._counters[name]


def _wait_count(gw: Gateway, name: str, target: float, stall_s: float = 60.0) -> None:
    """Until the gateway's counter reaches target, or has not moved for stall_s."""
    last, since = -1, time.monotonic()
    while (n := _count_now(gw, name)) < target and time.monotonic() - since < stall_s:
        if n != last:
            last, since = n, time.monotonic()
        time.sleep(0.005)


def _sms_by_breach(sim: ModemSimulator) -> dict:
    """The first PDU of each breach's SMS, told apart by the value in its text (breach i sends 100 + i)."""
    out = {}
    for r in list(sim.received):
        d = decode_submit(r.pdu)
        if (d["concat"] or (0, 1, 1))[2] == 1 and (m := re.search(r"监测值(\d+)", d["text"])):
            out.setdefault(int(m[1]) - 100, r)
    return out


def _measure(stack: LocalStack, work: Path, n_load: int) -> dict:
    """SAMPLES breaches -> SMS; with n_load > 0, under that many background messages."""
    tag = "load" if n_load else "idle"
    work.mkdir(parents=True)
    sim = ModemSimulator(work).start()
    cfg = work / "alarms.toml"
    cfg.write_text(f"""
[sms]
port = "{sim.path}"
burst = 100000
rate_per_hour = 100000
[sites.{ALARM_SITE}]
name = "基准测试站"
profile = "laixi-plant"
roles = {{ duty = ["+8613800000001"] }}
[sites.{ALARM_SITE}.rules.instant]
raise_n = 1
clear_n = 1
""", encoding="utf-8")
    db = f"bench_alarm_{tag}"
    stack.influx.create_database(db)
    gw = Gateway(GatewayConfig(mqtt_host=stack.mosquitto.host, mqtt_port=stack.mosquitto.port,
                               mqtt_user=stack.gateway_user, mqtt_password=stack.gateway_password,
                               influx_url=stack.influx.url, influx_db=db,
                               state_dir=work / "gw", client_id=f"bench-alarm-{tag}"))
    obs = _Arrivals(build_observer(cfg, work / "gw" / "alarms", gw.write_lines))
    gw.add_observer(obs)
    gw.start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-alarm-pub-{tag}", protocol=mqtt.MQTTv311)
    pub.username_pw_set(stack.gateway_user, stack.gateway_password)
    pub.connect(stack.mosquitto.host, stack.mosquitto.port)
    pub.loop_start()
    load = None
    if n_load:  # the bench_gateway publisher, its own process
        load = bench_child(["publish", "--port", str(stack.mosquitto.port), "--user", stack.gateway_user,
                       "--n", str(n_load), "--sites", str(SITES), "--prefix", "g",
                       "--client-id", "bench-alarm-loadpub"], stack.gateway_password)
    t_load = time.perf_counter()
    n_sent = n_load * len(PARAMS)
    published, load_s, stored, elapsed, done_ms = {}, 0.0, 0, 0.0, 0
    try:
        for i in range(SAMPLES):
            if n_load:  # spread over the load, by how much of it the gateway has received
                _wait_count(gw, "received", (i + 0.5) * n_load / SAMPLES)
            else:
                time.sleep(0.1)
            rec = {"ts": int(time.time() * 1000), "seq": i, "clk": "ntp",
                   "readings": {"w01018": {"v": 100.0 + i, "f": "N"}}}
            published[i] = time.perf_counter()  # each on its own node: a new alarm episode, one SMS
            pub.publish(f"edge/v1/{ALARM_SITE}/alarm{i}/data", json.dumps(rec), qos=1)
        if load is not None:
            out, _ = load.communicate(timeout=3600)
            load_s = float(out.strip().splitlines()[-1])  # the publisher's own time for the whole load
            _wait_count(gw, "readings_written", n_sent + SAMPLES)
            done_ms, elapsed = time.time() * 1000, time.perf_counter() - t_load
            stored = reading_count(stack.influx.url, db, f"WHERE \"site\" != '{ALARM_SITE}'")
        deadline = time.monotonic() + 120
        while len(sms := _sms_by_breach(sim)) < SAMPLES:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(sms)} of {SAMPLES} breaches got an SMS within 120 s")
            time.sleep(0.05)
    finally:
        if load is not None and load.poll() is None:
            load.kill()
            load.wait()
        pub.loop_stop()
        pub.disconnect()
        gw.stop()
        sim.stop()
    arrive, observed = zip(*(obs.seen[(f"alarm{i}", i)] for i in range(SAMPLES)))
    return {"arrive_ms": [sms[i].at * 1000 - arrive[i] for i in range(SAMPLES)],
            "observer_ms": [observed[i] - arrive[i] for i in range(SAMPLES)],
            "publish_ms": [(sms[i].at_perf - published[i]) * 1000 for i in range(SAMPLES)],
            "under_load": sum(t < done_ms for t in arrive), "load_s": load_s,
            "elapsed_s": elapsed, "sent": n_sent, "stored": stored}


def run(results: dict) -> None:
    scale = workload_scale()
    n_msgs = max(1000, int(MESSAGES * scale))
    note = "" if scale == 1.0 else f"  (EDGEMON_BENCH_SCALE={scale}: a reduced run, not the reference workload)"
    with tempfile.TemporaryDirectory(prefix="edgemon-bench-alarm-") as tmp, \
            LocalStack(Path(tmp) / "stack") as stack:
        print(f"alarm -> SMS: {SAMPLES} breaching records, no background load (reference)", flush=True)
        idle = _measure(stack, Path(tmp) / "idle", 0)
        print(f"alarm -> SMS: {SAMPLES} breaching records under the gateway reference load: {n_msgs} QoS 1 "
              f"messages x {len(PARAMS)} readings from {SITES} sites{note}", flush=True)
        loaded = _measure(stack, Path(tmp) / "load", n_msgs)
    ok = loaded["stored"] == loaded["sent"]
    rate = loaded["sent"] / loaded["elapsed_s"]
    print(f"\n{'breaching record -> first SMS PDU at the modem':54} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, vals in (("gateway arrival -> PDU, under reference load", loaded["arrive_ms"]),
                       ("gateway arrival -> PDU, no load (reference)", idle["arrive_ms"]),
                       ("  of which gateway arrival -> alarm observer", loaded["observer_ms"]),
                       ("  of which gateway arrival -> alarm observer, no load", idle["observer_ms"]),
                       ("publish -> PDU, under reference load", loaded["publish_ms"]),
                       ("publish -> PDU, no load (reference)", idle["publish_ms"])):
        print(f"{name:54} {pct(vals, 50):8.0f} {pct(vals, 99):8.0f} {max(vals):8.0f}")
    print(f"({SAMPLES} breaches each: p99 is the slowest but one at most; goal: arrival -> PDU p99 < 2000 ms)")
    print(f"breaches that reached the gateway before the load was all in InfluxDB: {loaded['under_load']}/{SAMPLES}")
    print(f"background readings sent {loaded['sent']:,}, stored in InfluxDB {loaded['stored']:,}: "
          f"{'all ingested' if ok else 'NOT ALL INGESTED, the figures above are not valid'}")
    print(f"background load: published in {loaded['load_s']:.1f} s, all in InfluxDB after "
          f"{loaded['elapsed_s']:.1f} s ({rate:,.0f} readings/s end to end){note}\n")
    results["alarm"] = {
        "sms_p50_ms": round(pct(loaded["arrive_ms"], 50), 1), "sms_p99_ms": round(pct(loaded["arrive_ms"], 99), 1),
        "sms_max_ms": round(max(loaded["arrive_ms"]), 1),
        "arrival_to_observer_p50_ms": round(pct(loaded["observer_ms"], 50), 1),
        "arrival_to_observer_p99_ms": round(pct(loaded["observer_ms"], 99), 1),
        "publish_to_sms_p50_ms": round(pct(loaded["publish_ms"], 50), 1),
        "publish_to_sms_p99_ms": round(pct(loaded["publish_ms"], 99), 1),
        "reference_no_load_sms_p50_ms": round(pct(idle["arrive_ms"], 50), 1),
        "reference_no_load_sms_p99_ms": round(pct(idle["arrive_ms"], 99), 1),
        "reference_no_load_publish_to_sms_p50_ms": round(pct(idle["publish_ms"], 50), 1),
        "reference_no_load_publish_to_sms_p99_ms": round(pct(idle["publish_ms"], 99), 1),
        "samples": SAMPLES, "samples_under_load": loaded["under_load"],
        "load_messages": n_msgs, "load_sites": SITES, "load_readings_sent": loaded["sent"],
        "load_readings_stored": loaded["stored"], "load_fully_ingested": ok,
        "load_readings_per_s": round(rate, 1),
    }
    if scale != 1.0:
        results["alarm"]["scale"] = scale


if __name__ == "__main__":
    r: dict = {}
    run(r)
    print(json.dumps(r, indent=2))
