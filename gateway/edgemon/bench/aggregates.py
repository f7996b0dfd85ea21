"""`make bench` part: the aggregator's throughput (edgemon.aggregates) on its real SQLite store
(WAL, synchronous=FULL), one transaction per record as the gateway hands them over, beside the
same number of transactions on a bare SQLite table in the same folder (the store's floor), and
beside the nominal load (1,000 sites, one record every 10 s).

Workload: SITES sites x one node, 5 parameters (COD, NH3-N, TP, pH, flow) every 10 s for one hour
of record time; then every minute, hour (and the day, not yet over: not computed) is computed.
EDGEMON_BENCH_SCALE shrinks the number of sites."""

from __future__ import annotations

import sqlite3
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from ..aggregates.engine import Aggregator, SiteSettings
from ..aggregates.observer import units
from ..aggregates.store import AggregateStore
from ..contract import Reading, Record
from .common import scale

SITES = 100
POLL_S = 10
HOUR_RECORDS = 3600 // POLL_S
NOMINAL_RECORDS_PER_S = 1000 / POLL_S
T0 = int(datetime(2026, 12, 6, 2, 0, tzinfo=timezone.utc).timestamp() * 1000)


def _records(i: int) -> Record:
    ts = T0 + i * POLL_S * 1000
    return Record(ts, i + 1, "ntp", {"w01018": Reading(30.0 + i % 7, "N"), "w21003": Reading(1.2, "N"),
                                     "w21011": Reading(0.3, "N"), "w01001": Reading(7.1, "N"),
                                     "w00000": Reading(120.0 + i % 5, "N")})


def measure(sites: int, folder: Path) -> dict:
    settings = {f"s{k}": SiteSettings(poll_s=POLL_S) for k in range(sites)}
    agg = Aggregator(AggregateStore(folder / "agg"), settings, units=units(), close_after_s=0,
                     retention_days=40)
    now = T0 + 3_600_000
    t = time.perf_counter()
    for i in range(HOUR_RECORDS):
        rec = [_records(i)]
        for site in settings:
            agg.add(site, "n1", rec, now)
    add_s = time.perf_counter() - t
    t = time.perf_counter()
    computed = agg.compute(now + 60_000)
    compute_s = time.perf_counter() - t
    records = HOUR_RECORDS * sites
    points = len(agg.pending())
    agg.store.close()

    # the floor: the same number of one-row transactions, WAL + synchronous=FULL, on a bare table
    db = sqlite3.connect(folder / "bare.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (site TEXT, ts INTEGER, body TEXT, PRIMARY KEY (site, ts))")
    t = time.perf_counter()
    for i in range(HOUR_RECORDS):
        for k in range(sites):
            db.execute("BEGIN")
            db.execute("INSERT INTO t VALUES (?, ?, ?)", (f"s{k}", i, "x" * 100))
            db.execute("COMMIT")
    bare_s = time.perf_counter() - t
    db.close()
    return {
        "sites": sites, "records": records, "readings": records * 5,
        "records_per_s": records / add_s, "readings_per_s": records * 5 / add_s,
        "compute_periods": computed, "compute_s": compute_s, "points": points,
        "reference_sqlite_bare_transactions_per_s": records / bare_s,
        "reference_nominal_records_per_s": NOMINAL_RECORDS_PER_S,
    }


def run(results: dict) -> None:
    sites = max(5, int(SITES * scale()))
    with tempfile.TemporaryDirectory(prefix="edgemon-bench-agg-") as d:
        r = measure(sites, Path(d))
    results["aggregates"] = r
    print(f"aggregates: {r['records']:,} records ({r['readings']:,} readings, {sites} sites x 1 h at 10 s), "
          f"one transaction each: {r['records_per_s']:,.0f} records/s = {r['readings_per_s']:,.0f} readings/s; "
          f"bare SQLite, same transactions: {r['reference_sqlite_bare_transactions_per_s']:,.0f}/s "
          f"(ratio {r['records_per_s'] / r['reference_sqlite_bare_transactions_per_s']:.2f}); "
          f"nominal load {NOMINAL_RECORDS_PER_S:,.0f} records/s "
          f"(x{r['records_per_s'] / NOMINAL_RECORDS_PER_S:,.0f}); computing {r['compute_periods']:,} periods "
          f"took {r['compute_s']:.1f} s")
