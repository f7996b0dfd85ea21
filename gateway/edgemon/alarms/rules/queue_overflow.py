"""A node that had to drop records: its bounded flash queue overflowed while it could not deliver
(a queue_overflow event; `dropped` records went, the oldest first). Raised at the event when at
least `min_dropped` records went; cleared once `clear_after_min` minutes of gateway clock passed
without another overflow. Uses receive time: a node's own clock is what may be wrong."""

from __future__ import annotations

from .base import BREACH, OK, Debounce, Obs, Rule, Site, debounce_from, no_unknown, take

KIND = "queue_overflow"
DEFAULT_DEBOUNCE = Debounce(raise_n=1, clear_n=1)


class QueueOverflow(Rule):
    kind = KIND

    def __init__(self, min_dropped, clear_after_min, debounce, rule_id):
        self.min_dropped, self.clear_ms = min_dropped, int(clear_after_min * 60_000)
        self.debounce, self.id = debounce, rule_id

    def on_event(self, mem, node, event, receive_ms):
        if event.kind != KIND or not isinstance(event.detail, dict):
            return []
        dropped = event.detail.get("dropped", 0)
        if dropped < self.min_dropped:
            return []
        mem.setdefault("last", {})[node] = receive_ms
        detail = {k: event.detail[k] for k in ("total", "lost") if isinstance(event.detail.get(k), int)}
        return [Obs(node, "queue", BREACH, receive_ms, float(dropped), float(self.min_dropped), detail)]

    def on_tick(self, mem, now_ms):
        return [Obs(node, "queue", OK, now_ms) for node, at in mem.get("last", {}).items()
                if now_ms - at >= self.clear_ms]


def build(spec: dict, site: Site, where: str, rule_id: str = KIND) -> Rule:
    no_unknown(spec, where, {"min_dropped", "clear_after_min", "raise_n", "raise_after_s", "clear_n",
                             "clear_after_s"})
    min_dropped = take(spec, where, "min_dropped", int, 1, lambda v: v >= 1, ">= 1")
    clear_after = take(spec, where, "clear_after_min", float, 60.0, lambda v: v > 0, "> 0")
    return QueueOverflow(min_dropped, clear_after, debounce_from(spec, where, DEFAULT_DEBOUNCE), rule_id)
