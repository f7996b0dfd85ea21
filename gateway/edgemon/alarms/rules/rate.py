"""Rate of change between consecutive valid (N) samples, per minute of sample time, above a
threshold: a sudden jump is checked on site, never deleted (HJ 355/356 practice)."""

from __future__ import annotations

from .base import BREACH, OK, ConfigError, Debounce, Obs, Rule, Site, debounce_from, no_unknown, params_from, take

KIND = "rate"
DEFAULT_DEBOUNCE = Debounce(raise_n=1, clear_n=3)


class Rate(Rule):
    kind = KIND

    def __init__(self, params, max_per_min, debounce, rule_id):
        self.params, self.max_per_min, self.debounce, self.id = params, max_per_min, debounce, rule_id

    def on_records(self, mem, node, records, receive_ms):
        out = []
        last = mem.setdefault("last", {})
        for record in records:
            for param in self.params:
                reading = record.readings.get(param)
                if reading is None or reading.flag != "N" or reading.value is None:
                    continue
                key = f"{node}|{param}"
                prev = last.get(key)
                if prev is not None and record.ts > prev[0]:
                    per_min = abs(reading.value - prev[1]) / ((record.ts - prev[0]) / 60_000)
                    state = BREACH if per_min > self.max_per_min else OK
                    out.append(Obs(node, param, state, record.ts, round(per_min, 3), self.max_per_min,
                                   {"from": prev[1], "to": reading.value}))
                if prev is None or record.ts > prev[0]:
                    last[key] = [record.ts, reading.value]
        return out


def build(spec: dict, site: Site, where: str, rule_id: str = KIND) -> Rule:
    no_unknown(spec, where, {"params", "max_per_min", "raise_n", "raise_after_s", "clear_n", "clear_after_s"})
    params = params_from(spec, where, site)
    max_per_min = take(spec, where, "max_per_min", float, ..., lambda v: v > 0, "> 0, in the parameter's unit per minute")
    return Rate(params, max_per_min, debounce_from(spec, where, DEFAULT_DEBOUNCE), rule_id)
