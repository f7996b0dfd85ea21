"""`make bench`, gateway part: throughput, loss, memory and latency of the durable gateway, each
beside a reference measured in the same run.

Workload: 200,000 QoS 1 messages from 1,000 sites, 5 readings each (1,000,000 readings), signed with
each node's key, through Mosquitto and the gateway (its own process, durability on: fsync'd store
before every PUBACK, and end-to-end confirmation: a signed confirmation per node each second) into
InfluxDB 1.x; and the same with confirmation off (what it costs). References: the same points
posted straight to InfluxDB in batches of 5,000, and the raw broker rate with paho and with C
clients (bench/brokerref.py). This machine's broker rate varies a lot run to run, so each
reference and each gateway run is measured ROUNDS times, interleaved, and every ratio is reported
as min/median/max over the rounds.
Nominal load: 1,000 sites each publishing every 10 s, with probe records timed from publish to
queryable. EDGEMON_BENCH_SCALE (default 1.0) shrinks the workload for a quick run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import requests
from paho.mqtt.enums import CallbackAPIVersion

from .brokerref import drop_session, reference_broker_c, reference_broker_paho
from .common import pct, reading_count, scale as workload_scale
from .loadgen import PARAMS, GatewayProcess, Publisher, gateway_toml, record_payload
from ..dev.procutil import child_kwargs
from ..dev.stack import LocalStack
from ..keys import signed_payload

SITES = 1000
MESSAGES = 200_000
TS0 = 1764000000000
ROUNDS = 3


def node_key(site: str, node: str) -> bytes:
    """The bench's key for a node (derived, so the publisher and the gateway's keys file agree)."""
    return hashlib.sha256(f"edgemon-bench/{site}/{node}".encode()).digest()


def keys_file(path: Path, prefix: str, node: str, sites: int = SITES) -> Path:
    path.write_text("[keys]\n" + "".join(f'"{prefix}{i:04d}/{node}" = "{node_key(f"{prefix}{i:04d}", node).hex()}"\n'
                                         for i in range(sites)))
    os.chmod(path, 0o600)
    return path


# ---------------------------------------------------------------- child processes (publisher, bare subscriber)

def _publish_main(args) -> None:
    pw = os.environ["EDGEMON_MQTT_PASSWORD"]
    pub = Publisher("127.0.0.1", args.port, args.user, pw, args.client_id)
    keys = [node_key(f"{args.prefix}{i:04d}", args.node) for i in range(args.sites)] if args.signed else None
    t0 = time.perf_counter()
    for i in range(args.n):
        site, seq = i % args.sites, i // args.sites + 1
        payload = record_payload(seq, TS0 + seq * 10_000, 1.0 + seq)
        if keys:
            payload = signed_payload(payload, keys[site])
        pub.publish(f"edge/v1/{args.prefix}{site:04d}/{args.node}/data", payload)
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
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(args.topic, qos=1)
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

def reference_influx(stack: LocalStack, n_msgs: int, tag: str) -> float:
    db = f"ref_influx_{tag}"
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


def _rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def gateway_throughput(stack: LocalStack, work: Path, n_msgs: int, tag: str, confirm: bool = True) -> dict:
    """The gateway end to end on signed records of nodes it holds keys for (node name `tag`, so
    each run has its own topics, database and broker session)."""
    db = f"bench_gw_{tag}"
    stack.influx.create_database(db)
    keys = keys_file(work / f"keys-{tag}.toml", "g", tag)
    extra = f'[trust]\nkeys_file = "{keys}"\nrequire_signatures = true\n'
    cfg = gateway_toml(work / f"gw-{tag}.toml", gateway_id=f"bench-gw-{tag}", state_dir=work / f"gw-state-{tag}",
                       mqtt_port=stack.mosquitto.port, mqtt_user=stack.gateway_user, influx_url=stack.influx.url,
                       database=db, extra=extra)
    if not confirm:
        cfg.write_text(cfg.read_text().replace("[gateway]\n", "[gateway]\nconfirm = false\n", 1))
    gw = GatewayProcess(cfg, work / f"gw-{tag}.log", stack.gateway_password).start()
    expected = n_msgs * len(PARAMS)
    t0 = time.perf_counter()
    pub = bench_child(["publish", "--port", str(stack.mosquitto.port), "--user", stack.gateway_user, "--n", str(n_msgs),
                       "--sites", str(SITES), "--prefix", "g", "--node", tag, "--signed",
                       "--client-id", f"bench-gw-pub-{tag}"], stack.gateway_password)
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
    drop_session(stack, f"bench-gw-{tag}")
    return {"readings_per_s": got / elapsed, "elapsed_s": elapsed, "lost": expected - got,
            "duplicates": int(stats.get("duplicates", -1)), "peak_rss_mb": rss, "readings": got,
            "quarantined": int(stats.get("quarantined", 0))}


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


def spread(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def run(results: dict) -> None:
    scale = workload_scale()
    n_msgs = max(1000, int(MESSAGES * scale))
    nominal_s = max(10.0, 60.0 * scale)
    note = "" if scale == 1.0 else f"  (EDGEMON_BENCH_SCALE={scale}: a reduced run, not the reference workload)"
    print(f"gateway bench: {n_msgs} messages x 5 readings from {SITES} sites, {ROUNDS} interleaved rounds{note}",
          flush=True)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="edgemon-bench-gw-") as tmp, LocalStack(Path(tmp) / "stack") as stack:
        work = Path(tmp)
        for r in range(ROUNDS):
            row = {}
            print(f"  round {r + 1}/{ROUNDS}: raw InfluxDB ingest (batches of 5,000)...", flush=True)
            row["influx_pps"] = reference_influx(stack, n_msgs, f"r{r}")
            print(f"  round {r + 1}/{ROUNDS}: raw broker, paho clients...", flush=True)
            row["broker_paho_mps"] = reference_broker_paho(stack, n_msgs, f"b{r}", SITES)
            print(f"  round {r + 1}/{ROUNDS}: raw broker, C clients (mosquitto_pub/mosquitto_sub)...", flush=True)
            row["broker_c_mps"] = reference_broker_c(stack, n_msgs, f"c{r}")
            print(f"  round {r + 1}/{ROUNDS}: gateway end to end, confirmation on...", flush=True)
            row["on"] = gateway_throughput(stack, work, n_msgs, f"on{r}", confirm=True)
            print(f"  round {r + 1}/{ROUNDS}: gateway end to end, confirmation off...", flush=True)
            row["off"] = gateway_throughput(stack, work, n_msgs, f"off{r}", confirm=False)
            print("    " + ", ".join(f"{k} {v:,.0f}" for k, v in row.items() if not isinstance(v, dict))
                  + f", gateway {row['on']['readings_per_s']:,.0f} (confirmation off {row['off']['readings_per_s']:,.0f})"
                  " readings/s", flush=True)
            rounds.append(row)
        print(f"  nominal load for {nominal_s:.0f} s (1,000 sites every 10 s), probes every 0.5 s...", flush=True)
        lat = nominal_latency(stack, work, nominal_s)
    k = len(PARAMS)
    on = [x["on"]["readings_per_s"] for x in rounds]
    off = [x["off"]["readings_per_s"] for x in rounds]
    slower = [min(x["influx_pps"], x["broker_paho_mps"] * k) for x in rounds]
    out = {
        "rounds": ROUNDS,
        "readings_per_s": spread(on),
        "readings_per_s_confirm_off": spread(off),
        "confirm_on_over_off": spread([a / b for a, b in zip(on, off)]),
        "reference_influx_points_per_s": spread([x["influx_pps"] for x in rounds]),
        "reference_broker_paho_msgs_per_s": spread([x["broker_paho_mps"] for x in rounds]),
        "reference_broker_c_msgs_per_s": spread([x["broker_c_mps"] for x in rounds]),
        "over_slower_reference": spread([a / b for a, b in zip(on, slower)]),
        "over_broker_paho": spread([a / (x["broker_paho_mps"] * k) for a, x in zip(on, rounds)]),
        "over_influx": spread([a / x["influx_pps"] for a, x in zip(on, rounds)]),
        "over_broker_c": spread([a / (x["broker_c_mps"] * k) for a, x in zip(on, rounds)]),
        "lost": sum(x[m]["lost"] for x in rounds for m in ("on", "off")),
        "duplicates": sum(max(0, x[m]["duplicates"]) for x in rounds for m in ("on", "off")),
        "quarantined": sum(x[m]["quarantined"] for x in rounds for m in ("on", "off")),
        "peak_rss_mb": spread([x["on"]["peak_rss_mb"] for x in rounds]),
        "peak_rss_mb_confirm_off": spread([x["off"]["peak_rss_mb"] for x in rounds]),
        "p50_ms": round(pct(lat, 50), 1), "p99_ms": round(pct(lat, 99), 1), "nominal_probes": len(lat),
        "messages": n_msgs, "sites": SITES,
    }
    if scale != 1.0:
        out["scale"] = scale
    print(f"\n{'gateway (same run, ' + str(ROUNDS) + ' rounds)':46} {'min':>10} {'median':>10} {'max':>10}")
    for name, key, fmt in (("end to end readings/s (confirmation on)", "readings_per_s", "{:,.0f}"),
                           ("end to end readings/s (confirmation off)", "readings_per_s_confirm_off", "{:,.0f}"),
                           ("confirmation on / off", "confirm_on_over_off", "{:.2f}"),
                           ("reference: raw InfluxDB points/s", "reference_influx_points_per_s", "{:,.0f}"),
                           ("reference: raw broker msgs/s, paho", "reference_broker_paho_msgs_per_s", "{:,.0f}"),
                           ("reference: raw broker msgs/s, C clients", "reference_broker_c_msgs_per_s", "{:,.0f}"),
                           ("end to end / slower reference", "over_slower_reference", "{:.2f}"),
                           ("end to end / broker (paho) x 5", "over_broker_paho", "{:.2f}"),
                           ("end to end / broker (C) x 5", "over_broker_c", "{:.2f}"),
                           ("gateway peak RSS (VmHWM), MB", "peak_rss_mb", "{:.1f}")):
        v = out[key]
        print(f"{name:46} {fmt.format(v['min']):>10} {fmt.format(v['median']):>10} {fmt.format(v['max']):>10}")
    print(f"lost {out['lost']}, duplicates {out['duplicates']}, quarantined {out['quarantined']} (all runs); "
          f"nominal publish -> queryable p50 {out['p50_ms']:.0f} ms, p99 {out['p99_ms']:.0f} ms ({len(lat)} probes)")
    if note:
        print(note.strip())
    print()
    results["gateway"] = out
    results["reference"] = {"influx_points_per_s": out["reference_influx_points_per_s"]["median"],
                            "broker_msgs_per_s": out["reference_broker_paho_msgs_per_s"]["median"],
                            "broker_c_msgs_per_s": out["reference_broker_c_msgs_per_s"]["median"]}


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
        p.add_argument("--node", default="n1")
        p.add_argument("--signed", action="store_true", help="sign each record with its node's bench key")
        p.add_argument("--topic", default="edge/v1/+/+/data")
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
