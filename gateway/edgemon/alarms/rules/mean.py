"""The mean over a window (hourly, daily; days are Asia/Shanghai calendar days) against the
limit, as the standards judge: only N readings count; a window with fewer than `min_valid` valid
readings is not judged (reported as excluded). A window is judged once it is over: when a later
sample arrives, or `grace_s` after its end on the clock."""

from __future__ import annotations

from ...configschema import Field
from .base import (BREACH, EXCLUDED, OK, PARAMS, Debounce, Obs, Rule, Site, check_limits, debounce_fields,
                   debounce_of, effective_max, note_temperature, temperature)

KIND = "mean"
DEFAULT_DEBOUNCE = Debounce(raise_n=1, clear_n=1)
WINDOWS = {"1h": 3_600_000, "1d": 86_400_000}
WINDOW_WORDS = {"1h": "小时", "1d": "日"}
SHANGHAI_OFFSET_MS = 8 * 3_600_000  # China has no daylight saving time


def window_start(ts: int, size_ms: int) -> int:
    return (ts + SHANGHAI_OFFSET_MS) // size_ms * size_ms - SHANGHAI_OFFSET_MS


class Mean(Rule):
    kind = KIND

    def __init__(self, site, params, window, min_valid, grace_s, debounce, rule_id):
        self.site, self.params, self.window = site, params, window
        self.size = WINDOWS[window]
        self.min_valid, self.grace_ms = min_valid, int(grace_s * 1000)
        self.debounce, self.id = debounce, rule_id

    def on_records(self, mem, node, records, receive_ms):
        out = []
        buckets = mem.setdefault("buckets", {})
        for record in records:
            note_temperature(mem, self.site, node, record)
            start = window_start(record.ts, self.size)
            for param in self.params:
                reading = record.readings.get(param)
                if reading is None:
                    continue
                key = f"{node}|{param}"
                b = buckets.get(key)
                if b is not None and start > b["start"]:
                    out.append(self._judge(mem, node, param, b))
                    b = None
                if b is None or start < b["start"]:
                    if b is not None:
                        continue  # a late sample of a window already judged: ignored
                    b = buckets[key] = {"start": start, "sum": 0.0, "n": 0, "excluded": {}}
                if reading.flag == "N" and reading.value is not None:
                    b["sum"] += reading.value
                    b["n"] += 1
                else:
                    b["excluded"][reading.flag] = b["excluded"].get(reading.flag, 0) + 1
        return out

    def on_tick(self, mem, now_ms):
        out = []
        buckets = mem.get("buckets", {})
        for key in list(buckets):
            b = buckets[key]
            if now_ms >= b["start"] + self.size + self.grace_ms:
                node, param = key.split("|")
                out.append(self._judge(mem, node, param, b))
                del buckets[key]
        return out

    def _judge(self, mem, node, param, b) -> Obs:
        ts = b["start"] + self.size  # the window's end: when the mean became known
        detail = {"window": WINDOW_WORDS[self.window], "start_ms": b["start"], "n": b["n"], "excluded": b["excluded"]}
        if b["n"] < self.min_valid or b["n"] == 0:
            return Obs(node, param, EXCLUDED, ts, None, None, {**detail, "flag": "insufficient"})
        mean = b["sum"] / b["n"]
        limit = self.site.limits[param]
        hi = effective_max(self.site, limit, temperature(mem, node))
        if hi is not None and mean > hi:
            return Obs(node, param, BREACH, ts, mean, hi, {**detail, "side": "high"})
        if limit.min is not None and mean < limit.min:
            return Obs(node, param, BREACH, ts, mean, limit.min, {**detail, "side": "low"})
        return Obs(node, param, OK, ts, mean, hi if hi is not None else limit.min, detail)


FIELDS = {
    "params": PARAMS,
    "window": Field(str, "1d", "the window: an hour or an Asia/Shanghai calendar day", enum=tuple(WINDOWS)),
    "min_valid": Field(int, 1, "a window with fewer valid (N) readings is not judged", ge=1),
    "grace_s": Field(float, 600.0, "a window is judged this long after its end at the latest", ge=0),
    **debounce_fields(DEFAULT_DEBOUNCE),
}
check = check_limits


def build(v: dict, site: Site, rule_id: str = KIND) -> Rule:
    params = v["params"] if v["params"] is not None else sorted(site.limits)
    return Mean(site, params, v["window"], v["min_valid"], v["grace_s"], debounce_of(v), rule_id)
