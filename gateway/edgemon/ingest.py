"""MQTT ingest: node data, status and events from Mosquitto, through a durable local store, into
InfluxDB; what breaks the contract (or is not signed by the node's key, or is a status that
statustrust.py does not believe) goes to the quarantine.
(Too long, one class for three threads: issue #11 splits it into the MQTT session, the journal and
the writer, each a module of its own; until then the thread sections below are in that order.)

Threads (paho's callbacks never do more than append to a list):
- paho's network thread: on_message appends (topic, payload, receive time, mid) to the inbox;
- the journal thread takes the inbox in groups, validates each message (contract, signature),
  turns it into line protocol, appends ONE frame per group to the store (store.py: append-only,
  fsync'd) and only then acknowledges the group's messages (PUBACK), in arrival order. It also
  writes gateway-made points into the store: node liveness/clock (liveness.py), `ingest` lag,
  `gateway` health, and lines that observers (alarms) hand to write_lines();
- the writer thread drains the store into InfluxDB (v1 or v2 API) in batches, retrying with backoff
  while InfluxDB is down or refusing, and keeps per-node completeness (completeness.py) saved with
  its cursor, so both survive a restart and a re-drain counts nothing twice; likewise the status
  trust state (statustrust.py: each node's newest connection), whose changes travel in the frames;
- the observer thread calls observers (add_observer) with records, statuses and events once they
  are durably accepted, and on_tick about once a second.

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
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from . import lineproto
from .completeness import Completeness
from .config import GatewayConfig
from .contract import ContractError, Record, Status, parse_data, parse_event, parse_status, parse_topic
from .influx import InfluxV1Writer, InfluxWriteError
from .keys import Verifier
from .liveness import Liveness
from .quarantine import Quarantine
from .statustrust import StatusTrust
from .store import Position, Store

log = logging.getLogger(__name__)

DATA_SUBSCRIPTION = "edge/v1/+/+/data"
STATUS_SUBSCRIPTION = "edge/v1/+/+/status"
EVENT_SUBSCRIPTION = "edge/v1/+/+/event"
SUBSCRIPTIONS = (DATA_SUBSCRIPTION, STATUS_SUBSCRIPTION, EVENT_SUBSCRIPTION)
JUMPS_LOGGED = 10  # seq jumps logged one by one per drained batch; the rest as a count
INFLUX_REJECT_TOPIC = "(influx write)"  # quarantine "topic" for points InfluxDB refused
MAX_PAYLOAD = 1024 * 1024  # larger data payloads are quarantined unread


class GatewayError(RuntimeError):
    pass


class Observer(Protocol):
    """What the gateway calls, from its observer thread, after data is durably accepted."""

    def on_records(self, site: str, node: str, records: list[Record], receive_ms: int) -> None: ...

    def on_status(self, site: str, node: str, status: Status, receive_ms: int) -> None: ...

    def on_tick(self, now_ms: int) -> None: ...

    # Optional: on_event(site, node, event: Event, receive_ms), called for each accepted node event.


@dataclass(slots=True)
class _Message:
    topic: str
    payload: bytes
    receive_ms: int
    mid: int
    qos: int


@dataclass(slots=True)
class _Lines:
    """Lines handed in by an observer (write_lines): stored like a message, then `done` is set."""

    lines: list[str]
    done: threading.Event


_STOP = object()


_PUBACK = struct.Struct("!BBH")


def _ack_in_order(client: mqtt.Client, items: list[_Message]) -> None:
    """Acknowledge messages in order. Same packets as client.ack() one by one, but queued together
    with one wake-up of paho's network thread instead of one socket write per message (under load,
    that write and the thread switch it causes cost as much as validating the message). Falls back
    to client.ack() when paho is not the version whose internals this relies on."""
    if not items:
        return
    out = getattr(client, "_out_packet", None)
    wake = getattr(client, "_sockpairW", None)
    if (not _FAST_ACK or out is None or wake is None or getattr(client, "_thread", None) is None
            or not getattr(client, "_manual_ack", False) or client.on_socket_register_write is not None
            or any(item.qos != 1 for item in items)):
        for item in items:
            client.ack(item.mid, item.qos)
        return
    pack = _PUBACK.pack
    for item in items:
        packet = pack(mqtt.PUBACK, 2, item.mid)
        out.append({"command": mqtt.PUBACK, "mid": item.mid, "qos": 1, "pos": 0,
                    "to_process": len(packet), "packet": packet, "info": None})
    try:
        wake.send(b"0")
    except BlockingIOError:
        pass  # the wake-up byte(s) already pending do the same
    client._call_socket_register_write()


# The queueing above mirrors paho-mqtt 2.x's Client._packet_queue (checked for 2.1/2.2).
_FAST_ACK = paho.mqtt.__version__.split(".")[0] == "2" and hasattr(mqtt.Client, "_packet_queue")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _make_writer(cfg: GatewayConfig):
    if cfg.influx_api == "v2":
        from .influx_v2 import InfluxV2Writer

        return InfluxV2Writer(cfg.influx_url, cfg.influx_db, cfg.influx_org, cfg.influx_token)
    return InfluxV1Writer(cfg.influx_url, cfg.influx_db, cfg.influx_user, cfg.influx_password)


def _hint(exc: InfluxWriteError, cfg: GatewayConfig) -> str:
    what = "bucket" if cfg.influx_api == "v2" else "database"
    if exc.status in (401, 403):
        cred = "influx.token" if cfg.influx_api == "v2" else "influx.username/password"
        return f"InfluxDB refused the credentials: check {cred} in gateway.toml"
    if exc.status == 404:
        return f"InfluxDB has no {what} {cfg.influx_db!r} (or org {cfg.influx_org!r}): create it or fix influx.{what}"
    if exc.status is None:
        return "InfluxDB unreachable"
    return f"InfluxDB answered HTTP {exc.status}"


class Gateway:
    def __init__(self, cfg: GatewayConfig):
        self.cfg = cfg
        self._inbox: list[Any] = []
        self._inbox_cond = threading.Condition()
        self._lock = threading.Lock()  # guards the counters and node stats below
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
        self._window: dict[str, dict[str, Any]] = {}  # per node, since the last `ingest` point
        self._observers: list[Observer] = []
        self._obs_queue: queue.Queue[Any] = queue.Queue()
        self._client: mqtt.Client | None = None
        self._threads: dict[str, threading.Thread] = {}
        self._influx = None
        self.store: Store | None = None
        self.quarantine: Quarantine | None = None
        self.verifier = Verifier(cfg.keys, cfg.require_signatures)
        self.liveness = Liveness(
            default_poll_s=cfg.default_poll_s, silent_periods=cfg.silent_periods,
            future_tolerance_ms=int(cfg.clock_future_tolerance_s * 1000),
            past_tolerance_ms=int(cfg.clock_past_tolerance_s * 1000),
        )
        self._accepting = False
        self._started = False
        self._stopped = False
        self._journal_stop = False
        self._stop_requested = threading.Event()
        self._stop_deadline = 0.0
        self._subscribed = threading.Event()
        self._connect_error: str | None = None
        self._db_ready = False
        self._cursor = Position(1, 0)
        self._backlog_readings = 0  # stored, not yet written
        self._backlog_logged = 0.0

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
        item = _Lines(list(lines), threading.Event())
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
        self._completeness = Completeness(state.get("completeness"))
        # Status trust: the drained copy is saved with the cursor; the live one (the journal's) is
        # that plus the changes in frames not drained yet (taken in by _count_backlog).
        self._trust_saved = StatusTrust(state.get("status"))
        self.trust = StatusTrust(state.get("status"))
        self._backlog_readings = self._count_backlog()
        if self._backlog_readings:
            log.info("store: backlog=%d readings (%d bytes) from before the restart, draining",
                     self._backlog_readings, self.store.backlog_bytes(self._cursor))
        now = _now_ms()
        for site, node, poll_s in cfg.nodes:
            self.liveness.configure(site, node, poll_s, now)
        self._influx = _make_writer(cfg)
        self._ensure_database()

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
            manual_ack=True,
        )
        if cfg.mqtt_user is not None:
            client.username_pw_set(cfg.mqtt_user, cfg.mqtt_password)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        self._client = client

        self._accepting = True
        for name, target in (("journal", self._journal_loop), ("writer", self._writer_loop),
                             ("observer", self._observer_loop)):
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
        if not self._subscribed.wait(cfg.connect_timeout_s) or self._connect_error:
            reason = self._connect_error or f"no subscription within {cfg.connect_timeout_s} s"
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
        marker = _Lines([], threading.Event())
        with self._inbox_cond:
            self._inbox.append(marker)
            self._inbox_cond.notify()
        if not marker.done.wait(30):
            log.error("journal did not catch up within 30 s; unacknowledged messages will be redelivered")
        self._obs_queue.put(_STOP)
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
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
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
        if self._influx is not None:
            self._influx.close()

    def _abort(self) -> None:
        """Undo a start() that failed half-way."""
        self._accepting = False
        self._stopped = True
        self._finish_journal()
        self._stop_requested.set()
        self._stop_deadline = time.monotonic()
        if self.store is not None:
            self.store.wake()
        if self._client is not None:
            self._client.loop_stop()
            try:
                self._client.disconnect()
            except Exception:  # noqa: BLE001 - best effort on a client that never connected
                pass
        for name in ("writer",):
            t = self._threads.get(name)
            if t is not None:
                t.join(5)
        self._obs_queue.put(_STOP)
        self._close_files()

    def __enter__(self) -> Gateway:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

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

    # ------------------------------------------------------------------ MQTT callbacks (paho thread)

    def _subscriptions(self) -> list[tuple[str, int]]:
        group = self.cfg.shared_group
        if group:
            # Each message to exactly one gateway of the group. Retained statuses are not sent to
            # shared subscriptions; silence liveness covers a node whose status came before.
            return [(f"$share/{group}/{sub}", 1) for sub in SUBSCRIPTIONS]
        return [(sub, 1) for sub in SUBSCRIPTIONS]

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._connect_error = f"connection refused: {reason_code}"
            log.error("MQTT %s", self._connect_error)
            self._subscribed.set()  # wakes start(), which reports the error
            return
        log.info("MQTT connected (session_present=%s)", flags.session_present)
        client.subscribe(self._subscriptions())

    def _on_subscribe(self, client, userdata, mid, reason_code_list, properties) -> None:
        failed = [str(rc) for rc in reason_code_list if rc.is_failure]
        if failed:
            self._connect_error = f"subscription refused ({', '.join(failed)}): check the broker ACL"
            log.error("MQTT %s", self._connect_error)
        self._subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._accepting:
            log.warning("MQTT disconnected (%s); paho reconnects", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        if not self._accepting:
            return  # stopping: left unacknowledged, the broker delivers it again next session
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", errors="replace")
        item = _Message(topic, msg.payload, _now_ms(), msg.mid, msg.qos)
        with self._inbox_cond:
            self._inbox.append(item)
            if len(self._inbox) == 1:
                self._inbox_cond.notify()

    # ------------------------------------------------------------------ journal thread

    def _journal_loop(self) -> None:
        cfg = self.cfg
        next_tick = time.monotonic() + cfg.tick_interval_s
        next_report = time.monotonic() + cfg.ingest_interval_s
        while True:
            with self._inbox_cond:
                if not self._inbox and not self._journal_stop:
                    self._inbox_cond.wait(max(0.0, min(next_tick, next_report) - time.monotonic()))
                group = self._inbox[: cfg.group_max]
                del self._inbox[: cfg.group_max]
                stopping = self._journal_stop and not self._inbox
            extra: list[str] = []
            now = time.monotonic()
            if now >= next_tick or stopping:
                next_tick = now + cfg.tick_interval_s
                now_ms = _now_ms()
                extra.extend(self.liveness.tick(now_ms))
                self._obs_queue.put(("tick", now_ms))
            if now >= next_report or stopping:
                next_report = now + cfg.ingest_interval_s
                extra.extend(self._ingest_lines())
                extra.append(self._health_line())
            if group or extra:
                try:
                    self._commit(group, extra)
                except BaseException:
                    # Not acknowledged (PUBACK follows the fsync), and the broker does not send an
                    # unacknowledged message again within the session: put the group back so the
                    # restarted loop stores it. Stored but not acknowledged is written twice at worst
                    # (idempotent points, counted as duplicates), never lost.
                    with self._inbox_cond:
                        self._inbox[:0] = group
                    raise
            if stopping:
                return

    def _commit(self, group: list[Any], extra: list[str]) -> None:
        """Validate the group, store it as one frame (fsync), then acknowledge it in order."""
        lines: list[str] = []
        # The frame's head: "m" [site, node, [seq, ...]] per data message (completeness), "s" status
        # trust changes, "e" [site, node, dropped, lost, key] per queue_overflow event (completeness).
        head: dict[str, list[Any]] = {"m": [], "s": [], "e": []}
        readings = 0
        waiters: list[threading.Event] = []
        events: list[tuple] = []
        quarantined = 0
        received = sum(1 for item in group if type(item) is _Message)
        if received:
            self._count("received", received)  # once per group, not per message
        for item in group:
            if isinstance(item, _Lines):
                lines.extend(item.lines)
                waiters.append(item.done)
                continue
            try:
                n, event = self._lines_for(item, lines, head)
                readings += n
                if event is not None:
                    events.append(event)
            except ContractError as exc:
                self._quarantine(item.topic, item.payload, exc.reason, item.receive_ms)
                quarantined += 1
            except Exception as exc:  # noqa: BLE001 - a bug must not stop the ingest of other messages
                log.exception("unexpected error handling %s", item.topic)
                self._quarantine(item.topic, item.payload, f"gateway error: {exc!r}", item.receive_ms)
                quarantined += 1
        lines.extend(extra)
        assert self.store is not None
        if any("\n" in ln or "\r" in ln for ln in lines):
            # Last guard: every producer escapes newlines; a raw one would split into forged points.
            log.error("dropping %d line(s) with a raw newline (a bug upstream)",
                      sum("\n" in ln or "\r" in ln for ln in lines))
            lines = [ln for ln in lines if "\n" not in ln and "\r" not in ln]
        if lines or head["m"] or head["s"] or head["e"]:
            doc: dict[str, Any] = {"r": readings, "m": head["m"]}
            for key in ("s", "e"):
                if head[key]:
                    doc[key] = head[key]
            body = (json.dumps(doc, separators=(",", ":")) + "\n" + "\n".join(lines)).encode()
            while True:
                try:
                    self.store.append([body])
                    break
                except OSError as exc:
                    # Disk full or failing: nothing is acknowledged; retry until it heals.
                    log.error("store: cannot append (%s); messages stay unacknowledged at the broker", exc)
                    time.sleep(1.0)
            with self._lock:
                self._counters["stored_readings"] += readings
                self._backlog_readings += readings
        if quarantined:
            assert self.quarantine is not None
            while True:
                try:
                    self.quarantine.sync()
                    break
                except OSError as exc:
                    log.error("quarantine: cannot sync (%s); retrying", exc)
                    time.sleep(1.0)
        client = self._client
        if client is not None:
            _ack_in_order(client, [item for item in group if type(item) is _Message and item.qos > 0])
        for done in waiters:
            done.set()
        if self._observers:
            for event in events:
                self._obs_queue.put(event)

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

    def _quarantine(self, topic: str, payload: bytes, reason: str, receive_ms: int) -> None:
        assert self.quarantine is not None
        while True:
            try:
                self.quarantine.add(topic, payload, reason, received_ms=receive_ms)
                break
            except OSError as exc:
                # Disk full or failing: the group stays unacknowledged until the entry is kept.
                log.error("quarantine: cannot write (%s); retrying", exc)
                time.sleep(1.0)
        self._count("quarantined")

    def _lines_for(self, item: _Message, lines: list[str], head: dict[str, list[Any]]) -> tuple[int, tuple | None]:
        t = parse_topic(item.topic)
        payload = item.payload
        if t.kind == "data":
            if len(payload) > MAX_PAYLOAD:
                raise ContractError(f"payload: {len(payload)} bytes, more than the {MAX_PAYLOAD} a record or batch may have")
            records = parse_data(payload)
            self.verifier.check(t.site, t.node, payload)
            n = 0
            for record in records:
                new = lineproto.reading_lines(t.site, t.node, record)
                lines.extend(new)
                n += len(new)
            in_batch = len(records) > 1 or b'"batch"' in payload[:64]
            before = self.liveness.skewed_records
            lines.extend(self.liveness.on_data(t.site, t.node, records, item.receive_ms, in_batch))
            if self.liveness.skewed_records != before:
                self._count("clock_skewed", self.liveness.skewed_records - before)
            head["m"].append([t.site, t.node, [r.seq for r in records]])
            self._note_records(t.site, t.node, records, item.receive_ms)
            return n, ("records", t.site, t.node, records, item.receive_ms)
        if t.kind == "status":
            if not payload:
                # An empty retained message is how a retained status is cleared (a node taken
                # out of service): nothing to record, nothing wrong.
                log.info("retained status of %s/%s cleared", t.site, t.node)
                return 0, None
            status = parse_status(payload)
            # Signed like data (a retained status outlives its sender: checked at every delivery,
            # also the retained copy a restart brings back), then matched to the node's connection.
            self.verifier.check(t.site, t.node, payload)
            line = lineproto.node_line(t.site, t.node, status, item.receive_ms)
            if self.verifier.required(t.site, t.node):
                entry = self.trust.admit(t.site, t.node, status)
                if entry is not None:
                    self.trust.apply(entry)
                    head["s"].append(entry)
            self._count("statuses")
            self.liveness.on_status(t.site, t.node, status.online, item.receive_ms)
            lines.append(line)
            return 0, ("status", t.site, t.node, status, item.receive_ms)
        if t.kind == "event":
            event = parse_event(payload)
            self.verifier.check(t.site, t.node, payload)
            lines.append(lineproto.event_line(t.site, t.node, event))
            if event.kind == "queue_overflow":
                d = event.detail
                fields = {"dropped": float(d["dropped"])}
                if d.get("lost") is not None:
                    fields["lost"] = float(d["lost"])
                # At the event's own time, like the event point: a redelivery rewrites the same point.
                lines.append(lineproto.line("node", {"site": t.site, "node": t.node}, fields, event.ts))
                head["e"].append([t.site, t.node, d["dropped"], d.get("lost"), [event.ts, d["dropped"], d.get("total")]])
                log.warning("%s/%s: queue overflow, the node dropped %d record(s) (lost since its queue began: %s)",
                            t.site, t.node, d["dropped"], d.get("lost", "not sent"))
            self._count("events")
            return 0, ("event", t.site, t.node, event, item.receive_ms)
        raise ContractError(f"topic {item.topic!r}: the gateway does not take {t.kind!r} messages here")

    def _note_records(self, site: str, node: str, records: list[Record], receive_ms: int) -> None:
        key = f"{site}/{node}"
        with self._lock:
            self._counters["records"] += len(records)
            stats = self._nodes.get(key)
            if stats is None:
                stats = self._nodes[key] = {"site": site, "node": node, "records": 0, "lag_ms_max": None}
            window = self._window.get(key)
            if window is None:
                window = self._window[key] = {"site": site, "node": node, "records": 0, "lag_ms_max": None}
            for record in records:
                lag = receive_ms - record.ts
                for s in (stats, window):
                    s["records"] += 1
                    s["lag_ms_last"] = lag
                    s["lag_ms_max"] = lag if s["lag_ms_max"] is None else max(s["lag_ms_max"], lag)
            last = records[-1]
            stats["last_ts"] = last.ts
            stats["last_seq"] = last.seq
            stats["last_receive_ms"] = receive_ms

    def _ingest_lines(self) -> list[str]:
        with self._lock:
            window, self._window = self._window, {}
        time_ms = _now_ms()
        return [
            lineproto.ingest_line(
                w["site"], w["node"], lag_ms_last=w["lag_ms_last"], lag_ms_max=w["lag_ms_max"],
                records=w["records"], time_ms=time_ms,
            )
            for w in window.values()
        ]

    def _health_line(self) -> str:
        s = self.stats
        backlog_bytes = self.store.backlog_bytes(self._cursor) if self.store is not None else 0
        fields = {
            "backlog_readings": s["backlog_readings"], "backlog_bytes": backlog_bytes,
            "received": s["received"], "records": s["records"], "stored_readings": s["stored_readings"],
            "readings_written": s["readings_written"], "quarantined": s["quarantined"],
            "write_errors": s["write_errors"], "duplicates": s["duplicates"],
            "observer_errors": s["observer_errors"], "clock_skewed": s["clock_skewed"],
            "events": s["events"], "seq_jumps": s["seq_jumps"],
        }
        log.info("health %s", " ".join(f"{k}={v}" for k, v in fields.items()))
        return lineproto.line("gateway", {"gateway": self.cfg.client_id}, fields, _now_ms())

    # ------------------------------------------------------------------ writer thread

    def _writer_loop(self) -> None:
        cfg = self.cfg
        store = self.store
        assert store is not None
        next_points = time.monotonic() + cfg.ingest_interval_s
        max_bytes = max(256 * 1024, cfg.batch_max * 120 * 4)  # several requests per cursor save
        while True:
            stopping = self._stop_requested.is_set()
            end = store.end if stopping else store.wait_for_data(self._cursor, 0.5)
            lines: list[str] = []
            readings = 0
            new_cursor = self._cursor
            incidents: list[tuple] = []
            if self._cursor < end:
                bodies, new_cursor = store.read(self._cursor, end, max_bytes)
                for body in bodies:
                    text = body.decode("utf-8")
                    head, _, rest = text.partition("\n")
                    meta = json.loads(head)
                    readings += meta["r"]
                    with self._lock:
                        for site, node, seqs in meta["m"]:
                            self._counters["duplicates"] += self._completeness.add(site, node, seqs)
                        for entry in meta.get("s", ()):
                            self._trust_saved.apply(entry)
                        for site, node, dropped, lost, key in meta.get("e", ()):
                            self._completeness.add_loss(site, node, dropped, lost, key)
                        if self._completeness.incidents:
                            incidents += self._completeness.incidents
                            self._counters["seq_jumps"] += len(self._completeness.incidents)
                            self._completeness.incidents = []
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
                with self._lock:
                    lines.extend(self._completeness.lines(_now_ms()))
            if lines and not self._write_with_retry(lines):
                log.warning("stopping with backlog=%d readings not yet in InfluxDB; kept in the store for the next start",
                            self._backlog_readings)
                return
            if new_cursor != self._cursor:
                with self._lock:
                    state = {"completeness": self._completeness.to_json(), "status": self._trust_saved.to_json()}
                    self._counters["readings_written"] += readings
                    self._backlog_readings -= readings
                store.save_cursor(new_cursor, state)
                self._cursor = new_cursor
                store.drop_before(new_cursor)
            if stopping and self._cursor >= store.end:
                return

    def _write_with_retry(self, lines: list[str]) -> bool:
        delay = 0.5
        while True:
            try:
                if not self._db_ready:
                    try:
                        self._ensure_database()
                    except InfluxWriteError as exc:
                        log.debug("CREATE DATABASE failed: %s", exc)
                self._write_isolating_bad_points(lines)
                return True
            except InfluxWriteError as exc:
                self._count("write_errors")
                if exc.status == 404:
                    self._db_ready = False  # "database not found": create it on the next try
                hint = _hint(exc, self.cfg)
                backlog = self._backlog_readings
                if self._stop_requested.is_set():
                    left = self._stop_deadline - time.monotonic()
                    if left <= 0:
                        log.error("write failed while stopping: %s (%s)", hint, exc)
                        return False
                    log.warning("write failed: %s; stopping, retrying for %.1f s more", hint, left)
                    time.sleep(min(delay, left))
                else:
                    level = logging.ERROR if exc.status is not None and 400 <= exc.status < 500 else logging.WARNING
                    log.log(level, "write failed: %s (%s); backlog=%d readings kept in the store; retrying in %.1f s",
                            hint, str(exc)[:200], backlog, delay)
                    self._stop_requested.wait(delay)
                delay = min(delay * 2, self.cfg.retry_max_s)

    def _write_isolating_bad_points(self, lines: list[str]) -> None:
        """Write; when InfluxDB refuses the data itself (HTTP 400), halve the batch until the bad
        points are found, quarantine those and write the rest (rewrites are idempotent)."""
        assert self._influx is not None
        try:
            self._influx.write(lines)
            return
        except InfluxWriteError as exc:
            if exc.retryable:
                raise
            if len(lines) == 1:
                self._count("points_rejected")
                self._count("write_errors")
                assert self.quarantine is not None
                self.quarantine.add(INFLUX_REJECT_TOPIC, lines[0].encode("utf-8"), f"InfluxDB refused the point: {exc}")
                self.quarantine.sync()
                self._count("quarantined")
                return
        half = len(lines) // 2
        self._write_isolating_bad_points(lines[:half])
        self._write_isolating_bad_points(lines[half:])

    def _ensure_database(self) -> None:
        assert self._influx is not None
        try:
            self._influx.ensure_database()
            self._db_ready = True
        except InfluxWriteError as exc:
            if threading.current_thread() is self._threads.get("writer"):
                raise
            log.warning("cannot create database %r yet (%s); the writer keeps trying", self.cfg.influx_db, exc)

    # ------------------------------------------------------------------ observer thread

    def _observer_loop(self) -> None:
        while True:
            event = self._obs_queue.get()
            if event is _STOP:
                return
            if not self._observers:
                continue
            kind = event[0]
            for obs in self._observers:
                try:
                    if kind == "records":
                        obs.on_records(event[1], event[2], event[3], event[4])
                    elif kind == "status":
                        obs.on_status(event[1], event[2], event[3], event[4])
                    elif kind == "event":
                        on_event = getattr(obs, "on_event", None)
                        if on_event is not None:
                            on_event(event[1], event[2], event[3], event[4])
                    elif kind == "tick":
                        obs.on_tick(event[1])
                except Exception:  # noqa: BLE001 - an observer's bug must not stop the gateway
                    self._count("observer_errors")
                    log.exception("observer %r failed on %s", obs, kind)


def observer_writer(gw: Gateway) -> Callable[[list[str]], None]:
    """The `influx_write` callable handed to observers: durable, like node data."""
    return gw.write_lines
