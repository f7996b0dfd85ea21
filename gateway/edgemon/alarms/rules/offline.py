"""A node that sent nothing (no record, no online status) for `after_min` minutes of gateway
clock, or whose last will said offline that long ago. Uses receive time: a node's own clock is
what may be wrong."""

from __future__ import annotations

from .base import BREACH, OK, Debounce, Obs, Rule, Site, debounce_from, no_unknown, take

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


def build(spec: dict, site: Site, where: str, rule_id: str = KIND) -> Rule:
    no_unknown(spec, where, {"after_min", "nodes", "raise_n", "raise_after_s", "clear_n", "clear_after_s"})
    after = take(spec, where, "after_min", float, 10.0, lambda v: v > 0, "> 0")
    nodes = take(spec, where, "nodes", list, [])
    return Offline(after, nodes, debounce_from(spec, where, DEFAULT_DEBOUNCE), rule_id)
