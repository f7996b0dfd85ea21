"""The thread that empties the outbox through the modem: parts in order, retries with exponential
backoff, the port reopened after an unplug, modem health every `health_interval_s`, an audit entry
per message (JSONL file and the `sms` measurement). The only thread that touches the modem."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import lineproto
from . import store
from .modem import Modem, ModemError, ModemGone, ModemTimeout
from .outbox import Message, Outbox
from .pdu import PduError, encode_submit

log = logging.getLogger(__name__)

AUDIT_FILE = "sms_audit.jsonl"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class SenderConfig:
    max_attempts: int = 8  # then the message is given up (audited as failed)
    backoff_first_s: float = 2.0
    backoff_max_s: float = 300.0
    health_interval_s: float = 60.0


def backoff_s(attempts: int, cfg: SenderConfig) -> float:
    return min(cfg.backoff_max_s, cfg.backoff_first_s * 2 ** max(0, attempts - 1))


def sms_line(msg: Message, result: str, time_ms: int, error: str | None) -> str:
    fields: dict[str, object] = {"text": msg.text, "parts": msg.parts_sent, "attempts": msg.attempts,
                                 "result": result}
    if error:
        fields["error"] = error
    if msg.meta.get("site"):
        tags = {"to": msg.to, "kind": msg.kind, "site": msg.meta["site"]}
    else:
        tags = {"to": msg.to, "kind": msg.kind}
    return lineproto.line("sms", tags, fields, time_ms)


def modem_line(port: str, ok: bool, time_ms: int, health=None, error: str | None = None) -> str:
    fields: dict[str, object] = {"ok": ok}
    if health is not None:
        if health.csq is not None:
            fields["csq"] = float(health.csq)
        if health.rssi_dbm is not None:
            fields["rssi_dbm"] = float(health.rssi_dbm)
        if health.creg is not None:
            fields["creg"] = float(health.creg)
        fields["registered"] = health.registered
    if error:
        fields["error"] = error
    return lineproto.line("modem", {"port": port}, fields, time_ms)


class SmsSender:
    def __init__(self, outbox: Outbox, modem: Modem, state_dir: Path,
                 emit_lines: Callable[[list[str]], None], cfg: SenderConfig | None = None,
                 clock_ms: Callable[[], int] = _now_ms):
        self.outbox = outbox
        self.modem = modem
        self.audit_path = Path(state_dir) / AUDIT_FILE
        self.emit_lines = emit_lines
        self.cfg = cfg or SenderConfig()
        self.clock_ms = clock_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_health = 0.0
        self.on_sent: Callable[[Message, float], None] | None = None  # hook for the bench

    def start(self) -> SmsSender:
        self._thread = threading.Thread(target=self._run, name="edgemon-sms", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.outbox.wake()
        if self._thread is not None:
            self._thread.join(15)
        self.modem.close()

    # ------------------------------------------------------------------ loop

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # noqa: BLE001 - the sender must outlive a bug in one message
                log.exception("SMS sender error")
                self._stop.wait(1.0)

    def _step(self) -> None:
        if time.monotonic() >= self._next_health:
            self._next_health = time.monotonic() + self.cfg.health_interval_s
            self._check_health()
        now = self.clock_ms()
        msg, next_ms = self.outbox.next_due(now)
        if msg is None:
            wait = self.cfg.health_interval_s if next_ms is None else max(0.0, (next_ms - now) / 1000)
            wait = min(wait, max(0.0, self._next_health - time.monotonic()))
            self.outbox.wait(max(0.01, wait), self._stop)
            return
        self.send(msg)

    def _ensure_open(self) -> None:
        if not self.modem.is_open:
            self.modem.open()

    def _check_health(self) -> None:
        now = self.clock_ms()
        try:
            self._ensure_open()
            health = self.modem.health()
            line = modem_line(self.modem.port, True, now, health)
        except ModemError as exc:
            if isinstance(exc, (ModemGone, ModemTimeout)):
                self.modem.close()
            line = modem_line(self.modem.port, False, now, error=str(exc))
        self.emit_lines([line])

    def send(self, msg: Message) -> bool:
        """Try the message once (the parts not yet sent). True when it left the queue."""
        try:
            pdus = encode_submit(msg.to, msg.text, msg.ref)
        except PduError as exc:
            self._finish(msg, "failed", str(exc))
            return True
        try:
            self._ensure_open()
            while msg.parts_sent < len(pdus):
                self.modem.send_pdu(pdus[msg.parts_sent])
                msg.parts_sent += 1
                if msg.parts_sent < len(pdus):
                    self.outbox.update(msg)  # a restart goes on with the next part, not the first
        except ModemError as exc:
            msg.attempts += 1
            msg.last_error = str(exc)
            if isinstance(exc, (ModemGone, ModemTimeout)):
                self.modem.close()
            if exc.permanent or msg.attempts >= self.cfg.max_attempts:
                log.error("SMS %s to %s given up: %s", msg.id, msg.to, exc)
                self._finish(msg, "failed", str(exc))
                return True
            delay = backoff_s(msg.attempts, self.cfg)
            msg.next_try_ms = self.clock_ms() + int(delay * 1000)
            log.warning("SMS %s to %s: %s; retry %d in %.0f s", msg.id, msg.to, exc, msg.attempts, delay)
            self.outbox.update(msg)
            return False
        msg.attempts += 1
        if self.on_sent is not None:
            self.on_sent(msg, time.perf_counter())
        self._finish(msg, "sent", None)
        return True

    def _finish(self, msg: Message, result: str, error: str | None) -> None:
        now = self.clock_ms()
        store.append_jsonl(self.audit_path, {
            "time_ms": now, "id": msg.id, "to": msg.to, "kind": msg.kind, "text": msg.text,
            "result": result, "parts": msg.parts_sent, "attempts": msg.attempts, "error": error,
            "queued_ms": msg.created_ms, **({"site": msg.meta["site"]} if msg.meta.get("site") else {}),
        })
        self.outbox.finish(msg.id)
        self.emit_lines([sms_line(msg, result, now, error)])
