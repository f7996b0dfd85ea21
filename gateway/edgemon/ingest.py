"""MQTT ingest: node data and status from Mosquitto into InfluxDB; what breaks the contract goes to
the quarantine.

Threads:
- paho's network loop thread runs the MQTT callbacks. on_message only validates the payload and
  turns it into line protocol (cheap, pure), then puts one item per message on a queue;
- one writer thread takes items off the queue, writes them to InfluxDB in batches, and only then
  acknowledges the messages (PUBACK). The MQTT session is persistent (clean_session=False), so a
  message whose points are not yet in InfluxDB stays with the broker: after a gateway crash, an
  InfluxDB outage or a stop during one, the broker delivers it again. Writing a record twice gives
  the same points, so redelivery is safe. Messages are acknowledged in the order they arrived,
  quarantined ones included, as MQTT requires.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from . import lineproto
from .contract import ContractError, parse_data, parse_status, parse_topic
from .influx import InfluxV1Writer, InfluxWriteError
from .quarantine import FILE_NAME as QUARANTINE_FILE
from .quarantine import Quarantine

log = logging.getLogger(__name__)

DATA_SUBSCRIPTION = "edge/v1/+/+/data"
STATUS_SUBSCRIPTION = "edge/v1/+/+/status"
INFLUX_REJECT_TOPIC = "(influx write)"  # quarantine "topic" for points InfluxDB refused


class GatewayError(RuntimeError):
    pass


@dataclass
class GatewayConfig:
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_user: str | None = None
    mqtt_password: str | None = None
    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = "edge"
    influx_user: str | None = None
    influx_password: str | None = None
    state_dir: Path = Path("run/gateway")  # the quarantine file lives here
    client_id: str = "edgemon-gateway"  # also names the broker-side session: one gateway per id
    batch_max: int = 5000  # lines per write
    flush_interval_s: float = 0.2  # longest a line waits for its batch to fill
    flush_idle_s: float = 0.005  # write early when no message came for this long
    ingest_interval_s: float = 10.0  # how often `ingest` (lag) points are written
    connect_timeout_s: float = 10.0  # start() gives up when not subscribed by then
    stop_timeout_s: float = 10.0  # stop() waits this long for InfluxDB to take what is pending
    retry_max_s: float = 30.0  # longest pause between write retries
    keepalive_s: int = 30

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir)

    @property
    def quarantine_path(self) -> Path:
        return self.state_dir / QUARANTINE_FILE


@dataclass(slots=True)
class _Item:
    """One received message (or a gateway-made batch of lines when mid is None)."""

    lines: list[str]
    readings: int = 0
    mid: int | None = None
    qos: int = 0


_STOP = object()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Gateway:
    def __init__(self, cfg: GatewayConfig):
        self.cfg = cfg
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()  # guards the counters below
        self._counters = {
            "received": 0,  # MQTT messages taken in
            "records": 0,  # valid data records
            "statuses": 0,  # valid status messages
            "readings_written": 0,  # reading points InfluxDB accepted
            "quarantined": 0,  # messages kept in the quarantine
            "write_errors": 0,  # failed write attempts (each retry counts)
            "points_rejected": 0,  # points InfluxDB refused as bad data (quarantined)
        }
        self._nodes: dict[str, dict[str, Any]] = {}
        self._window: dict[str, dict[str, Any]] = {}  # per node, since the last `ingest` point
        self._client: mqtt.Client | None = None
        self._writer_thread: threading.Thread | None = None
        self._influx: InfluxV1Writer | None = None
        self.quarantine: Quarantine | None = None
        self._accepting = False
        self._started = False
        self._stopped = False
        self._stop_requested = threading.Event()
        self._stop_deadline = 0.0
        self._subscribed = threading.Event()
        self._connect_error: str | None = None
        self._db_ready = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Connect, subscribe (QoS 1) and start the network loop and the writer thread. Returns
        once subscribed; raises GatewayError when the broker refuses or does not answer."""
        if self._started:
            raise GatewayError("gateway already started")
        self._started = True
        cfg = self.cfg
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.quarantine = Quarantine(cfg.quarantine_path)
        self._influx = InfluxV1Writer(cfg.influx_url, cfg.influx_db, cfg.influx_user, cfg.influx_password)
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
        self._writer_thread = threading.Thread(target=self._writer_loop, name="edgemon-writer", daemon=True)
        self._writer_thread.start()
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
            "gateway up: mqtt %s:%s as %s, influx %s db %s, quarantine %s",
            cfg.mqtt_host, cfg.mqtt_port, cfg.client_id, cfg.influx_url, cfg.influx_db, cfg.quarantine_path,
        )

    def stop(self) -> None:
        """Write what is pending (waiting up to stop_timeout_s for InfluxDB), acknowledge it,
        disconnect. Idempotent. Messages not written by then stay unacknowledged at the broker."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        self._accepting = False
        self._stop_deadline = time.monotonic() + self.cfg.stop_timeout_s
        self._stop_requested.set()
        self._queue.put(_STOP)
        if self._writer_thread is not None:
            self._writer_thread.join(self.cfg.stop_timeout_s + 5)
            if self._writer_thread.is_alive():
                log.error("writer thread did not finish in time")
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        if self.quarantine is not None:
            self.quarantine.close()
        if self._influx is not None:
            self._influx.close()
        log.info("gateway stopped")

    def _abort(self) -> None:
        """Undo a start() that failed half-way."""
        self._accepting = False
        self._stopped = True
        self._stop_requested.set()
        self._stop_deadline = time.monotonic()
        self._queue.put(_STOP)
        if self._client is not None:
            self._client.loop_stop()
            try:
                self._client.disconnect()
            except Exception:  # noqa: BLE001 - best effort on a client that never connected
                pass
        if self._writer_thread is not None:
            self._writer_thread.join(5)
        if self.quarantine is not None:
            self.quarantine.close()

    def __enter__(self) -> Gateway:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot: counters, pending queue length and, per "site/node", the last record's
        ts/seq, when it was received and how late (lag_ms = receive time - ts)."""
        with self._lock:
            snapshot: dict[str, Any] = dict(self._counters)
            snapshot["nodes"] = copy.deepcopy(self._nodes)
        snapshot["pending"] = self._queue.qsize()
        return snapshot

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    # ------------------------------------------------------------------ MQTT callbacks (paho thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._connect_error = f"connection refused: {reason_code}"
            log.error("MQTT %s", self._connect_error)
            self._subscribed.set()  # wakes start(), which reports the error
            return
        log.info("MQTT connected (session present: %s)", flags.session_present)
        client.subscribe([(DATA_SUBSCRIPTION, 1), (STATUS_SUBSCRIPTION, 1)])

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
        receive_ms = _now_ms()
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", errors="replace")
        payload = msg.payload
        item = _Item(lines=[], mid=msg.mid, qos=msg.qos)
        self._count("received")
        try:
            item.lines, item.readings = self._lines_for(topic, payload, receive_ms)
        except ContractError as exc:
            self._quarantine(topic, payload, exc.reason, receive_ms)
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the ingest of other messages
            log.exception("unexpected error handling %s", topic)
            self._quarantine(topic, payload, f"gateway error: {exc!r}", receive_ms)
        self._queue.put(item)

    def _quarantine(self, topic: str, payload: bytes, reason: str, receive_ms: int) -> None:
        # A small appended line: cheap enough for the network thread, and the entry must exist
        # before the message is acknowledged.
        assert self.quarantine is not None
        self.quarantine.add(topic, payload, reason, received_ms=receive_ms)
        self._count("quarantined")

    def _lines_for(self, topic: str, payload: bytes, receive_ms: int) -> tuple[list[str], int]:
        t = parse_topic(topic)
        if t.kind == "data":
            records = parse_data(payload)
            lines: list[str] = []
            for record in records:
                lines.extend(lineproto.reading_lines(t.site, t.node, record))
            self._note_records(t.site, t.node, records, receive_ms)
            return lines, len(lines)
        if t.kind == "status":
            if not payload:
                # An empty retained message is how a retained status is cleared (a node taken
                # out of service): nothing to record, nothing wrong.
                log.info("retained status of %s/%s cleared", t.site, t.node)
                return [], 0
            status = parse_status(payload)
            self._count("statuses")
            return [lineproto.node_line(t.site, t.node, status, receive_ms)], 0
        raise ContractError(f"topic {topic!r}: the gateway does not take {t.kind!r} messages here")

    def _note_records(self, site: str, node: str, records, receive_ms: int) -> None:
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

    # ------------------------------------------------------------------ writer thread

    def _writer_loop(self) -> None:
        cfg = self.cfg
        pending: list[_Item] = []
        n_lines = 0
        first_at = 0.0
        next_ingest = time.monotonic() + cfg.ingest_interval_s
        stopping = False
        while not stopping:
            now = time.monotonic()
            if pending:
                timeout = max(0.0, min(first_at + cfg.flush_interval_s - now, cfg.flush_idle_s))
            else:
                timeout = max(0.0, next_ingest - now)
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                stopping = True
            elif item is not None:
                if not pending:
                    first_at = time.monotonic()
                pending.append(item)
                n_lines += len(item.lines)
                if n_lines < cfg.batch_max and time.monotonic() < first_at + cfg.flush_interval_s:
                    continue  # keep filling while messages keep coming
            if time.monotonic() >= next_ingest or stopping:
                next_ingest = time.monotonic() + cfg.ingest_interval_s
                ingest = self._ingest_lines()
                if ingest:
                    pending.append(_Item(lines=ingest))
            if pending:
                if not self._flush(pending):
                    break  # stop deadline passed with InfluxDB unavailable
                pending, n_lines = [], 0
        if pending:
            unacked = sum(1 for it in pending if it.mid is not None)
            log.warning(
                "stopping with %d message(s) not written to InfluxDB; left unacknowledged, "
                "the broker delivers them again to the next session", unacked,
            )

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

    def _flush(self, items: list[_Item]) -> bool:
        """Write the items' lines, then acknowledge the messages, in order. False when stopping
        and InfluxDB did not take them before the stop deadline."""
        lines = [line for it in items for line in it.lines]
        if lines and not self._write_with_retry(lines):
            return False
        readings = sum(it.readings for it in items)
        if readings:
            self._count("readings_written", readings)
        client = self._client
        for it in items:
            if it.mid is not None and it.qos > 0 and client is not None:
                client.ack(it.mid, it.qos)
        return True

    def _write_with_retry(self, lines: list[str]) -> bool:
        delay = 0.5
        while True:
            try:
                if not self._db_ready:
                    # The write below says whether it matters: a user without the right to
                    # create databases can still write into an existing one.
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
                if self._stop_requested.is_set():
                    left = self._stop_deadline - time.monotonic()
                    if left <= 0:
                        log.error("write of %d lines failed while stopping: %s", len(lines), exc)
                        return False
                    log.warning("write of %d lines failed (%s); stopping, retrying for %.1f s more",
                                len(lines), exc, left)
                    time.sleep(min(delay, left))
                else:
                    log.warning("write of %d lines failed (%s); retrying in %.1f s", len(lines), exc, delay)
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
            if threading.current_thread() is self._writer_thread:
                raise
            log.warning("cannot create database %r yet (%s); the writer keeps trying", self.cfg.influx_db, exc)
