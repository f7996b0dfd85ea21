"""MQTT ingest: node data, status and events from Mosquitto, through a durable local store, into
InfluxDB; what breaks the contract (or is not signed by the node's key, or is a status that
statustrust.py does not believe) goes to the quarantine.

This module is the Gateway: its shared state, start() and stop(), stats. Its methods run on the
caller's thread (the CLI's main thread, a test); the work is done by four threads, each in a
module of its own (paho's callbacks never do more than append to a list):
- paho's network thread, mqtt_session.py: on_message appends (topic, payload, receive time, mid)
  to the inbox;
- the journal thread, journal.py: takes the inbox in groups, validates each message (contract,
  signature), turns it into line protocol, appends ONE frame per group to the store (store.py:
  append-only, fsync'd) and only then acknowledges the group's messages (PUBACK), in arrival order
  (paho_acks.py, the one place that touches paho's private fields). It also writes gateway-made
  points into the store: node liveness/clock (liveness.py), `ingest` lag, `gateway` health, and
  lines that observers (alarms) hand to write_lines();
- the writer thread, writer.py: drains the store into InfluxDB (v1 or v2 API) in batches, retrying
  with backoff while InfluxDB is down or refusing, and keeps per-node completeness (completeness.py)
  saved with its cursor, so both survive a restart and a re-drain counts nothing twice; likewise the
  status trust state (statustrust.py: each node's newest connection), whose changes travel in the frames;
- the journal thread also tells each keyed node, signed, what is now in the store (confirm.py,
  Confirmations below): the node keeps a record on flash until then, since a broker's PUBACK
  does not survive a broker crash;
- the observer thread, observers.py: calls observers (add_observer) with records, statuses and
  events once they are durably accepted, and on_tick about once a second.

State more than one of them touches lives here, on the Gateway (the underscore attributes: for its
parts, not for callers); what only one part uses lives in that part.

So an acknowledged message is on the gateway's disk; a message not yet on disk is unacknowledged,
and the broker (persistent session, clean_session=False) delivers it again. A kill -9 at any point
loses nothing: frames not yet drained are drained at the next start, and writing the same lines
twice gives the same points.
"""

from __future__ import annotations

import copy
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from . import observers
from .completeness import Completeness
from .confirmations import Confirmations
from .config import GatewayConfig
from .journal import Journal, Lines
from .keys import Verifier
from .liveness import Liveness
from .mqtt_session import MqttSession
from .observers import Observer
from .quarantine import Quarantine
from .statustrust import StatusTrust
from .store import Position, Store
from .writer import Writer

__all__ = ["Gateway", "GatewayError", "Observer", "observer_writer"]

log = logging.getLogger(__name__)


class GatewayError(RuntimeError):
    pass


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Gateway:
    def __init__(self, cfg: GatewayConfig):
        self.cfg = cfg
        # The inbox: paho's thread (Message) and write_lines()/stop() (Lines) append, the journal takes.
        self._inbox: list[Any] = []
        self._inbox_cond = threading.Condition()
        self._lock = threading.Lock()  # guards the counters, node stats, backlog and completeness
        self._counters = {
            "received": 0,  # MQTT messages taken in
            "records": 0,  # valid data records
            "statuses": 0,  # valid status messages
            "stored_readings": 0,  # reading points made durable in the store
            "readings_written": 0,  # reading points InfluxDB accepted
            "quarantined": 0,  # messages kept in the quarantine
            "write_errors": 0,  # failed write attempts (each retry counts)
            "points_rejected": 0,  # points InfluxDB refused as bad data (quarantined)
            "duplicates": 0,  # records whose seq had already been received (completeness)
            "thread_restarts": 0,  # a journal, writer or observer loop that raised and was started again
            "observer_errors": 0,  # exceptions raised by observers
            "clock_skewed": 0,  # records whose ts is not trusted (future/past/clk none)
            "events": 0,  # valid node events (stored as `event` points)
            "seq_jumps": 0,  # records whose seq jumped far beyond the node's range (completeness)
        }
        self._nodes: dict[str, dict[str, Any]] = {}
        self._observers: list[Observer] = []
        self._obs_queue: queue.Queue[Any] = queue.Queue()  # journal -> observer thread
        self._threads: dict[str, threading.Thread] = {}
        self.store: Store | None = None
        self.quarantine: Quarantine | None = None
        self.verifier = Verifier(cfg.keys, cfg.require_signatures)
        self.liveness = Liveness(
            default_poll_s=cfg.default_poll_s, silent_periods=cfg.silent_periods,
            future_tolerance_ms=int(cfg.clock_future_tolerance_s * 1000),
            past_tolerance_ms=int(cfg.clock_past_tolerance_s * 1000),
        )
        self._accepting = False  # on_message takes messages
        self._started = False
        self._stopped = False
        self._journal_stop = False  # the journal finishes the inbox and returns
        self._stop_requested = threading.Event()  # the writer drains what is left and returns
        self._stop_deadline = 0.0
        self._cursor = Position(1, 0)  # the writer's: what is before it is in InfluxDB
        self._backlog_readings = 0  # stored, not yet written
        # The parts, one per job (each module's docstring names the thread that runs it).
        self.confirmations = Confirmations(self)
        self._session = MqttSession(self)
        self._journal = Journal(self)
        self._writer = Writer(self)

    # ------------------------------------------------------------------ observers

    def add_observer(self, obs: Observer) -> None:
        """Register before start(): called from one observer thread, after durable acceptance."""
        if self._started:
            raise GatewayError("add_observer() must be called before start()")
        self._observers.append(obs)

    def write_lines(self, lines: list[str], timeout_s: float = 30.0) -> None:
        """Put gateway-made line-protocol lines (e.g. `alarm` points) through the same durable
        path as node data: returns once they are in the store; the writer takes them to InfluxDB."""
        if not lines:
            return
        for ln in lines:
            if not isinstance(ln, str) or "\n" in ln:
                raise ValueError(f"not one line of line protocol: {ln!r}")
        if not self._started or self._journal_stop:
            raise GatewayError("gateway not running: lines not stored")
        item = Lines(list(lines), threading.Event())
        with self._inbox_cond:
            self._inbox.append(item)
            self._inbox_cond.notify()
        if not item.done.wait(timeout_s):
            raise GatewayError(f"lines not stored within {timeout_s} s")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Open the store, connect, subscribe (QoS 1), start the threads. Returns once subscribed;
        raises GatewayError when the broker refuses or does not answer."""
        if self._started:
            raise GatewayError("gateway already started")
        self._started = True
        cfg = self.cfg
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.quarantine = Quarantine(cfg.quarantine_path)
        self.store = Store(cfg.store_dir, fsync=cfg.fsync)
        self._cursor, state = self.store.load_cursor()
        self.confirmations.open()
        self._completeness = Completeness(state.get("completeness"), self.confirmations.starts())
        # Status trust: the drained copy (the writer's) is saved with the cursor; the live one (the
        # journal's) is that plus the changes in frames not drained yet (taken in by _count_backlog).
        self.trust = StatusTrust(state.get("status"))
        self._backlog_readings = self._count_backlog()
        if self._backlog_readings:
            log.info("store: backlog=%d readings (%d bytes) from before the restart, draining",
                     self._backlog_readings, self.store.backlog_bytes(self._cursor))
        now = _now_ms()
        for site, node, poll_s in cfg.nodes:
            self.liveness.configure(site, node, poll_s, now)
        self._writer.open(state)
        client = self._session.create_client()

        self._accepting = True
        for name, target in (("journal", self._journal.run), ("writer", self._writer.run),
                             ("observer", lambda: observers.run(self))):
            t = threading.Thread(target=self._keep_running, args=(name, target), name=f"edgemon-{name}",
                                 daemon=True)
            self._threads[name] = t
            t.start()
        try:
            client.connect(cfg.mqtt_host, cfg.mqtt_port, keepalive=cfg.keepalive_s)
        except OSError as exc:
            self._abort()
            raise GatewayError(f"cannot reach the MQTT broker at {cfg.mqtt_host}:{cfg.mqtt_port}: {exc}") from exc
        client.loop_start()
        session = self._session
        if not session.subscribed.wait(cfg.connect_timeout_s) or session.connect_error:
            reason = session.connect_error or f"no subscription within {cfg.connect_timeout_s} s"
            self._abort()
            raise GatewayError(f"MQTT broker {cfg.mqtt_host}:{cfg.mqtt_port}: {reason}")
        log.info(
            "gateway up: mqtt=%s:%s client_id=%s shared_group=%s influx=%s api=%s db=%s state_dir=%s",
            cfg.mqtt_host, cfg.mqtt_port, cfg.client_id, cfg.shared_group or "-", cfg.influx_url,
            cfg.influx_api, cfg.influx_db, cfg.state_dir,
        )

    def stop(self) -> None:
        """Graceful: stop taking messages, store and acknowledge those already taken, let observers
        finish (their stop() may still write_lines), disconnect, then let the writer finish draining (up to stop_timeout_s while InfluxDB is unavailable;
        what is left stays in the store for the next start). Idempotent."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        self._accepting = False
        # Everything taken from the broker so far is stored and acknowledged (FIFO behind this marker)
        # before the observers finish: their last lines (alarm points) still go through the journal.
        marker = Lines([], threading.Event())
        with self._inbox_cond:
            self._inbox.append(marker)
            self._inbox_cond.notify()
        if not marker.done.wait(30):
            log.error("journal did not catch up within 30 s; unacknowledged messages will be redelivered")
        self._obs_queue.put(observers.STOP)
        obs = self._threads.get("observer")
        if obs is not None:
            obs.join(10)
        for o in self._observers:  # let observers save what they hold in memory (alarm rule windows)
            stop_obs = getattr(o, "stop", None)
            if stop_obs is not None:
                try:
                    stop_obs()
                except Exception:
                    log.exception("observer %r failed to stop", o)
        self._finish_journal()
        client = self._session.client
        if client is not None:
            client.disconnect()
            client.loop_stop()
        self._stop_deadline = time.monotonic() + self.cfg.stop_timeout_s
        self._stop_requested.set()
        if self.store is not None:
            self.store.wake()
        writer = self._threads.get("writer")
        if writer is not None:
            writer.join(self.cfg.stop_timeout_s + 30)
            if writer.is_alive():
                log.error("writer thread did not finish in time")
        self._close_files()
        log.info("gateway stopped: %s", " ".join(f"{k}={v}" for k, v in sorted(self._counters.items())))

    def _finish_journal(self) -> None:
        with self._inbox_cond:
            self._journal_stop = True
            self._inbox_cond.notify()
        journal = self._threads.get("journal")
        if journal is not None:
            journal.join(30)

    def _close_files(self) -> None:
        if self.store is not None:
            self.store.close()
        if self.quarantine is not None:
            self.quarantine.close()
        if self._writer.influx is not None:
            self._writer.influx.close()

    def _abort(self) -> None:
        """Undo a start() that failed half-way."""
        self._accepting = False
        self._stopped = True
        self._finish_journal()
        self._stop_requested.set()
        self._stop_deadline = time.monotonic()
        if self.store is not None:
            self.store.wake()
        client = self._session.client
        if client is not None:
            client.loop_stop()
            try:
                client.disconnect()
            except Exception:  # noqa: BLE001 - best effort on a client that never connected
                pass
        for name in ("writer",):
            t = self._threads.get(name)
            if t is not None:
                t.join(5)
        self._obs_queue.put(observers.STOP)
        self._close_files()

    def __enter__(self) -> Gateway:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _keep_running(self, name: str, loop) -> None:
        """A thread's loop returns when it is done; an unexpected exception (a bug, a corrupt store
        frame) is logged and the loop started again, so ingest never silently stops while the
        process looks alive. Its state (cursor, inbox) lives on the instance, so a restart resumes."""
        while True:
            try:
                loop()
                return
            except Exception:  # noqa: BLE001
                self._count("thread_restarts")
                self._count(f"thread_restarts_{name}")
                log.exception("%s thread failed; restarting it in 1 s", name)
                time.sleep(1.0)

    # ------------------------------------------------------------------ state, for callers and the parts

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot: counters, the backlog (stored, not yet in InfluxDB) and, per "site/node",
        the last record's ts/seq, when it was received and how late (lag_ms = receive - ts)."""
        with self._lock:
            snapshot: dict[str, Any] = dict(self._counters)
            snapshot["nodes"] = copy.deepcopy(self._nodes)
            snapshot["backlog_readings"] = self._backlog_readings
        with self._inbox_cond:
            snapshot["pending"] = len(self._inbox)
        return snapshot

    def completeness(self) -> dict[str, dict[str, int]]:
        """Per "site/node": expected, received, missing, duplicates, lost (what the node reported
        dropping), seq_jumps (as drained so far)."""
        with self._lock:
            return {k: {"expected": n.expected, "received": n.received, "missing": n.missing,
                        "duplicates": n.duplicates, "lost": n.lost, "seq_jumps": n.jumps}
                    for k, n in self._completeness.nodes.items()}

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + n

    def _count_backlog(self) -> int:
        assert self.store is not None
        pos, end, total = self._cursor, self.store.end, 0
        while pos < end:
            bodies, pos = self.store.read(pos, end)
            if not bodies:
                break
            for b in bodies:
                head = json.loads(b[: b.index(b"\n")])
                total += head["r"]
                for entry in head.get("s", ()):
                    self.trust.apply(entry)
        return total


def observer_writer(gw: Gateway) -> Callable[[list[str]], None]:
    """The `influx_write` callable handed to observers: durable, like node data."""
    return gw.write_lines
