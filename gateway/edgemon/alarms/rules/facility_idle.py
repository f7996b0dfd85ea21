"""The treatment facility idle while the outfall discharges: the facility's power (one node's
parameter) below a threshold while the flow (another node's, or the same) is above zero, for
`after_min` minutes of sample time. The alarm is tagged with the power node and parameter."""

from __future__ import annotations

import re

from ...configschema import Field, Problems
from .base import BREACH, CODE, HOLD, OK, Debounce, Obs, Rule, Site

KIND = "facility_idle"

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class FacilityIdle(Rule):
    kind = KIND

    def __init__(self, power, flow, threshold, min_flow, max_age_ms, debounce, rule_id):
        self.power, self.flow = power, flow  # (node, param)
        self.threshold, self.min_flow, self.max_age_ms = threshold, min_flow, max_age_ms
        self.debounce, self.id = debounce, rule_id

    def on_records(self, mem, node, records, receive_ms):
        out = []
        for record in records:
            touched = False
            for name, (want_node, param) in (("power", self.power), ("flow", self.flow)):
                reading = record.readings.get(param)
                if node == want_node and reading is not None and reading.flag == "N" and reading.value is not None:
                    mem[name] = [record.ts, reading.value]
                    touched = True
            if touched and "power" in mem and "flow" in mem:
                (pts, power), (fts, flow) = mem["power"], mem["flow"]
                if abs(pts - fts) > self.max_age_ms:
                    continue  # the two values are not from the same moment
                ts = max(pts, fts)
                if flow > self.min_flow and power < self.threshold:
                    state = BREACH
                elif flow <= self.min_flow or power >= self.threshold:
                    state = OK
                else:
                    state = HOLD
                out.append(Obs(self.power[0], self.power[1], state, ts, power, self.threshold, {"flow": flow}))
        return out


NODE = dict(pattern=_ID.pattern, expect="a node id, [A-Za-z0-9_-]{1,64}")
FIELDS = {
    "power_node": Field(str, ..., "the node measuring the facility's power", example="node02", **NODE),
    "power_param": Field(str, ..., "its power reading", pattern=CODE, expect="an HJ 212-style code, e.g. e01001",
                         example="e01001"),
    "flow_node": Field(str, None, "the node measuring the discharge (default power_node)", example="node01", **NODE),
    "flow_param": Field(str, "w00000", "its flow reading", pattern=CODE, expect="an HJ 212 code, e.g. w00000"),
    "threshold": Field(float, ..., "power below this means idle", example=1.5),
    "min_flow": Field(float, 0.0, "flow above this means discharging"),
    "after_min": Field(float, 15.0, "idle while discharging for this long (sample time)", ge=0),
    "max_age_s": Field(float, 600.0, "power and flow readings further apart than this are not compared", gt=0),
    "clear_n": Field(int, 2, "consecutive clean observations before a clear", ge=1),
    "clear_after_s": Field(float, 0.0, "and clean for this long", ge=0),
}


def check(v: dict, site: Site, where: str, problems: Problems) -> None:
    if not v.bad and (v["power_node"], v["power_param"]) == (v["flow_node"] or v["power_node"], v["flow_param"]):
        problems.add(f"{where}.flow_param", "power and flow are the same reading",
                     'write the flow meter\'s reading, e.g. flow_param = "w00000" (and flow_node if another node)')


def build(v: dict, site: Site, rule_id: str = KIND) -> Rule:
    deb = Debounce(raise_n=1, raise_s=v["after_min"] * 60, clear_n=v["clear_n"], clear_s=v["clear_after_s"])
    return FacilityIdle((v["power_node"], v["power_param"]), (v["flow_node"] or v["power_node"], v["flow_param"]),
                        v["threshold"], v["min_flow"], int(v["max_age_s"] * 1000), deb, rule_id)
