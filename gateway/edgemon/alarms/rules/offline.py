"""A node that sent nothing (no record, no online status) for `after_min` minutes of gateway
clock, or whose last will said offline that long ago. Uses receive time: a node's own clock is
what may be wrong."""

from __future__ import annotations

from ...configschema import Field
from .base import BREACH, OK, Debounce, Obs, Rule, Site, debounce_fields, debounce_of

KIND = "offline"
DEFAULT_DEBOUNCE = Debounce(raise_n=1, clear_n=1)


class Offline(Rule):
    kind = KIND

    def __init__(self, after_min, nodes, debounce, rule_id):
        self.after_ms = int(after_min * 60_000)
        self.nodes, self.debounce, self.id = nodes, debounce, rule_id

    def _seen(self, mem, node, at_ms, online: bool) -> list[Obs]:
        nodes = mem.setdefault("nodes", {})
        was = nodes.get(node)
        nodes[node] = {"seen": at_ms if online else (was or {}).get("seen", at_ms),
                       "offline_at": None if online else ((was or {}).get("offline_at") or at_ms)}
        return [Obs(node, "node", OK, at_ms)] if online else []

    def on_records(self, mem, node, records, receive_ms):
        return self._seen(mem, node, receive_ms, True)

    def on_status(self, mem, node, status, receive_ms):
        return self._seen(mem, node, receive_ms, status.online)

    def on_tick(self, mem, now_ms):
        out = []
        nodes = mem.setdefault("nodes", {})
        for node in self.nodes:
            nodes.setdefault(node, {"seen": now_ms, "offline_at": None})  # configured: the clock starts now
        for node, n in nodes.items():
            silent = now_ms - n["seen"]
            if silent >= self.after_ms:
                out.append(Obs(node, "node", BREACH, now_ms, silent / 60_000, self.after_ms / 60_000,
                               {"last_ms": n["seen"], "minutes": int(silent // 60_000)}))
        return out


FIELDS = {
    "after_min": Field(float, 10.0, "silent for this long (gateway clock)", gt=0),
    "nodes": Field(list, [], "nodes watched from the start (others once heard from)", example=["node01"],
                   items=Field(str, expect="a node id", example="node01")),
    **debounce_fields(DEFAULT_DEBOUNCE),
}


def build(v: dict, site: Site, rule_id: str = KIND) -> Rule:
    return Offline(v["after_min"], v["nodes"], debounce_of(v), rule_id)
