"""The mean over a window (hourly, daily; days are Asia/Shanghai calendar days) against the
limit, as the standards judge: only N readings count; a window with fewer than `min_valid` valid
readings is not judged (reported as excluded). The mean is flow-weighted where the record carries the
site's flow (`flow`, default w00000), as the day values of edgemon.aggregates are (the same maths:
aggregates/stats.py), and arithmetic otherwise or with `weighting = "arithmetic"`. A window is judged once it is over: when a later
sample arrives, or `grace_s` after its end on the clock."""

from __future__ import annotations

from ...aggregates.stats import WATER, Acc, minute_value
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

    def __init__(self, site, params, window, min_valid, grace_s, debounce, rule_id, flow="w00000"):
        self.site, self.params, self.window = site, params, window
        self.flow = flow
        self.size = WINDOWS[window]
        self.min_valid, self.grace_ms = min_valid, int(grace_s * 1000)
        self.debounce, self.id = debounce, rule_id

    def on_records(self, mem, node, records, receive_ms):
        out = []
        buckets = mem.setdefault("buckets", {})
        for record in records:
            note_temperature(mem, self.site, node, record)
            start = window_start(record.ts, self.size)
            fr = record.readings.get(self.flow) if self.flow else None
            flow = fr.value if fr is not None and fr.flag == "N" and fr.value is not None else None
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
                    b = buckets[key] = {"start": start, "acc": Acc().to_json(), "excluded": {}}
                acc = _acc(b)
                acc.add(reading.value, reading.flag, flow, 1.0)  # equal samples: dt cancels
                b["acc"] = acc.to_json()
                if reading.flag != "N" or reading.value is None:
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
        acc = _acc(b)
        detail = {"window": WINDOW_WORDS[self.window], "start_ms": b["start"], "n": acc.n, "excluded": b["excluded"]}
        if acc.n < self.min_valid or acc.n == 0:
            return Obs(node, param, EXCLUDED, ts, None, None, {**detail, "flag": "insufficient"})
        value = minute_value(acc, WATER, "conc")  # flow-weighted when flows were counted (acc.q > 0)
        mean = value.avg
        detail["weighted"] = value.weighted
        limit = self.site.limits[param]
        hi = effective_max(self.site, limit, temperature(mem, node))
        if hi is not None and mean > hi:
            return Obs(node, param, BREACH, ts, mean, hi, {**detail, "side": "high"})
        if limit.min is not None and mean < limit.min:
            return Obs(node, param, BREACH, ts, mean, limit.min, {**detail, "side": "low"})
        return Obs(node, param, OK, ts, mean, hi if hi is not None else limit.min, detail)


def _acc(b: dict) -> Acc:
    if "acc" in b:
        return Acc.from_json(b["acc"])
    return Acc(count=b["n"], n=b["n"], total=b["sum"])  # memory saved before the sums were kept: no min/max


FIELDS = {
    "params": PARAMS,
    "window": Field(str, "1d", "the window: an hour or an Asia/Shanghai calendar day", enum=tuple(WINDOWS)),
    "min_valid": Field(int, 1, "a window with fewer valid (N) readings is not judged", ge=1),
    "grace_s": Field(float, 600.0, "a window is judged this long after its end at the latest", ge=0),
    "weighting": Field(str, "flow", "flow: weighted by the site's flow where records carry it (as the standard "
                       "judges); arithmetic: the plain mean", enum=("flow", "arithmetic"),
                       expect='"flow" or "arithmetic"'),
    "flow": Field(str, "w00000", "the flow code that weights the mean (L/s)", pattern=r"[a-z][0-9]{5}",
                  expect="an HJ 212 code such as w00000"),
    **debounce_fields(DEFAULT_DEBOUNCE),
}
check = check_limits


def build(v: dict, site: Site, rule_id: str = KIND) -> Rule:
    params = v["params"] if v["params"] is not None else sorted(site.limits)
    flow = v["flow"] if v["weighting"] == "flow" else None
    return Mean(site, params, v["window"], v["min_valid"], v["grace_s"], debounce_of(v), rule_id, flow)
