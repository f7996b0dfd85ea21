"""The fault suites' account (tests/integration/test_system_faults.py, test_gateway_faults.py):
each scenario's row goes into results/faults.json (replacing an older row of that scenario), and
the rows of this run are printed as one table at the end of `make test` / `make test-faults`
(tests/conftest.py). Shape of a row: {"scenario", "faults", "produced", "stored", "lost",
"duplicated"} (+ "redelivered" for the gateway-only scenarios); docs/ARCHITECTURE.md section 8.

  python -m edgemon.dev.faultlog     # the table of results/faults.json (what the README carries)
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[3] / "results" / "faults.json"
THIS_RUN: list[dict] = []


def record(row: dict, path: Path = RESULTS) -> None:
    path.parent.mkdir(exist_ok=True)
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):
        rows = []
    path.write_text(json.dumps([r for r in rows if r.get("scenario") != row["scenario"]] + [row], indent=2) + "\n")
    THIS_RUN.append(row)


def table(rows: list[dict]) -> str:
    out = ["| scenario | faults | produced | stored | lost | duplicated |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        faults = "; ".join(r["faults"]) if isinstance(r["faults"], list) else str(r["faults"])
        out.append(f"| `{r['scenario']}` | {faults} | {r['produced']} | {r['stored']} | {r['lost']} | {r['duplicated']} |")
    return "\n".join(out)


if __name__ == "__main__":
    print(table(json.loads(RESULTS.read_text())))
