"""The persistent SMS send queue (`<state_dir>/sms_outbox.json`): a message is on disk before
anyone is told it will be sent, and leaves the queue only once the modem took every part (or it
failed for good). Adding is idempotent by message id, so a caller that crashed between deciding to
send and recording that it did can add again without a second SMS."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import store

FILE_NAME = "sms_outbox.json"
DONE_KEPT = 5000  # ids of finished messages remembered for de-duplication


@dataclass
class Message:
    id: str
    to: str
    text: str
    created_ms: int
    kind: str = "alarm"  # alarm / clear / escalation / summary / test
    ref: int = 0  # concatenation reference (0-255), fixed when queued
    parts_sent: int = 0
    attempts: int = 0
    next_try_ms: int = 0
    last_error: str | None = None
    meta: dict = field(default_factory=dict)


class Outbox:
    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / FILE_NAME
        self._lock = threading.Condition()
        raw = store.read_json(self.path, {"queue": [], "done": [], "next_ref": 1})
        self._queue = [Message(**m) for m in raw["queue"]]
        self._done: list[str] = list(raw["done"])
        self._done_set = set(self._done)
        self._next_ref = int(raw.get("next_ref", 1))

    def _commit(self) -> None:
        store.write_json(self.path, {"queue": [asdict(m) for m in self._queue], "done": self._done,
                                     "next_ref": self._next_ref})

    def add(self, messages: list[Message]) -> int:
        """Queue the messages not queued or sent before; how many were new. Durable on return."""
        with self._lock:
            known = self._done_set | {m.id for m in self._queue}
            new = [m for m in messages if m.id not in known]
            for m in new:
                m.ref = self._next_ref
                self._next_ref = self._next_ref % 255 + 1
                self._queue.append(m)
            if new:
                self._commit()
                self._lock.notify_all()
            return len(new)

    def pending(self) -> list[Message]:
        with self._lock:
            return [Message(**asdict(m)) for m in self._queue]

    def next_due(self, now_ms: int) -> tuple[Message | None, int | None]:
        """(the oldest message due now, or None; the earliest next_try_ms otherwise)."""
        with self._lock:
            due = [m for m in self._queue if m.next_try_ms <= now_ms]
            if due:
                return Message(**asdict(due[0])), None
            return None, min((m.next_try_ms for m in self._queue), default=None)

    def update(self, msg: Message) -> None:
        with self._lock:
            for i, m in enumerate(self._queue):
                if m.id == msg.id:
                    self._queue[i] = Message(**asdict(msg))
                    self._commit()
                    return

    def finish(self, msg_id: str) -> None:
        with self._lock:
            self._queue = [m for m in self._queue if m.id != msg_id]
            self._done.append(msg_id)
            self._done_set.add(msg_id)
            if len(self._done) > DONE_KEPT:
                drop = self._done[: len(self._done) - DONE_KEPT]
                self._done = self._done[len(drop):]
                self._done_set.difference_update(drop)
            self._commit()

    def wait(self, timeout_s: float, stop: threading.Event | None = None) -> None:
        """Sleep until a message is added, wake() is called, or the timeout; checking `stop`
        under the lock, so a wake() right after stop.set() is never missed."""
        with self._lock:
            if stop is None or not stop.is_set():
                self._lock.wait(timeout_s)

    def wake(self) -> None:
        with self._lock:
            self._lock.notify_all()
