"""Where payloads that break the contract are kept, with the reason, for an operator to see:
one JSON object per line in an append-only file (`quarantine.jsonl` in the gateway's state dir)."""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .contract import ContractError, parse_topic

log = logging.getLogger(__name__)

FILE_NAME = "quarantine.jsonl"
MAX_STORED_PAYLOAD = 64 * 1024  # bytes of payload kept per entry


def where_from_topic(topic: str) -> str:
    """The key entries are counted under: "site/node" when the topic names one, else the topic."""
    try:
        t = parse_topic(topic)
    except ContractError:
        return topic
    return f"{t.site}/{t.node}"


def make_entry(topic: str, payload: bytes, reason: str, received_ms: int) -> dict[str, Any]:
    payload = bytes(payload)
    kept = payload[:MAX_STORED_PAYLOAD]
    try:
        payload.decode("utf-8")
        is_text = True
    except UnicodeDecodeError:
        is_text = False
    try:
        t = parse_topic(topic)
        site, node = t.site, t.node
    except ContractError:
        site = node = None
    return {
        "received_ms": received_ms,
        "topic": topic,
        "site": site,
        "node": node,
        "reason": reason,
        # A cut may split a multi-byte character: drop that partial character only.
        "payload": kept.decode("utf-8", errors="ignore") if is_text else None,
        "payload_b64": None if is_text else base64.b64encode(kept).decode("ascii"),
        "size": len(payload),
        "truncated": len(payload) > MAX_STORED_PAYLOAD,
    }


def entry_payload(entry: dict[str, Any]) -> bytes:
    """The (possibly truncated) payload bytes kept in an entry."""
    if entry.get("payload") is not None:
        return entry["payload"].encode("utf-8")
    if entry.get("payload_b64") is not None:
        return base64.b64decode(entry["payload_b64"])
    return b""


class Quarantine:
    """Thread-safe; each add is one appended, flushed line; the gateway calls sync() before it
    acknowledges the messages, so an acknowledged rejected payload is on disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file = None
        self._counts: dict[str, int] = {}

    def add(self, topic: str, payload: bytes, reason: str, received_ms: int | None = None) -> dict[str, Any]:
        if received_ms is None:
            received_ms = int(time.time() * 1000)
        entry = make_entry(topic, payload, reason, received_ms)
        text = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
        key = where_from_topic(topic)
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")
            self._file.write(text)
            self._file.flush()
            self._counts[key] = self._counts.get(key, 0) + 1
        log.warning("quarantined %s (%d bytes): %s", topic[:200], entry["size"], reason[:300])
        return entry

    def sync(self) -> None:
        """fsync what was added: called before the messages it holds are acknowledged."""
        with self._lock:
            if self._file is not None:
                self._file.flush()
                os.fsync(self._file.fileno())

    @property
    def counts(self) -> dict[str, int]:
        """Entries added by this instance, per "site/node" (or per topic when the topic was bad)."""
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def entries(self) -> Iterator[dict[str, Any]]:
        return read(self.path)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every entry of a quarantine file, oldest first; a missing file has none. A line that is not
    a JSON object (e.g. cut short by a crash) is skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                entry = json.loads(text)
            except ValueError:
                entry = None
            if not isinstance(entry, dict):
                log.warning("%s:%d: not a quarantine entry, skipped", path, number)
                continue
            yield entry
