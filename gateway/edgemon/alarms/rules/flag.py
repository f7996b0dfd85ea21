"""An analyzer whose readings carry a fault flag (D fault, F stopped, B communication failure by
default) for `after_min` minutes of sample time. Its readings are excluded from every limit check
meanwhile; this rule is how that gap is reported."""

from __future__ import annotations

from ...contract import FLAGS
from ...configschema import Field
from .base import BREACH, HOLD, OK, PARAMS, Debounce, Obs, Rule, Site, debounce_fields, debounce_of

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


FAULTS = tuple(f for f in FLAGS if f != "N")
FIELDS = {
    "params": Field(list, [], "the parameters watched (default: every one)", items=PARAMS.items, example=["w01018"]),
    "flags": Field(list, ["D", "F", "B"], "the fault flags", items=Field(
        str, enum=FAULTS, expect=f"an HJ 212 fault flag (one of {' '.join(FAULTS)})", example="D")),
    "after_min": Field(float, 30.0, "flagged for this long (sample time) before a raise", ge=0),
    **debounce_fields(DEFAULT_DEBOUNCE),
}


def build(v: dict, site: Site, rule_id: str = KIND) -> Rule:
    return Flag(v["params"], v["flags"], v["after_min"], debounce_of(v), rule_id)
