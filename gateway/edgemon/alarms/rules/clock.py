"""A node whose clock cannot be trusted: it says so (`clk: "none"` in a record or its status), its
sample times are ahead of the gateway's receive time by more than `max_ahead_s`, or a live
(single, not batch) record arrives more than `max_behind_s` after its sample time."""

from __future__ import annotations

from .base import BREACH, OK, Debounce, Obs, Rule, Site, debounce_from, no_unknown, take

KIND = "clock"
DEFAULT_DEBOUNCE = Debounce(raise_n=2, clear_n=3)


class Clock(Rule):
    kind = KIND

    def __init__(self, max_ahead_s, max_behind_s, debounce, rule_id):
        self.ahead_ms, self.behind_ms = int(max_ahead_s * 1000), int(max_behind_s * 1000)
        self.debounce, self.id = debounce, rule_id

    def on_records(self, mem, node, records, receive_ms):
        out = []
        live = len(records) == 1  # a batch is a replay after an outage: old ts is expected there
        for record in records:
            skew = record.ts - receive_ms
            if record.clk == "none":
                out.append(Obs(node, "clock", BREACH, receive_ms, skew / 1000, None, {"reason": "clk=none"}))
            elif skew > self.ahead_ms:
                out.append(Obs(node, "clock", BREACH, receive_ms, skew / 1000, self.ahead_ms / 1000,
                               {"reason": f"超前{skew // 1000}秒"}))
            elif live and -skew > self.behind_ms:
                out.append(Obs(node, "clock", BREACH, receive_ms, skew / 1000, self.behind_ms / 1000,
                               {"reason": f"滞后{-skew // 1000}秒"}))
            elif live:
                out.append(Obs(node, "clock", OK, receive_ms, skew / 1000, self.ahead_ms / 1000))
        return out

    def on_status(self, mem, node, status, receive_ms):
        if status.online and status.clk == "none":
            return [Obs(node, "clock", BREACH, receive_ms, None, None, {"reason": "clk=none"})]
        return []


def build(spec: dict, site: Site, where: str, rule_id: str = KIND) -> Rule:
    no_unknown(spec, where, {"max_ahead_s", "max_behind_s", "raise_n", "raise_after_s", "clear_n", "clear_after_s"})
    ahead = take(spec, where, "max_ahead_s", float, 300.0, lambda v: v > 0, "> 0")
    behind = take(spec, where, "max_behind_s", float, 3600.0, lambda v: v > 0, "> 0")
    return Clock(ahead, behind, debounce_from(spec, where, DEFAULT_DEBOUNCE), rule_id)
