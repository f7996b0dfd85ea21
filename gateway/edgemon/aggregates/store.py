"""The aggregates' state on disk (`<state_dir>/aggregates.sqlite`): the sums and value of every
period, the record times already counted (so a replayed record is not counted twice), the periods
changed since they were last computed (`dirty`), and the computed periods not yet handed on
(`outbox`: to the InfluxDB line spool and the HJ 212 forwarder). One SQLite transaction per step,
so a crash leaves either the step done or not done."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from .stats import Acc, Value

FILE_NAME = "aggregates.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS period (site TEXT, node TEXT, param TEXT, period TEXT, start INTEGER,
    acc TEXT NOT NULL, value TEXT, PRIMARY KEY (site, node, param, period, start));
CREATE TABLE IF NOT EXISTS seen (site TEXT, node TEXT, ts INTEGER, PRIMARY KEY (site, node, ts));
CREATE TABLE IF NOT EXISTS dirty (site TEXT, node TEXT, period TEXT, start INTEGER,
    PRIMARY KEY (site, node, period, start));
CREATE TABLE IF NOT EXISTS outbox (site TEXT, node TEXT, period TEXT, start INTEGER,
    PRIMARY KEY (site, node, period, start));
"""
Key = tuple[str, str, str, int]  # site, node, period, start


def _value_json(v: Value) -> str:
    return json.dumps([v.avg, v.lo, v.hi, v.cou, v.flag, v.valid, v.n, v.count, v.weighted, v.parts])


def _value_of(text: str | None) -> Value | None:
    return None if text is None else Value(*json.loads(text))


class AggregateStore:
    def __init__(self, state_dir: Path):
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(state_dir) / FILE_NAME
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- transactions ------------------------------------------------------------------------

    def transaction(self):
        return _Tx(self)

    # --- reads and writes, inside a transaction -------------------------------------------------

    def mark_seen(self, site: str, node: str, ts: int) -> bool:
        """True when this record time was not counted before (and now is)."""
        cur = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", (site, node, ts))
        return cur.rowcount == 1

    def acc(self, site: str, node: str, param: str, period: str, start: int) -> Acc:
        row = self._db.execute("SELECT acc FROM period WHERE site=? AND node=? AND param=? AND period=? AND start=?",
                               (site, node, param, period, start)).fetchone()
        return Acc.from_json(json.loads(row[0])) if row else Acc()

    def put_acc(self, site: str, node: str, param: str, period: str, start: int, acc: Acc) -> None:
        """New sums for a period; its last computed value stays until it is computed again."""
        self._db.execute("INSERT INTO period VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT DO UPDATE SET acc=excluded.acc",
                         (site, node, param, period, start, json.dumps(acc.to_json())))

    def put(self, site: str, node: str, param: str, period: str, start: int, acc: Acc,
            value: Value | None = None) -> None:
        self._db.execute("INSERT OR REPLACE INTO period VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (site, node, param, period, start, json.dumps(acc.to_json()),
                          None if value is None else _value_json(value)))

    def params(self, site: str, node: str, period: str, lo: int, hi: int) -> list[str]:
        """The parameters with a `period` row starting in [lo, hi)."""
        rows = self._db.execute("SELECT DISTINCT param FROM period WHERE site=? AND node=? AND period=? "
                                "AND start>=? AND start<?", (site, node, period, lo, hi))
        return sorted(r[0] for r in rows)

    def parts(self, site: str, node: str, param: str, period: str, lo: int, hi: int) -> list[tuple[Acc, Value]]:
        """The computed (sums, value) of `period` rows with lo <= start < hi."""
        rows = self._db.execute("SELECT acc, value FROM period WHERE site=? AND node=? AND param=? AND period=? "
                                "AND start>=? AND start<? AND value IS NOT NULL", (site, node, param, period, lo, hi))
        return [(Acc.from_json(json.loads(a)), _value_of(v)) for a, v in rows]

    def value(self, site: str, node: str, param: str, period: str, start: int) -> Value | None:
        row = self._db.execute("SELECT value FROM period WHERE site=? AND node=? AND param=? AND period=? AND start=?",
                               (site, node, param, period, start)).fetchone()
        return _value_of(row[0]) if row else None

    def mark(self, table: str, key: Key) -> None:
        self._db.execute(f"INSERT OR IGNORE INTO {table} VALUES (?, ?, ?, ?)", key)

    def unmark(self, table: str, key: Key) -> None:
        self._db.execute(f"DELETE FROM {table} WHERE site=? AND node=? AND period=? AND start=?", key)

    def marked(self, table: str) -> list[Key]:
        return [tuple(r) for r in self._db.execute(f"SELECT site, node, period, start FROM {table} ORDER BY start")]

    def forget_before(self, ts: int) -> int:
        """Drop what is older than ts (retention): the record times and the periods' sums."""
        n = self._db.execute("DELETE FROM seen WHERE ts<?", (ts,)).rowcount
        n += self._db.execute("DELETE FROM period WHERE start<?", (ts,)).rowcount
        return n


class _Tx:
    def __init__(self, store: AggregateStore):
        self.store = store

    def __enter__(self) -> AggregateStore:
        self.store._lock.acquire()
        self.store._db.execute("BEGIN IMMEDIATE")
        return self.store

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.store._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.store._lock.release()
