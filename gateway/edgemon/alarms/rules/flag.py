"""An analyzer whose readings carry a fault flag (D fault, F stopped, B communication failure by
default) for `after_min` minutes of sample time. Its readings are excluded from every limit check
meanwhile; this rule is how that gap is reported."""

from __future__ import annotations

from ...contract import FLAGS
from .base import BREACH, HOLD, OK, ConfigError, Debounce, Obs, Rule, Site, debounce_from, no_unknown, params_from, take

KIND = "flag"
DEFAULT_DEBOUNCE = Debounce(raise_n=1, clear_n=1)


class Flag(Rule):
    kind = KIND

    def __init__(self, params, flags, after_min, debounce, rule_id):
        self.params, self.flags, self.after_ms = params, set(flags), int(after_min * 60_000)
        self.debounce, self.id = debounce, rule_id

    def on_records(self, mem, node, records, receive_ms):
        out = []
        runs = mem.setdefault("runs", {})
        for record in records:
            for param in (self.params or sorted(record.readings)):
                reading = record.readings.get(param)
                if reading is None:
                    continue
                key = f"{node}|{param}"
                if reading.flag not in self.flags:
                    if runs.pop(key, None) is not None or reading.flag == "N":
                        out.append(Obs(node, param, OK, record.ts, reading.value, None, {"flag": reading.flag}))
                    continue
                run = runs.setdefault(key, {"since": record.ts, "flags": []})
                if reading.flag not in run["flags"]:
                    run["flags"].append(reading.flag)
                held = record.ts - run["since"]
                out.append(Obs(node, param, BREACH if held >= self.after_ms else HOLD, record.ts, reading.value,
                               None, {"flags": run["flags"], "since_ms": run["since"], "held_ms": held}))
        return out


def build(spec: dict, site: Site, where: str, rule_id: str = KIND) -> Rule:
    no_unknown(spec, where, {"params", "flags", "after_min", "raise_n", "raise_after_s", "clear_n", "clear_after_s"})
    params = params_from(spec, where, site, default=[])
    flags = take(spec, where, "flags", list, ["D", "F", "B"])
    for i, f in enumerate(flags):
        if f not in FLAGS or f == "N":
            raise ConfigError(f"{where}.flags[{i}]", f"{f!r} is not an HJ 212 fault flag (one of {' '.join(FLAGS[1:])})")
    after = take(spec, where, "after_min", float, 30.0, lambda v: v >= 0, ">= 0")
    return Flag(params, flags, after, debounce_from(spec, where, DEFAULT_DEBOUNCE), rule_id)
