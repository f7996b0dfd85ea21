"""A node that had to drop records: its bounded flash queue overflowed while it could not deliver
(a queue_overflow event; `dropped` records went, the oldest first). Raised at the event when at
least `min_dropped` records went; cleared once `clear_after_min` minutes of gateway clock passed
without another overflow. Uses receive time: a node's own clock is what may be wrong."""

from __future__ import annotations

from ...configschema import Field
from .base import BREACH, OK, Debounce, Obs, Rule, Site, debounce_fields, debounce_of

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


FIELDS = {
    "min_dropped": Field(int, 1, "raised when at least this many records went", ge=1),
    "clear_after_min": Field(float, 60.0, "cleared after this long without another overflow", gt=0),
    **debounce_fields(DEFAULT_DEBOUNCE),
}


def build(v: dict, site: Site, rule_id: str = KIND) -> Rule:
    return QueueOverflow(v["min_dropped"], v["clear_after_min"], debounce_of(v), rule_id)
