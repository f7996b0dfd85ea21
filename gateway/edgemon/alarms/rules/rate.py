"""Rate of change between consecutive valid (N) samples, per minute of sample time, above a
threshold: a sudden jump is checked on site, never deleted (HJ 355/356 practice)."""

from __future__ import annotations

from ...configschema import Field
from .base import BREACH, OK, PARAMS, Debounce, Obs, Rule, Site, debounce_fields, debounce_of

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


FIELDS = {
    "params": PARAMS,
    "max_per_min": Field(float, ..., "in the parameter's unit per minute of sample time", gt=0, example=5.0),
    **debounce_fields(DEFAULT_DEBOUNCE),
}


def build(v: dict, site: Site, rule_id: str = KIND) -> Rule:
    params = v["params"] if v["params"] is not None else sorted(site.limits)
    return Rate(params, v["max_per_min"], debounce_of(v), rule_id)
