"""Who gets which SMS, and when: per-recipient de-duplication, a burst limit and an hourly rate
limit; what is held back goes out later as one summary message instead of a flood. Pure: the
state is a JSON-serialisable dict, the clock is passed in."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

from .config import SmsConfig

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Notice:
    id: str  # stable: the same event to the same person always has the same id
    to: str
    kind: str  # alarm / clear / escalation
    key: str  # the alarm key
    text: str
    item: str  # one line for a summary
    site: str


def _recent(times: list[int], now_ms: int, span_ms: float) -> int:
    return sum(1 for t in times if now_ms - t < span_ms)


def _can_send(st: dict, to: str, now_ms: int, cfg: SmsConfig) -> bool:
    sent = st["sent"].get(to, [])
    return (_recent(sent, now_ms, cfg.burst_window_s * 1000) < cfg.burst
            and _recent(sent, now_ms, HOUR_MS) < cfg.rate_per_hour)


def _note_sent(st: dict, to: str, now_ms: int) -> None:
    sent = [t for t in st["sent"].get(to, []) if now_ms - t < HOUR_MS]
    sent.append(now_ms)
    st["sent"][to] = sent


def new_state() -> dict:
    return {"sent": {}, "held": {}, "dedup": {}}


def route(st: dict, notices: list[Notice], now_ms: int, cfg: SmsConfig) -> tuple[list[Notice], list[Notice]]:
    """(to send now, dropped as duplicates). Held notices stay in `st` for flush()."""
    send, dropped = [], []
    dedup = st["dedup"]
    for key in [k for k, t in dedup.items() if now_ms - t >= cfg.dedup_s * 1000]:
        del dedup[key]
    for n in notices:
        dkey = f"{n.to}|{n.key}|{n.kind}"
        if dkey in dedup:
            dropped.append(n)
            continue
        dedup[dkey] = now_ms
        held = st["held"].get(n.to)
        if held or not _can_send(st, n.to, now_ms, cfg):
            st["held"].setdefault(n.to, []).append(n.__dict__)
            continue
        _note_sent(st, n.to, now_ms)
        send.append(n)
    return send, dropped


def flush(st: dict, now_ms: int, cfg: SmsConfig, summarize: Callable[[list[str]], str]) -> list[Notice]:
    """Held notices of each recipient who may be sent to again: one message (the notice itself
    when only one is held, else a summary)."""
    out = []
    for to in sorted(st["held"]):
        held = st["held"][to]
        if not held or not _can_send(st, to, now_ms, cfg):
            continue
        del st["held"][to]
        _note_sent(st, to, now_ms)
        if len(held) == 1:
            out.append(Notice(**held[0]))
            continue
        ids = ",".join(h["id"] for h in held)
        out.append(Notice(id=f"summary:{to}:{now_ms}:{zlib.crc32(ids.encode()):08x}", to=to, kind="summary",
                          key="summary", text=summarize([h["item"] for h in held]), item="",
                          site=held[0]["site"] if len({h["site"] for h in held}) == 1 else ""))
    return out
