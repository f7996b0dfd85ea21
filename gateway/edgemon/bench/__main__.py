"""`make bench`: measured figures, each beside a reference measured in the same run; writes results/bench.json.

Part built so far (the end-to-end issue): latency from a value change at the analyzer to the point being
queryable in InfluxDB, and from the record's sample time to queryable, beside InfluxDB's own
write-to-queryable time; the firmware's heap high-water mark under `-X heapsize=128k`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import requests

from ..config import GatewayConfig
from ..ingest import Gateway
from ..dev.nodeproc import FirmwareProcess, cod_node_config
from ..dev.simulator import AnalyzerSimulator, cod_profile
from ..dev.stack import LocalStack

RESULTS = Path("results")


def _points(url: str, db: str, q: str) -> list[list]:
    r = requests.get(url + "/query", params={"db": db, "q": q, "epoch": "ms"}, timeout=10)
    r.raise_for_status()
    out = []
    for res in r.json()["results"]:
        for s in res.get("series", []) or []:
            out.extend(s["values"])
    return out


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def influx_write_to_queryable_ms(url: str, db: str, n: int) -> list[float]:
    """Reference: post one point straight to InfluxDB and poll until a query returns it."""
    out = []
    for i in range(n):
        ts = int(time.time() * 1000)
        t0 = time.perf_counter()
        requests.post(url + "/write", params={"db": db, "precision": "ms"},
                      data=f"ref,probe=p value={float(i)} {ts}", timeout=10).raise_for_status()
        while not _points(url, db, f"SELECT value FROM ref WHERE time = {ts}ms"):
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
        while not _points(url, db, "SELECT value FROM reading LIMIT 1"):
            if time.time() > deadline:
                raise RuntimeError("no reading reached InfluxDB within 30 s; see " + str(fw.log_path))
            time.sleep(0.1)
        for i in range(changes):
            value = 100.0 + i + 0.25
            time.sleep(random.uniform(0, poll_s))  # change at a random phase of the poll cycle
            t_change = time.time()
            sim.set_value(value)
            while True:
                pts = _points(url, db, f"SELECT value FROM reading WHERE value = {value}")
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


# Other parts of `make bench` live beside this module, one per concern; each exposes
# `run(results: dict) -> None`, prints its table, and fills its sections of results/bench.json.
PARTS = ("firmware", "gateway", "alarm")  # edgemon/bench/<part>.py


def run_e2e(results: dict, changes: int = 20, poll: float = 1.0):
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
        print(f"{name:42} {_pct(vals, 50):8.0f} {_pct(vals, 99):8.0f} {max(vals):8.0f}")
    print(f"(a change waits up to one poll period, {poll * 1000:.0f} ms, before the node samples it)")
    print(f"firmware heap peak (gc.mem_alloc, -X heapsize=128k, one analyzer): {e2e['heap_peak']} bytes\n")
    results["e2e"] = {
        "poll_s": poll,
        "change_to_queryable_p50_ms": _pct(e2e["change_ms"], 50),
        "change_to_queryable_p99_ms": _pct(e2e["change_ms"], 99),
        "sample_to_queryable_p50_ms": _pct(e2e["sample_ms"], 50),
        "sample_to_queryable_p99_ms": _pct(e2e["sample_ms"], 99),
        "reference_influx_write_to_queryable_p50_ms": _pct(ref, 50),
        "firmware_heap_peak_bytes_128k": e2e["heap_peak"],
    }


def main(argv=None):
    import importlib

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", nargs="*", help="run only these parts: e2e " + " ".join(PARTS))
    ap.add_argument("--changes", type=int, default=20, help="value changes to time (default 20)")
    ap.add_argument("--poll", type=float, default=1.0, help="node poll period, s (default 1)")
    args = ap.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "bench.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    wanted = set(args.only or ("e2e",) + PARTS)
    unknown = wanted - {"e2e", *PARTS}
    if unknown:
        ap.error(f"--only: no part named {', '.join(sorted(unknown))}; the parts are: e2e {' '.join(PARTS)}")
    if "e2e" in wanted:
        run_e2e(results, args.changes, args.poll)
        path.write_text(json.dumps(results, indent=2))
    for name in PARTS:
        if name not in wanted:
            continue
        importlib.import_module(f"edgemon.bench.{name}").run(results)
        path.write_text(json.dumps(results, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
