"""The journal: messages from the inbox onto the gateway's disk, and only then acknowledged.
All of this runs on the journal thread (thread "edgemon-journal", started by Gateway.start).

It takes the inbox in groups (up to group_max items; paho's thread and write_lines() fill it),
validates each message (topic, contract, signature, status trust), turns it into line protocol,
appends ONE frame per group to the store (store.py: append-only, fsync'd) and only then
acknowledges the group's messages (PUBACK, in arrival order: MqttSession.ack). What breaks the
contract goes to the quarantine with its reason; it is acknowledged too, once the quarantine is
synced. The journal also writes gateway-made points into the store: node liveness/clock
(liveness.py), `ingest` lag, `gateway` health, and the lines observers hand to write_lines(); and it
queues what was accepted for the observer thread (observers.py), and its ticks.

A frame is one JSON head line, then the lines. The head: "r" reading points in the frame; "m"
[site, node, [seq, ...]] per data message (completeness); "s" status trust changes; "e" [site, node,
dropped, lost, key] per queue_overflow event. The writer (writer.py) reads them back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import lineproto
from .contract import ContractError, Record, parse_data, parse_event, parse_status, parse_topic

if TYPE_CHECKING:
    from .ingest import Gateway

log = logging.getLogger("edgemon.ingest")  # all the ingest's parts log as before the split

MAX_PAYLOAD = 1024 * 1024  # larger data payloads are quarantined unread


@dataclass(slots=True)
class Message:
    """One MQTT message in the inbox, as paho's thread put it there (mqtt_session.py)."""

    topic: str
    payload: bytes
    receive_ms: int
    mid: int
    qos: int


@dataclass(slots=True)
class Lines:
    """Lines handed in by an observer (write_lines): stored like a message, then `done` is set."""

    lines: list[str]
    done: threading.Event


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Journal:
    def __init__(self, gw: Gateway):
        self.gw = gw
        self.window: dict[str, dict[str, Any]] = {}  # per node, since the last `ingest` point

    def run(self) -> None:
        """The journal thread's loop: returns once stopping and the inbox is empty."""
        gw = self.gw
        cfg = gw.cfg
        next_tick = time.monotonic() + cfg.tick_interval_s
        next_report = time.monotonic() + cfg.ingest_interval_s
        while True:
            with gw._inbox_cond:
                if not gw._inbox and not gw._journal_stop:
                    gw._inbox_cond.wait(max(0.0, min(next_tick, next_report) - time.monotonic()))
                group = gw._inbox[: cfg.group_max]
                del gw._inbox[: cfg.group_max]
                stopping = gw._journal_stop and not gw._inbox
            extra: list[str] = []
            now = time.monotonic()
            if now >= next_tick or stopping:
                next_tick = now + cfg.tick_interval_s
                now_ms = _now_ms()
                extra.extend(gw.liveness.tick(now_ms))
                gw._obs_queue.put(("tick", now_ms))
            if now >= next_report or stopping:
                next_report = now + cfg.ingest_interval_s
                extra.extend(self.ingest_lines())
                extra.append(self.health_line())
            if group or extra:
                try:
                    self.commit(group, extra)
                except BaseException:
                    # Not acknowledged (PUBACK follows the fsync), and the broker does not send an
                    # unacknowledged message again within the session: put the group back so the
                    # restarted loop stores it. Stored but not acknowledged is written twice at worst
                    # (idempotent points, counted as duplicates), never lost.
                    with gw._inbox_cond:
                        gw._inbox[:0] = group
                    raise
            try:  # outside the commit's try: a group stored and acknowledged must never be put back
                gw.confirmations.publish_due()  # (also those held back by confirm_interval_s)
            except Exception:  # noqa: BLE001 - the nodes keep their records and send them again
                log.exception("confirmations: cannot publish or save; retried with the next group")
            if stopping:
                return

    def commit(self, group: list[Any], extra: list[str]) -> None:
        """Validate the group, store it as one frame (fsync), then acknowledge it in order."""
        gw = self.gw
        lines: list[str] = []
        head: dict[str, list[Any]] = {"m": [], "s": [], "e": []}  # the frame's head (module docstring)
        readings = 0
        waiters: list[threading.Event] = []
        events: list[tuple] = []
        quarantined = 0
        received = sum(1 for item in group if type(item) is Message)
        if received:
            gw._count("received", received)  # once per group, not per message
        for item in group:
            if isinstance(item, Lines):
                lines.extend(item.lines)
                waiters.append(item.done)
                continue
            try:
                n, event = self.lines_for(item, lines, head)
                readings += n
                if event is not None:
                    events.append(event)
            except ContractError as exc:
                self.quarantine(item.topic, item.payload, exc.reason, item.receive_ms)
                quarantined += 1
            except Exception as exc:  # noqa: BLE001 - a bug must not stop the ingest of other messages
                log.exception("unexpected error handling %s", item.topic)
                self.quarantine(item.topic, item.payload, f"gateway error: {exc!r}", item.receive_ms)
                quarantined += 1
        lines.extend(extra)
        assert gw.store is not None
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
                    gw.store.append([body])
                    break
                except OSError as exc:
                    # Disk full or failing: nothing is acknowledged; retry until it heals.
                    log.error("store: cannot append (%s); messages stay unacknowledged at the broker", exc)
                    time.sleep(1.0)
            gw.confirmations.stored(head["m"])  # on disk now: the nodes may be told
            with gw._lock:
                gw._counters["stored_readings"] += readings
                gw._backlog_readings += readings
        if quarantined:
            assert gw.quarantine is not None
            while True:
                try:
                    gw.quarantine.sync()
                    break
                except OSError as exc:
                    log.error("quarantine: cannot sync (%s); retrying", exc)
                    time.sleep(1.0)
        gw._session.ack([item for item in group if type(item) is Message and item.qos > 0])
        for done in waiters:
            done.set()
        if gw._observers:
            for event in events:
                gw._obs_queue.put(event)

    def quarantine(self, topic: str, payload: bytes, reason: str, receive_ms: int) -> None:
        gw = self.gw
        assert gw.quarantine is not None
        while True:
            try:
                gw.quarantine.add(topic, payload, reason, received_ms=receive_ms)
                break
            except OSError as exc:
                # Disk full or failing: the group stays unacknowledged until the entry is kept.
                log.error("quarantine: cannot write (%s); retrying", exc)
                time.sleep(1.0)
        gw._count("quarantined")

    def lines_for(self, item: Message, lines: list[str], head: dict[str, list[Any]]) -> tuple[int, tuple | None]:
        """Validate one message; append its lines and its part of the frame head. Returns the
        number of reading points and what to hand to observers (None: nothing). Raises
        ContractError for what goes to the quarantine."""
        gw = self.gw
        if "/stored/" in item.topic:  # a peer gateway's claim (confirmations.py), nothing to store
            gw.confirmations.claim(item.topic, item.payload)
            return 0, None
        t = parse_topic(item.topic)
        payload = item.payload
        if t.kind == "data":
            if len(payload) > MAX_PAYLOAD:
                raise ContractError(f"payload: {len(payload)} bytes, more than the {MAX_PAYLOAD} a record or batch may have")
            records = parse_data(payload)
            gw.verifier.check(t.site, t.node, payload)
            n = 0
            for record in records:
                new = lineproto.reading_lines(t.site, t.node, record)
                lines.extend(new)
                n += len(new)
            in_batch = len(records) > 1 or b'"batch"' in payload[:64]
            before = gw.liveness.skewed_records
            lines.extend(gw.liveness.on_data(t.site, t.node, records, item.receive_ms, in_batch))
            if gw.liveness.skewed_records != before:
                gw._count("clock_skewed", gw.liveness.skewed_records - before)
            head["m"].append([t.site, t.node, [r.seq for r in records]])
            self.note_records(t.site, t.node, records, item.receive_ms)
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
            gw.verifier.check(t.site, t.node, payload)
            line = lineproto.node_line(t.site, t.node, status, item.receive_ms)
            if gw.verifier.required(t.site, t.node):
                entry = gw.trust.admit(t.site, t.node, status)
                if entry is not None:
                    gw.trust.apply(entry)
                    head["s"].append(entry)
            gw._count("statuses")
            gw.liveness.on_status(t.site, t.node, status.online, item.receive_ms)
            lines.append(line)
            return 0, ("status", t.site, t.node, status, item.receive_ms)
        if t.kind == "event":
            event = parse_event(payload)
            gw.verifier.check(t.site, t.node, payload)
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
            gw._count("events")
            return 0, ("event", t.site, t.node, event, item.receive_ms)
        raise ContractError(f"topic {item.topic!r}: the gateway does not take {t.kind!r} messages here")

    def note_records(self, site: str, node: str, records: list[Record], receive_ms: int) -> None:
        """Counters and per-node stats (Gateway.stats), and this `ingest` window's lag."""
        gw = self.gw
        key = f"{site}/{node}"
        with gw._lock:
            gw._counters["records"] += len(records)
            stats = gw._nodes.get(key)
            if stats is None:
                stats = gw._nodes[key] = {"site": site, "node": node, "records": 0, "lag_ms_max": None}
            window = self.window.get(key)
            if window is None:
                window = self.window[key] = {"site": site, "node": node, "records": 0, "lag_ms_max": None}
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

    def ingest_lines(self) -> list[str]:
        """One `ingest` point (lag) per node heard from since the last ones."""
        with self.gw._lock:
            window, self.window = self.window, {}
        time_ms = _now_ms()
        return [
            lineproto.ingest_line(
                w["site"], w["node"], lag_ms_last=w["lag_ms_last"], lag_ms_max=w["lag_ms_max"],
                records=w["records"], time_ms=time_ms,
            )
            for w in window.values()
        ]

    def health_line(self) -> str:
        """The `gateway` point: backlog and counters (also logged as the `health` line)."""
        gw = self.gw
        s = gw.stats
        backlog_bytes = gw.store.backlog_bytes(gw._cursor) if gw.store is not None else 0
        fields = {
            "backlog_readings": s["backlog_readings"], "backlog_bytes": backlog_bytes,
            "received": s["received"], "records": s["records"], "stored_readings": s["stored_readings"],
            "readings_written": s["readings_written"], "quarantined": s["quarantined"],
            "write_errors": s["write_errors"], "duplicates": s["duplicates"],
            "observer_errors": s["observer_errors"], "clock_skewed": s["clock_skewed"],
            "events": s["events"], "seq_jumps": s["seq_jumps"],
        }
        log.info("health %s", " ".join(f"{k}={v}" for k, v in fields.items()))
        return lineproto.line("gateway", {"gateway": gw.cfg.client_id}, fields, _now_ms())
