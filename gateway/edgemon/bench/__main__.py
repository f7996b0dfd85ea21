"""`make bench`: every figure beside a reference measured in the same run; writes results/bench.json.

One module per part, each with `run(results: dict) -> None` that prints its table and fills its
sections of results/bench.json (shape: docs/ARCHITECTURE.md section 8):
  e2e       value change at the analyzer -> queryable in InfluxDB (real firmware, broker, gateway)
  firmware  the node's heap (smallest -X heapsize that holds), Modbus CPU, flash use, replay speed
  gateway   throughput, loss, memory and latency under 1,000 sites; raw InfluxDB and broker references
  alarm     breaching record -> SMS PDU at the modem, under that load and with no load
  aggregates  the HJ 212 aggregator's records/s on its SQLite store; bare SQLite and the nominal load
  report    (after them) the one table of figure / reference / ratio: results/bench.md and .png

Examples:
  python -m edgemon.bench                      # everything (what `make bench` runs)
  python -m edgemon.bench --only firmware      # one part
  EDGEMON_BENCH_SCALE=0.1 python -m edgemon.bench --only gateway alarm   # a quick, reduced run
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

RESULTS = Path("results")
PARTS = ("e2e", "firmware", "gateway", "alarm", "aggregates")  # edgemon/bench/<part>.py


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m edgemon.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="run only these parts: " + " ".join(PARTS))
    ap.add_argument("--changes", type=int, default=20, help="value changes to time (default 20)")
    ap.add_argument("--poll", type=float, default=1.0, help="node poll period, s (default 1)")
    args = ap.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "bench.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    wanted = set(args.only or PARTS)
    unknown = wanted - set(PARTS)
    if unknown:
        ap.error(f"--only: no part named {', '.join(sorted(unknown))}; the parts are: {' '.join(PARTS)}")
    for name in PARTS:
        if name not in wanted:
            continue
        part = importlib.import_module(f"edgemon.bench.{name}")
        if name == "e2e":
            part.run(results, args.changes, args.poll)
        else:
            part.run(results)
        path.write_text(json.dumps(results, indent=2))
    print(f"written {path}")
    from .report import write  # the one table (results/bench.md) and its chart (results/bench.png)
    for p in write(results, RESULTS):
        print(f"written {p}")


if __name__ == "__main__":
    main()
