"""InfluxDB points made by observers (the alarm side's `alarm`, `sms`, `modem`; the aggregates) on
their way out: spooled on disk (`<state_dir>/<file_name>`, alarm_lines.json for the alarms) first,
then written by one thread through the gateway's influx_write, retried with backoff while InfluxDB
is down. Writes are idempotent, so a line
written twice after a crash is the same point."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from .sms import store

log = logging.getLogger(__name__)

FILE_NAME = "alarm_lines.json"
MAX_SPOOL = 100_000  # beyond this the oldest lines are dropped (and logged): the disk is not endless


class LineSink:
    def __init__(self, state_dir: Path, influx_write: Callable[[list[str]], None], file_name: str = FILE_NAME,
                 thread_name: str = "edgemon-alarm-lines"):
        self.path = Path(state_dir) / file_name
        self.thread_name = thread_name
        self.influx_write = influx_write
        self._lines: list[str] = list(store.read_json(self.path, []))
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0

    def start(self) -> LineSink:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def put(self, lines: list[str]) -> None:
        if not lines:
            return
        with self._cond:
            self._lines.extend(lines)
            if len(self._lines) > MAX_SPOOL:
                log.error("%s full: dropping %d oldest lines", self.path.name, len(self._lines) - MAX_SPOOL)
                del self._lines[: len(self._lines) - MAX_SPOOL]
            store.write_json(self.path, self._lines)
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._lines)

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            with self._cond:
                if not self._lines:
                    self._cond.wait(1.0)
                    continue
                batch = list(self._lines[:5000])
            try:
                self.influx_write(batch)
            except Exception as exc:  # noqa: BLE001 - InfluxDB down or refusing: keep the lines, retry
                log.warning("writing %d lines of %s failed (%s); retry in %.1f s", len(batch), self.path.name, exc,
                            delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 0.5
            with self._cond:
                del self._lines[: len(batch)]
                store.write_json(self.path, self._lines)
                self.written += len(batch)

    def stop(self, timeout_s: float = 5.0) -> None:
        deadline = threading.Event()
        # Give pending lines a moment to go out; what is left stays in the spool for next start.
        waited = 0.0
        while self.pending() and waited < timeout_s:
            deadline.wait(0.05)
            waited += 0.05
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)
