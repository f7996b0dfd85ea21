"""The gateway's alarm observer: records, statuses and node events in (from the gateway's
observer thread), alarm state persisted under state_dir, `alarm` points and SMS out.

Crash safety, in commit order: (1) the new alarm state together with what it decided to send
(`handoff`) is written atomically to alarms_state.json; (2) the points go to the line spool and
(3) the SMS to the outbox, both on disk, the outbox ignoring a message id it already has or sent.
A crash anywhere redoes (2) and (3) from the handoff at the next start: no lost raise or clear,
no second SMS for the same event."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..contract import Event, Record, Status
from ..sms import store
from ..sms.modem import Modem
from ..sms.outbox import Message, Outbox
from ..sms.sender import SenderConfig, SmsSender
from . import config as config_mod
from .engine import Engine, Output, new_mem
from ..linesink import LineSink
from .notify import Notice

log = logging.getLogger(__name__)

STATE_FILE = "alarms_state.json"
HISTORY_FILE = "alarm_history.jsonl"  # every raise and clear, one JSON line each (`edgemon alarms list`)
HISTORY_FIELDS = ("event", "site", "node", "param", "rule", "kind", "ts", "start_ts", "episode", "value", "limit",
                  "message")
SAVE_EVERY_S = 10.0  # rule memory (window sums, last values) is saved this often when it changed


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class AlarmObserver:
    def __init__(self, cfg: config_mod.AlarmsConfig, state_dir: Path, influx_write: Callable[[list[str]], None],
                 *, clock_ms: Callable[[], int] = _now_ms, start_sender: bool = True):
        self.cfg = cfg
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.state_dir / STATE_FILE
        self.engine = Engine(cfg)
        self.clock_ms = clock_ms
        self._lock = threading.Lock()
        self.mem = store.read_json(self.state_path, None) or new_mem()
        self.outbox = Outbox(self.state_dir)
        self.lines = LineSink(self.state_dir, influx_write).start()
        self.sender: SmsSender | None = None
        if cfg.sms.port and start_sender:
            modem = Modem(cfg.sms.port, cfg.sms.baud, command_timeout_s=cfg.sms.command_timeout_s,
                          send_timeout_s=cfg.sms.send_timeout_s)
            self.sender = SmsSender(self.outbox, modem, self.state_dir, self.lines.put,
                                    SenderConfig(max_attempts=cfg.sms.max_attempts,
                                                 health_interval_s=cfg.sms.health_interval_s),
                                    clock_ms=clock_ms).start()
        elif not cfg.sms.port:
            log.warning("no [sms] port in %s: SMS stay queued in %s", cfg.path, self.outbox.path)
        self._dirty = False
        self._saved_at = time.monotonic()
        with self._lock:
            self._deliver(self.mem.get("handoff"))  # what a crash may have left half done
            self._save()

    # ------------------------------------------------------------------ the gateway's calls

    def on_records(self, site: str, node: str, records: list[Record], receive_ms: int) -> None:
        with self._lock:
            self._apply(self.engine.records(self.mem, site, node, records, receive_ms))

    def on_status(self, site: str, node: str, status: Status, receive_ms: int) -> None:
        with self._lock:
            self._apply(self.engine.status(self.mem, site, node, status, receive_ms))

    def on_event(self, site: str, node: str, event: Event, receive_ms: int) -> None:
        with self._lock:
            self._apply(self.engine.event(self.mem, site, node, event, receive_ms))

    def on_tick(self, now_ms: int) -> None:
        with self._lock:
            self._apply(self.engine.tick(self.mem, now_ms))
            if self._dirty and time.monotonic() - self._saved_at >= SAVE_EVERY_S:
                self._save()

    def stop(self) -> None:
        if self.sender is not None:
            self.sender.stop()
        self.lines.stop()
        with self._lock:
            self._save()

    close = stop

    # ------------------------------------------------------------------ queries

    def active(self) -> list[dict]:
        with self._lock:
            return self.engine.active(self.mem)

    # ------------------------------------------------------------------ commit

    def _apply(self, out: Output) -> None:
        self._dirty = True
        for n in out.dropped:
            log.info("SMS %s to %s not sent: the same event was sent within %.0f s", n.id, n.to, self.cfg.sms.dedup_s)
        for t in out.transitions:
            log.warning("alarm %s %s/%s %s %s: %s", t["event"], t["site"], t["node"], t["param"], t["rule"], t["message"])
        if not (out.lines or out.notices):
            return
        now = self.clock_ms()
        self.mem["handoff"] = {
            "lines": out.lines,
            "messages": [asdict(self._message(n, now)) for n in out.notices],
            "history": [{k: t.get(k) for k in HISTORY_FIELDS} for t in out.transitions],
        }
        self._save()  # (1)
        self._deliver(self.mem["handoff"])  # (2), (3)

    def _deliver(self, handoff: dict | None) -> None:
        if not handoff:
            return
        self.lines.put(handoff.get("lines", []))
        self.outbox.add([Message(**m) for m in handoff.get("messages", [])])
        if handoff.get("history"):  # redone after a crash, a line may appear twice: read_history drops it
            with open(self.state_dir / HISTORY_FILE, "a", encoding="utf-8") as f:
                f.write("".join(json.dumps(h, ensure_ascii=False) + "\n" for h in handoff["history"]))
        self.mem["handoff"] = None  # saved with the next state write; redoing it is harmless

    @staticmethod
    def _message(n: Notice, now_ms: int) -> Message:
        return Message(id=n.id, to=n.to, text=n.text, created_ms=now_ms, kind=n.kind,
                       meta={"site": n.site, "key": n.key})

    def _save(self) -> None:
        store.write_json(self.state_path, self.mem)
        self._dirty = False
        self._saved_at = time.monotonic()


def read_state(state_dir: Path) -> dict:
    return store.read_json(Path(state_dir) / STATE_FILE, None) or new_mem()


def read_history(state_dir: Path, limit: int = 0) -> list[dict]:
    """Raises and clears, oldest first (the last `limit` when limit > 0); a torn last line is skipped."""
    seen, out = set(), []
    try:
        text = (Path(state_dir) / HISTORY_FILE).read_text("utf-8")
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        try:
            h = json.loads(line)
        except ValueError:
            continue
        key = (h.get("episode"), h.get("event"))
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out[-limit:] if limit > 0 else out
