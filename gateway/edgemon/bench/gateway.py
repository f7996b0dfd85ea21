"""`make bench`, gateway part: throughput, loss, memory and latency of the durable gateway, each
beside a reference measured in the same run.

Workload: 200,000 QoS 1 messages from 1,000 sites, 5 readings each (1,000,000 readings) through
Mosquitto and the gateway (its own process, durability on: fsync'd store before every PUBACK) into
InfluxDB 1.x. References: the same points posted straight to InfluxDB in batches of 5,000, and the
raw broker rate (a bare paho subscriber, QoS 1; publisher and subscriber in their own processes).
Nominal load: 1,000 sites each publishing every 10 s, with probe records timed from publish to
queryable. EDGEMON_BENCH_SCALE (default 1.0) shrinks the workload for a quick run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import requests
from paho.mqtt.enums import CallbackAPIVersion

from .common import pct, reading_count, scale as workload_scale
from .loadgen import PARAMS, GatewayProcess, Publisher, gateway_toml, record_payload
from ..dev.procutil import child_kwargs
from ..dev.stack import LocalStack

SITES = 1000
MESSAGES = 200_000
TS0 = 1764000000000


# ---------------------------------------------------------------- child processes (publisher, bare subscriber)

def _publish_main(args) -> None:
    pw = os.environ["EDGEMON_MQTT_PASSWORD"]
    pub = Publisher("127.0.0.1", args.port, args.user, pw, args.client_id)
    t0 = time.perf_counter()
    for i in range(args.n):
        site, seq = i % args.sites, i // args.sites + 1
        pub.publish(f"edge/v1/{args.prefix}{site:04d}/n1/data", record_payload(seq, TS0 + seq * 10_000, 1.0 + seq))
    pub.wait_all(timeout=3600)
    print(f"{time.perf_counter() - t0:.3f}", flush=True)
    pub.close()


def _subscribe_main(args) -> None:
    pw = os.environ["EDGEMON_MQTT_PASSWORD"]
    got = {"n": 0, "t0": None, "t1": None}
    done = threading.Event()

    def on_message(client, userdata, msg):
        if got["t0"] is None:
            got["t0"] = time.perf_counter()
        got["n"] += 1
        if got["n"] >= args.n:
            got["t1"] = time.perf_counter()
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id, protocol=mqtt.MQTTv311)
    c.username_pw_set(args.user, pw)
    c.on_message = on_message
    subscribed = threading.Event()
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe("edge/v1/+/+/data", qos=1)
    c.on_subscribe = lambda cl, u, mid, rcs, p: subscribed.set()
    c.connect("127.0.0.1", args.port)
    c.loop_start()
    subscribed.wait(30)
    print("ready", flush=True)
    done.wait(3600)
    c.loop_stop()
    print(f"{got['t1'] - got['t0']:.3f}", flush=True)


def bench_child(argv: list[str], password: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgemon.bench.gateway", *argv], stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, EDGEMON_MQTT_PASSWORD=password), **child_kwargs())


# ---------------------------------------------------------------- measurements

def reference_influx(stack: LocalStack, n_msgs: int) -> float:
    db = "ref_influx"
    stack.influx.create_database(db)
    lines = []
    for i in range(n_msgs):
        site, seq = i % SITES, i // SITES + 1
        ts = TS0 + seq * 10_000
        for k, p in enumerate(PARAMS):
            lines.append(f'reading,node=n1,param={p},site=r{site:04d} value={1.0 + seq + k},flag="N" {ts}')
    session = requests.Session()
    t0 = time.perf_counter()
    for start in range(0, len(lines), 5000):
        body = "\n".join(lines[start : start + 5000]).encode()
        session.post(stack.influx.url + "/write", params={"db": db, "precision": "ms"}, data=body,
                     timeout=60).raise_for_status()
    elapsed = time.perf_counter() - t0
    return len(lines) / elapsed


def reference_broker(stack: LocalStack, n_msgs: int) -> float:
    user, pw = stack.gateway_user, stack.gateway_password
    sub = bench_child(["subscribe", "--port", str(stack.mosquitto.port), "--user", user, "--n", str(n_msgs),
                  "--prefix", "b", "--client-id", "bench-bare-sub"], pw)
    assert sub.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    pub = bench_child(["publish", "--port", str(stack.mosquitto.port), "--user", user, "--n", str(n_msgs),
                  "--sites", str(SITES), "--prefix", "b", "--client-id", "bench-bare-pub"], pw)
    pub.communicate(timeout=3600)
    out, _ = sub.communicate(timeout=3600)
    return n_msgs / float(out.strip().splitlines()[-1])


def _rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def gateway_throughput(stack: LocalStack, work: Path, n_msgs: int) -> dict:
    db = "bench_gw"
    stack.influx.create_database(db)
    cfg = gateway_toml(work / "gw.toml", gateway_id="bench-gw", state_dir=work / "gw-state",
                       mqtt_port=stack.mosquitto.port, mqtt_user=stack.gateway_user, influx_url=stack.influx.url,
                       database=db)
    gw = GatewayProcess(cfg, work / "gw.log", stack.gateway_password).start()
    expected = n_msgs * len(PARAMS)
    t0 = time.perf_counter()
    pub = bench_child(["publish", "--port", str(stack.mosquitto.port), "--user", stack.gateway_user, "--n", str(n_msgs),
                  "--sites", str(SITES), "--prefix", "g", "--client-id", "bench-gw-pub"], stack.gateway_password)
    got = 0
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        got = reading_count(stack.influx.url, db)
        if got >= expected:
            break
        if pub.poll() is not None and gw.proc.poll() is not None:
            break
        time.sleep(0.5)
    elapsed = time.perf_counter() - t0
    pub.communicate(timeout=60)
    rss = _rss_peak_mb(gw.pid)
    stats = gw.stop() or {}
    return {"readings_per_s": got / elapsed, "elapsed_s": elapsed, "lost": expected - got,
            "duplicates": int(stats.get("duplicates", -1)), "peak_rss_mb": rss, "readings": got}


def nominal_latency(stack: LocalStack, work: Path, duration_s: float) -> list[float]:
    """1,000 sites every 10 s (100 messages/s) for duration_s; a probe record every 0.5 s is timed
    from publish to being returned by a query."""
    db = "bench_nominal"
    stack.influx.create_database(db)
    cfg = gateway_toml(work / "gwn.toml", gateway_id="bench-gw-nominal", state_dir=work / "gwn-state",
                       mqtt_port=stack.mosquitto.port, mqtt_user=stack.gateway_user, influx_url=stack.influx.url,
                       database=db)
    gw = GatewayProcess(cfg, work / "gwn.log", stack.gateway_password).start()
    pub = Publisher("127.0.0.1", stack.mosquitto.port, stack.gateway_user, stack.gateway_password, "bench-nominal-pub")
    stop = threading.Event()

    def background():
        i = 0
        next_at = time.monotonic()
        while not stop.is_set():
            site, seq = i % SITES, i // SITES + 1
            pub.publish(f"edge/v1/nom{site:04d}/n1/data", record_payload(seq, int(time.time() * 1000), 1.0))
            i += 1
            next_at += 0.01
            time.sleep(max(0.0, next_at - time.monotonic()))

    t = threading.Thread(target=background, daemon=True)
    t.start()
    latencies = []
    session = requests.Session()
    end = time.monotonic() + duration_s
    seq = 0
    while time.monotonic() < end:
        seq += 1
        ts = int(time.time() * 1000)
        t0 = time.perf_counter()
        pub.publish("edge/v1/probe/n1/data", record_payload(seq, ts, 1.0))
        q = f"SELECT count(\"value\") FROM \"reading\" WHERE site = 'probe' AND time = {ts}ms"
        while True:
            r = session.get(stack.influx.url + "/query", params={"db": db, "q": q}, timeout=10).json()
            if r["results"][0].get("series"):
                latencies.append((time.perf_counter() - t0) * 1000)
                break
            if time.perf_counter() - t0 > 30:
                raise RuntimeError("probe record not queryable within 30 s")
            time.sleep(0.002)
        time.sleep(max(0.0, 0.5 - (time.perf_counter() - t0)))
    stop.set()
    t.join()
    pub.wait_all()
    pub.close()
    gw.stop()
    return latencies


def run(results: dict) -> None:
    scale = workload_scale()
    n_msgs = max(1000, int(MESSAGES * scale))
    nominal_s = max(10.0, 60.0 * scale)
    note = "" if scale == 1.0 else f"  (EDGEMON_BENCH_SCALE={scale}: a reduced run, not the reference workload)"
    print(f"gateway bench: {n_msgs} messages x 5 readings from {SITES} sites{note}", flush=True)
    with tempfile.TemporaryDirectory(prefix="edgemon-bench-gw-") as tmp, LocalStack(Path(tmp) / "stack") as stack:
        work = Path(tmp)
        print("  reference: raw InfluxDB ingest (batches of 5,000)...", flush=True)
        influx_pps = reference_influx(stack, n_msgs)
        print("  reference: raw broker rate (bare paho subscriber, QoS 1)...", flush=True)
        broker_mps = reference_broker(stack, n_msgs)
        print("  gateway end to end (durability on)...", flush=True)
        gw = gateway_throughput(stack, work, n_msgs)
        print(f"  nominal load for {nominal_s:.0f} s (1,000 sites every 10 s), probes every 0.5 s...", flush=True)
        lat = nominal_latency(stack, work, nominal_s)
    slower_ref = min(influx_pps, broker_mps * len(PARAMS))
    print(f"\n{'gateway (same run)':46} {'value':>14}")
    rows = [
        ("end to end readings/s (durable)", f"{gw['readings_per_s']:,.0f}"),
        ("reference: raw InfluxDB points/s", f"{influx_pps:,.0f}"),
        ("reference: raw broker messages/s", f"{broker_mps:,.0f}"),
        ("  = readings/s at 5 readings per message", f"{broker_mps * len(PARAMS):,.0f}"),
        ("end to end / slower reference", f"{gw['readings_per_s'] / slower_ref:.2f}"),
        ("lost readings", f"{gw['lost']}"),
        ("duplicate records", f"{gw['duplicates']}"),
        ("gateway peak RSS (VmHWM), MB", f"{gw['peak_rss_mb']:.1f}"),
        ("nominal publish -> queryable p50, ms", f"{pct(lat, 50):.0f}"),
        ("nominal publish -> queryable p99, ms", f"{pct(lat, 99):.0f}"),
        ("nominal probes", f"{len(lat)}"),
    ]
    for name, value in rows:
        print(f"{name:46} {value:>14}")
    if note:
        print(note.strip())
    print()
    results["gateway"] = {
        "readings_per_s": round(gw["readings_per_s"], 1), "lost": gw["lost"], "duplicates": gw["duplicates"],
        "peak_rss_mb": round(gw["peak_rss_mb"], 1), "p50_ms": round(pct(lat, 50), 1),
        "p99_ms": round(pct(lat, 99), 1),
    }
    results["reference"] = {"influx_points_per_s": round(influx_pps, 1), "broker_msgs_per_s": round(broker_mps, 1)}
    if scale != 1.0:
        results["gateway"]["scale"] = scale


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd")
    for name in ("publish", "subscribe"):
        p = sub.add_parser(name)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--user", required=True)
        p.add_argument("--n", type=int, required=True)
        p.add_argument("--sites", type=int, default=SITES)
        p.add_argument("--prefix", default="g")
        p.add_argument("--client-id", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "publish":
        _publish_main(args)
    elif args.cmd == "subscribe":
        _subscribe_main(args)
    else:
        import json

        results: dict = {}
        run(results)
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
