"""The uplink's durable queue (`<state_dir>/uplink/queue.sqlite`): every packet for every platform,
encoded and with its QN, from the moment it is made until that platform's 9014 for it came (or, for
a packet that asks for no reply, until it was written to the socket). Oldest first per platform.
A crash between the 9014 and the delete sends that one packet once more (same QN: the platform can
tell)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

FILE_NAME = "queue.sqlite"


class UplinkQueue:
    def __init__(self, state_dir: Path):
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(Path(state_dir) / FILE_NAME, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS q (id INTEGER PRIMARY KEY AUTOINCREMENT, platform TEXT, "
                         "cn TEXT, qn TEXT, reply INTEGER, raw BLOB, made INTEGER)")
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)

    def put(self, items: list[tuple[str, str, str, bool, bytes]]) -> None:
        """(platform, cn, qn, reply wanted, raw packet) each, in one transaction."""
        if not items:
            return
        with self._cond:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO q (platform, cn, qn, reply, raw, made) VALUES (?, ?, ?, ?, ?, ?)",
                                 [(p, cn, qn, int(r), raw, int(time.time() * 1000)) for p, cn, qn, r, raw in items])
            self._db.execute("COMMIT")
            self._cond.notify_all()

    def oldest(self, platform: str, wait_s: float = 0.0) -> tuple[int, str, str, bool, bytes] | None:
        with self._cond:
            row = None
            deadline = time.monotonic() + wait_s
            while True:
                row = self._db.execute("SELECT id, cn, qn, reply, raw FROM q WHERE platform=? ORDER BY id LIMIT 1",
                                       (platform,)).fetchone()
                left = deadline - time.monotonic()
                if row is not None or left <= 0:
                    break
                self._cond.wait(left)
        return None if row is None else (row[0], row[1], row[2], bool(row[3]), row[4])

    def done(self, item_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM q WHERE id=?", (item_id,))

    def count(self, platform: str | None = None) -> int:
        with self._lock:
            if platform is None:
                return self._db.execute("SELECT COUNT(*) FROM q").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM q WHERE platform=?", (platform,)).fetchone()[0]

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._lock:
            self._db.close()
