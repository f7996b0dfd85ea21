"""The treatment facility idle while the outfall discharges: the facility's power (one node's
parameter) below a threshold while the flow (another node's, or the same) is above zero, for
`after_min` minutes of sample time. The alarm is tagged with the power node and parameter."""

from __future__ import annotations

import re

from .base import BREACH, HOLD, OK, ConfigError, Debounce, Obs, Rule, Site, no_unknown, take

KIND = "facility_idle"

_CODE = re.compile(r"[a-z][0-9]{5}")
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


def build(spec: dict, site: Site, where: str, rule_id: str = KIND) -> Rule:
    from .base import Debounce as _D, debounce_from

    no_unknown(spec, where, {"power_node", "power_param", "flow_node", "flow_param", "threshold", "min_flow",
                             "after_min", "max_age_s", "clear_n", "clear_after_s"})
    ident = lambda v: bool(_ID.fullmatch(v))  # noqa: E731
    code = lambda v: bool(_CODE.fullmatch(v))  # noqa: E731
    power_node = take(spec, where, "power_node", str, ..., ident, "a node id")
    power_param = take(spec, where, "power_param", str, ..., code, "an HJ 212-style code, e.g. e01001")
    flow_node = take(spec, where, "flow_node", str, power_node, ident, "a node id")
    flow_param = take(spec, where, "flow_param", str, "w00000", code, "an HJ 212 code")
    threshold = take(spec, where, "threshold", float, ..., hint="power below this means idle")
    min_flow = take(spec, where, "min_flow", float, 0.0)
    after = take(spec, where, "after_min", float, 15.0, lambda v: v >= 0, ">= 0")
    max_age = take(spec, where, "max_age_s", float, 600.0, lambda v: v > 0, "> 0")
    deb = debounce_from({k: v for k, v in spec.items() if k in ("clear_n", "clear_after_s")}, where,
                        _D(raise_n=1, raise_s=after * 60, clear_n=2))
    if (power_node, power_param) == (flow_node, flow_param):
        raise ConfigError(f"{where}.flow_param", "power and flow are the same reading")
    return FacilityIdle((power_node, power_param), (flow_node, flow_param), threshold, min_flow,
                        int(max_age * 1000), deb, rule_id)
