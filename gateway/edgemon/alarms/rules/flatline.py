"""A value that does not move by more than `epsilon` for `hours` of sample time: a stuck
analyzer, or data that is made up. Only N readings count."""

from __future__ import annotations

from ...configschema import Field
from .base import BREACH, OK, HOLD, PARAMS, Debounce, Obs, Rule, Site, debounce_fields, debounce_of

KIND = "flatline"
DEFAULT_DEBOUNCE = Debounce(raise_n=1, clear_n=1)


class Flatline(Rule):
    kind = KIND

    def __init__(self, params, epsilon, hours, debounce, rule_id):
        self.params, self.epsilon, self.span_ms = params, epsilon, int(hours * 3_600_000)
        self.debounce, self.id = debounce, rule_id

    def on_records(self, mem, node, records, receive_ms):
        out = []
        runs = mem.setdefault("runs", {})
        for record in records:
            for param in self.params:
                reading = record.readings.get(param)
                if reading is None or reading.flag != "N" or reading.value is None:
                    continue
                v, key = reading.value, f"{node}|{param}"
                run = runs.get(key)
                if run is not None and record.ts < run["last"]:
                    continue  # an older sample (replay) says nothing about now
                if run is None or max(run["hi"], v) - min(run["lo"], v) > self.epsilon:
                    moved = run is not None
                    runs[key] = {"since": record.ts, "lo": v, "hi": v, "last": record.ts}
                    if moved:
                        out.append(Obs(node, param, OK, record.ts, v, self.epsilon))
                    continue
                run.update(lo=min(run["lo"], v), hi=max(run["hi"], v), last=record.ts)
                flat_ms = record.ts - run["since"]
                state = BREACH if flat_ms >= self.span_ms else HOLD
                out.append(Obs(node, param, state, record.ts, v, self.epsilon,
                               {"since_ms": run["since"], "flat_ms": flat_ms}))
        return out


FIELDS = {
    "params": PARAMS,
    "epsilon": Field(float, ..., "moves by no more than this, in the parameter's unit", ge=0, example=0.01),
    "hours": Field(float, ..., "for this long (sample time)", gt=0, example=4),
    **debounce_fields(DEFAULT_DEBOUNCE),
}


def build(v: dict, site: Site, rule_id: str = KIND) -> Rule:
    params = v["params"] if v["params"] is not None else sorted(site.limits)
    return Flatline(params, v["epsilon"], v["hours"], debounce_of(v), rule_id)
