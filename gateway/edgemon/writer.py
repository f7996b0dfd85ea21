"""The writer: drains the gateway's store into InfluxDB (v1 or v2 API). All of this runs on the
writer thread (thread "edgemon-writer", started by Gateway.start), except open(), which start()
calls on the caller's thread.

It reads the frames the journal (journal.py) appended after the cursor, writes their lines in
batches, and only then moves the cursor on (saved with per-node completeness and the status trust
state, so all three survive a restart and a re-drain counts nothing twice). While InfluxDB is down
or refusing, it retries with backoff; the data waits in the store. Points InfluxDB refuses as bad
data (HTTP 400) are found by halving the batch and go to the quarantine; the rest is written.
At stop() it drains what is left for up to stop_timeout_s, then leaves the rest for the next start.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from .config import GatewayConfig
from .influx import InfluxV1Writer, InfluxWriteError
from .statustrust import StatusTrust

if TYPE_CHECKING:
    from .ingest import Gateway

log = logging.getLogger("edgemon.ingest")  # all the ingest's parts log as before the split

JUMPS_LOGGED = 10  # seq jumps logged one by one per drained batch; the rest as a count
INFLUX_REJECT_TOPIC = "(influx write)"  # quarantine "topic" for points InfluxDB refused


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def make_influx_writer(cfg: GatewayConfig):
    if cfg.influx_api == "v2":
        from .influx_v2 import InfluxV2Writer

        return InfluxV2Writer(cfg.influx_url, cfg.influx_db, cfg.influx_org, cfg.influx_token)
    return InfluxV1Writer(cfg.influx_url, cfg.influx_db, cfg.influx_user, cfg.influx_password)


def hint(exc: InfluxWriteError, cfg: GatewayConfig) -> str:
    """What a failed write most likely means, in gateway.toml's terms."""
    what = "bucket" if cfg.influx_api == "v2" else "database"
    if exc.status in (401, 403):
        cred = "influx.token" if cfg.influx_api == "v2" else "influx.username/password"
        return f"InfluxDB refused the credentials: check {cred} in gateway.toml"
    if exc.status == 404:
        return f"InfluxDB has no {what} {cfg.influx_db!r} (or org {cfg.influx_org!r}): create it or fix influx.{what}"
    if exc.status is None:
        return "InfluxDB unreachable"
    return f"InfluxDB answered HTTP {exc.status}"


class Writer:
    def __init__(self, gw: Gateway):
        self.gw = gw
        self.influx = None  # InfluxV1Writer or InfluxV2Writer, from open()
        self.trust_saved: StatusTrust | None = None  # status trust as drained, saved with the cursor
        self.db_ready = False

    def open(self, state: dict[str, Any]) -> None:
        """start(), caller's thread: the saved state loaded with the cursor, the InfluxDB client,
        and the database created if it can be (if not, the writer keeps trying)."""
        self.trust_saved = StatusTrust(state.get("status"))
        self.influx = make_influx_writer(self.gw.cfg)
        self.ensure_database()

    def run(self) -> None:
        """The writer thread's loop: returns once stopping and drained (or out of time)."""
        gw = self.gw
        cfg = gw.cfg
        store = gw.store
        assert store is not None and self.trust_saved is not None
        next_points = time.monotonic() + cfg.ingest_interval_s
        max_bytes = max(256 * 1024, cfg.batch_max * 120 * 4)  # several requests per cursor save
        while True:
            stopping = gw._stop_requested.is_set()
            end = store.end if stopping else store.wait_for_data(gw._cursor, 0.5)
            lines: list[str] = []
            readings = 0
            new_cursor = gw._cursor
            incidents: list[tuple] = []
            if gw._cursor < end:
                bodies, new_cursor = store.read(gw._cursor, end, max_bytes)
                for body in bodies:
                    text = body.decode("utf-8")
                    head, _, rest = text.partition("\n")
                    meta = json.loads(head)  # the frame's head (journal.py)
                    readings += meta["r"]
                    with gw._lock:
                        for site, node, seqs in meta["m"]:
                            gw._counters["duplicates"] += gw._completeness.add(site, node, seqs)
                        for entry in meta.get("s", ()):
                            self.trust_saved.apply(entry)
                        for site, node, dropped, lost, key in meta.get("e", ()):
                            gw._completeness.add_loss(site, node, dropped, lost, key)
                        if gw._completeness.incidents:
                            incidents += gw._completeness.incidents
                            gw._counters["seq_jumps"] += len(gw._completeness.incidents)
                            gw._completeness.incidents = []
                    if rest:
                        lines.extend(rest.split("\n"))
            for key, seq, first, last in incidents[:JUMPS_LOGGED]:
                log.warning("%s: seq %d jumped far beyond the range %s..%s seen so far: an incident, not taken "
                            "as the new baseline (completeness seq_jumps)", key, seq, first, last)
            if len(incidents) > JUMPS_LOGGED:
                log.warning("%d more seq jumps in this batch", len(incidents) - JUMPS_LOGGED)
            now = time.monotonic()
            if now >= next_points or (stopping and new_cursor >= end):
                next_points = now + cfg.ingest_interval_s
                with gw._lock:
                    lines.extend(gw._completeness.lines(_now_ms()))
            if lines and not self.write_with_retry(lines):
                log.warning("stopping with backlog=%d readings not yet in InfluxDB; kept in the store for the next start",
                            gw._backlog_readings)
                return
            if new_cursor != gw._cursor:
                with gw._lock:
                    state = {"completeness": gw._completeness.to_json(), "status": self.trust_saved.to_json()}
                    gw._counters["readings_written"] += readings
                    gw._backlog_readings -= readings
                store.save_cursor(new_cursor, state)
                gw._cursor = new_cursor
                store.drop_before(new_cursor)
            if stopping and gw._cursor >= store.end:
                return

    def write_with_retry(self, lines: list[str]) -> bool:
        """Write until InfluxDB takes the lines (True), or until stopping runs out of time (False)."""
        gw = self.gw
        delay = 0.5
        while True:
            try:
                if not self.db_ready:
                    try:
                        self.ensure_database()
                    except InfluxWriteError as exc:
                        log.debug("CREATE DATABASE failed: %s", exc)
                self.write_isolating_bad_points(lines)
                return True
            except InfluxWriteError as exc:
                gw._count("write_errors")
                if exc.status == 404:
                    self.db_ready = False  # "database not found": create it on the next try
                why = hint(exc, gw.cfg)
                backlog = gw._backlog_readings
                if gw._stop_requested.is_set():
                    left = gw._stop_deadline - time.monotonic()
                    if left <= 0:
                        log.error("write failed while stopping: %s (%s)", why, exc)
                        return False
                    log.warning("write failed: %s; stopping, retrying for %.1f s more", why, left)
                    time.sleep(min(delay, left))
                else:
                    level = logging.ERROR if exc.status is not None and 400 <= exc.status < 500 else logging.WARNING
                    log.log(level, "write failed: %s (%s); backlog=%d readings kept in the store; retrying in %.1f s",
                            why, str(exc)[:200], backlog, delay)
                    gw._stop_requested.wait(delay)
                delay = min(delay * 2, gw.cfg.retry_max_s)

    def write_isolating_bad_points(self, lines: list[str]) -> None:
        """Write; when InfluxDB refuses the data itself (HTTP 400), halve the batch until the bad
        points are found, quarantine those and write the rest (rewrites are idempotent)."""
        gw = self.gw
        assert self.influx is not None
        try:
            self.influx.write(lines)
            return
        except InfluxWriteError as exc:
            if exc.retryable:
                raise
            if len(lines) == 1:
                gw._count("points_rejected")
                gw._count("write_errors")
                assert gw.quarantine is not None
                gw.quarantine.add(INFLUX_REJECT_TOPIC, lines[0].encode("utf-8"), f"InfluxDB refused the point: {exc}")
                gw.quarantine.sync()
                gw._count("quarantined")
                return
        half = len(lines) // 2
        self.write_isolating_bad_points(lines[:half])
        self.write_isolating_bad_points(lines[half:])

    def ensure_database(self) -> None:
        """CREATE DATABASE (v1; v2 buckets are the operator's: nothing to do). On the writer thread
        a failure raises (write_with_retry retries); at start() it is only logged."""
        assert self.influx is not None
        try:
            self.influx.ensure_database()
            self.db_ready = True
        except InfluxWriteError as exc:
            if threading.current_thread() is self.gw._threads.get("writer"):
                raise
            log.warning("cannot create database %r yet (%s); the writer keeps trying", self.gw.cfg.influx_db, exc)
