"""`make bench`, end-to-end part: latency from a value change at a simulated analyzer, through the real
firmware (MicroPython unix port), Mosquitto and the gateway, to the point being queryable in InfluxDB;
and from the record's sample time to queryable. Reference, same run: one point posted straight to
InfluxDB until a query returns it.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import requests

from .common import influx_points, pct
from ..config import GatewayConfig
from ..ingest import Gateway
from ..dev.nodeproc import FirmwareProcess, cod_node_config
from ..dev.simulator import AnalyzerSimulator, cod_profile
from ..dev.stack import LocalStack


def influx_write_to_queryable_ms(url: str, db: str, n: int) -> list[float]:
    """Reference: post one point straight to InfluxDB and poll until a query returns it."""
    out = []
    for i in range(n):
        ts = int(time.time() * 1000)
        t0 = time.perf_counter()
        requests.post(url + "/write", params={"db": db, "precision": "ms"},
                      data=f"ref,probe=p value={float(i)} {ts}", timeout=10).raise_for_status()
        while not influx_points(url, db, f"SELECT value FROM ref WHERE time = {ts}ms"):
            time.sleep(0.005)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def e2e_latency(stack: LocalStack, work: Path, changes: int, poll_s: float) -> dict:
    db = stack.influx.database
    url = stack.influx.url
    gw = Gateway(GatewayConfig(mqtt_host=stack.mosquitto.host, mqtt_port=stack.mosquitto.port,
                               mqtt_user=stack.gateway_user, mqtt_password=stack.gateway_password,
                               influx_url=url, influx_db=db, state_dir=work / "gw"))
    gw.start()
    sim = AnalyzerSimulator(cod_profile()).start()
    user = "bench.node"
    pw = stack.mosquitto.add_user(user)
    cfg = cod_node_config("bench_site", "node01", mqtt_port=stack.mosquitto.port, mqtt_user=user,
                          mqtt_password=pw, analyzer_port=sim.port, state_dir=work / "node", poll_s=poll_s)
    fw = FirmwareProcess(cfg, work / "node.json").start()
    change_ms, sample_ms = [], []
    try:
        deadline = time.time() + 30
        while not influx_points(url, db, "SELECT value FROM reading LIMIT 1"):
            if time.time() > deadline:
                raise RuntimeError("no reading reached InfluxDB within 30 s; see " + str(fw.log_path))
            time.sleep(0.1)
        for i in range(changes):
            value = 100.0 + i + 0.25
            time.sleep(random.uniform(0, poll_s))  # change at a random phase of the poll cycle
            t_change = time.time()
            sim.set_value(value)
            while True:
                pts = influx_points(url, db, f"SELECT value FROM reading WHERE value = {value}")
                if pts:
                    t_seen = time.time()
                    change_ms.append((t_seen - t_change) * 1000)
                    sample_ms.append(t_seen * 1000 - pts[0][0])
                    break
                if time.time() - t_change > 30:
                    raise RuntimeError(f"value {value} never reached InfluxDB")
                time.sleep(0.01)
            print(f"  change {i + 1}/{changes}: {change_ms[-1]:.0f} ms (sample->queryable {sample_ms[-1]:.0f} ms)",
                  flush=True)
    finally:
        fw.stop()
        sim.stop()
        gw.stop()
    return {"change_ms": change_ms, "sample_ms": sample_ms, "heap_peak": fw.heap_peak}


def run(results: dict, changes: int = 20, poll: float = 1.0) -> None:
    with tempfile.TemporaryDirectory(prefix="edgemon-bench-") as tmp, LocalStack(Path(tmp) / "stack") as stack:
        print("reference: InfluxDB write -> queryable, 50 single points", flush=True)
        ref = influx_write_to_queryable_ms(stack.influx.url, stack.influx.database, 50)
        print(f"end to end: {changes} value changes at the analyzer, node poll {poll} s", flush=True)
        e2e = e2e_latency(stack, Path(tmp), changes, poll)

    rows = [
        ("value change at analyzer -> queryable", e2e["change_ms"]),
        ("record sample time -> queryable", e2e["sample_ms"]),
        ("reference: InfluxDB write -> queryable", ref),
    ]
    print(f"\n{'latency':42} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, vals in rows:
        print(f"{name:42} {pct(vals, 50):8.0f} {pct(vals, 99):8.0f} {max(vals):8.0f}")
    print(f"(a change waits up to one poll period, {poll * 1000:.0f} ms, before the node samples it)")
    print(f"firmware heap peak (gc.mem_alloc, -X heapsize=128k, one analyzer): {e2e['heap_peak']} bytes\n")
    results["e2e"] = {
        "poll_s": poll,
        "change_to_queryable_p50_ms": pct(e2e["change_ms"], 50),
        "change_to_queryable_p99_ms": pct(e2e["change_ms"], 99),
        "sample_to_queryable_p50_ms": pct(e2e["sample_ms"], 50),
        "sample_to_queryable_p99_ms": pct(e2e["sample_ms"], 99),
        "reference_influx_write_to_queryable_p50_ms": pct(ref, 50),
        "firmware_heap_peak_bytes_128k": e2e["heap_peak"],
    }
