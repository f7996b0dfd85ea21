"""A value that does not move by more than `epsilon` for `hours` of sample time: a stuck
analyzer, or data that is made up. Only N readings count."""

from __future__ import annotations

from .base import BREACH, OK, HOLD, Debounce, Obs, Rule, Site, debounce_from, no_unknown, params_from, take

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


def build(spec: dict, site: Site, where: str, rule_id: str = KIND) -> Rule:
    no_unknown(spec, where, {"params", "epsilon", "hours", "raise_n", "raise_after_s", "clear_n", "clear_after_s"})
    params = params_from(spec, where, site)
    epsilon = take(spec, where, "epsilon", float, ..., lambda v: v >= 0, ">= 0, in the parameter's unit")
    hours = take(spec, where, "hours", float, ..., lambda v: v > 0, "> 0")
    return Flatline(params, epsilon, hours, debounce_from(spec, where, DEFAULT_DEBOUNCE), rule_id)
