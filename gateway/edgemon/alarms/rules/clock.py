"""A node whose clock cannot be trusted: it says so (`clk: "none"` in a record or its status), its
sample times are ahead of the gateway's receive time by more than `max_ahead_s`, or a live
(single, not batch) record arrives more than `max_behind_s` after its sample time."""

from __future__ import annotations

from ...configschema import Field
from .base import BREACH, OK, Debounce, Obs, Rule, Site, debounce_fields, debounce_of

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


FIELDS = {
    "max_ahead_s": Field(float, 300.0, "sample times ahead of the gateway's clock by more than this", gt=0),
    "max_behind_s": Field(float, 3600.0, "a live record arriving later than this after its sample time", gt=0),
    **debounce_fields(DEFAULT_DEBOUNCE),
}


def build(v: dict, site: Site, rule_id: str = KIND) -> Rule:
    return Clock(v["max_ahead_s"], v["max_behind_s"], debounce_of(v), rule_id)
