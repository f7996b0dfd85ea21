"""Each sample against the limit (above a max, below a min, outside a range such as pH 6-9).
Only readings flagged N count; others are reported as excluded. An early warning where the
standard judges daily means."""

from __future__ import annotations

from ...configschema import Field
from .base import (BREACH, EXCLUDED, OK, PARAMS, WITHIN, Debounce, Obs, Rule, Site, check_limits, debounce_fields,
                   debounce_of, effective_max, note_temperature, temperature)

KIND = "instant"
DEFAULT_DEBOUNCE = Debounce(raise_n=3, clear_n=3)


class Instant(Rule):
    kind = KIND

    def __init__(self, site: Site, params: list[str], hysteresis: float, debounce: Debounce, rule_id: str):
        self.site = site
        self.params = params
        self.hysteresis = hysteresis
        self.debounce = debounce
        self.id = rule_id

    def on_records(self, mem, node, records, receive_ms):
        out = []
        for record in records:
            note_temperature(mem, self.site, node, record)
            for param in self.params:
                reading = record.readings.get(param)
                if reading is None:
                    continue
                if reading.flag != "N" or reading.value is None:
                    out.append(Obs(node, param, EXCLUDED, record.ts, reading.value, None, {"flag": reading.flag}))
                    continue
                out.append(self._judge(mem, node, param, reading.value, record.ts))
        return out

    def _judge(self, mem, node, param, v, ts) -> Obs:
        limit = self.site.limits[param]
        hi = effective_max(self.site, limit, temperature(mem, node))
        lo = limit.min
        rng = [lo, hi] if lo is not None and hi is not None else None
        if hi is not None and v > hi:
            return Obs(node, param, BREACH, ts, v, hi, {"side": "high", "range": rng})
        if lo is not None and v < lo:
            return Obs(node, param, BREACH, ts, v, lo, {"side": "low", "range": rng})
        # Back within the limit by the hysteresis margin before it counts towards clearing.
        margin_hi = hi is None or v <= hi - abs(hi) * self.hysteresis
        margin_lo = lo is None or v >= lo + abs(lo) * self.hysteresis
        return Obs(node, param, OK if margin_hi and margin_lo else WITHIN, ts, v, hi if hi is not None else lo)


FIELDS = {
    "params": PARAMS,
    "hysteresis": Field(float, 0.05, "back this fraction within the limit before a sample counts as clean",
                        ge=0, lt=1, expect="a fraction of the limit, 0 <= h < 1"),
    **debounce_fields(DEFAULT_DEBOUNCE),
}
check = check_limits


def build(v: dict, site: Site, rule_id: str = KIND) -> Rule:
    params = v["params"] if v["params"] is not None else sorted(site.limits)
    return Instant(site, params, v["hysteresis"], debounce_of(v), rule_id)
