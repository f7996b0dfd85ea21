"""Each sample against the limit (above a max, below a min, outside a range such as pH 6-9).
Only readings flagged N count; others are reported as excluded. An early warning where the
standard judges daily means."""

from __future__ import annotations

from .base import (BREACH, EXCLUDED, OK, WITHIN, ConfigError, Debounce, Obs, Rule, Site, debounce_from,
                   effective_max, no_unknown, note_temperature, params_from, take, temperature)

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


def build(spec: dict, site: Site, where: str, rule_id: str = KIND) -> Rule:
    no_unknown(spec, where, {"params", "hysteresis"} | {"raise_n", "raise_after_s", "clear_n", "clear_after_s"})
    params = params_from(spec, where, site)
    for i, p in enumerate(params):
        if p not in site.limits:
            raise ConfigError(f"{where}.params[{i}]", f"{p} has no limit in profile {site.profile!r} or the overrides")
    hysteresis = take(spec, where, "hysteresis", float, 0.05, lambda v: 0 <= v < 1, "a fraction of the limit, 0 <= h < 1")
    return Instant(site, params, hysteresis, debounce_from(spec, where, DEFAULT_DEBOUNCE), rule_id)
