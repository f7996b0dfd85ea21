"""The demo's three sites as data: their analyzers (firmware profiles on simulated buses), how each
value moves, their limit profile, and the exceedance the demo stages so an alarm and its SMS show."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field


@dataclass
class Signal:
    """A value that moves like an outfall: mean, daily swing, noise (the 'day' is shortened in the demo)."""

    mean: float
    swing: float
    noise: float


@dataclass
class Total:
    """A counter that integrates another value, as a flow totaliser or an energy register does:
    it starts at `start` and grows by rate x seconds x `factor` (never backwards, in real time)."""

    rate: str               # the param it integrates (e.g. w00000, L/s)
    factor: float           # units of the total per (unit of rate x second): L/s -> m3 is 0.001
    start: float


@dataclass
class Analyzer:
    name: str
    profile: str            # firmware/profiles/<profile>.json
    unit: int
    signals: dict[str, Signal]
    totals: dict[str, Total] = field(default_factory=dict)
    # param -> (source param, factor): a value that follows another one (phase currents from power)
    derived: dict[str, tuple[str, float]] = field(default_factory=dict)

    def params(self) -> list[str]:
        return [*self.signals, *self.totals, *self.derived]

    def step(self, now: float, dt: float, day_s: float, phase: dict[str, float], totals: dict[str, float],
             noise: bool = True) -> dict[str, float]:
        """Every value of this analyzer at time `now`, `dt` seconds after the last step: signals on
        their daily cycle (a 'day' of day_s seconds), derived values from their source, totals grown
        by rate x dt (totals: param -> running total, updated in place; starts from Total.start)."""
        out: dict[str, float] = {}
        for param, sig in self.signals.items():
            angle = 2 * math.pi * now / day_s + phase.get(param, 0.0)
            v = sig.mean + sig.swing * math.sin(angle) + (random.gauss(0, sig.noise) if noise else 0.0)
            out[param] = round(max(v, 0.0), 3)
        for param, (source, factor) in self.derived.items():
            out[param] = round(out[source] * factor, 2)
        for param, total in self.totals.items():
            totals[param] = totals.get(param, total.start) + max(out[total.rate], 0.0) * max(dt, 0.0) * total.factor
            out[param] = round(totals[param], 3)
        return out


@dataclass
class Node:
    node: str
    framing: str            # "rtu" (RS-485 behind a serial server) or "tcp" (Modbus TCP)
    analyzers: list[Analyzer]


@dataclass
class Site:
    site: str
    label: str
    name_zh: str
    limit_profile: str      # gateway/edgemon/data/limits/<id>.toml
    nodes: list[Node]
    staged_breach: tuple[str, int, str, float] | None = None   # (node, unit, param, value) during the breach
    people: list[str] = field(default_factory=lambda: ["duty"])


SITES = [
    Site("qd_wwtp_outlet", "wastewater plant outlet", "青岛某污水处理厂总排口", "gb18918-1a", [
        Node("node01", "rtu", [
            Analyzer("cod", "cod_generic", 1, {"w01018": Signal(28.0, 6.0, 0.8)}),
            Analyzer("nh3n", "nh3n_xinruipeng", 2, {"w21003": Signal(1.6, 0.6, 0.05)}),
            Analyzer("ph", "ph_temp", 3, {"w01001": Signal(7.2, 0.3, 0.02), "w01010": Signal(18.0, 2.0, 0.1)}),
            Analyzer("flow", "flow_lmag", 4, {"w00000": Signal(120.0, 40.0, 3.0)},
                     totals={"w00001": Total("w00000", 0.001, 152_340.0)}),
        ]),
    ]),
    Site("laixi_ent_07", "enterprise outfall", "莱西某企业总排口", "laixi-plant", [
        Node("node01", "rtu", [
            Analyzer("cod", "cod_hach_cdab", 1, {"w01018": Signal(30.0, 5.0, 0.8)}),
            Analyzer("flow", "flow_lmag", 2, {"w00000": Signal(35.0, 10.0, 1.0)},
                     totals={"w00001": Total("w00000", 0.001, 48_210.0)}),
        ]),
        Node("node02", "tcp", [
            # 400 V three-phase, power factor 0.85: I = P / (sqrt(3) x 0.4 kV x 0.85) = 1.70 A per kW
            Analyzer("power", "energy_meter_3ph", 1, {"p02001": Signal(45.0, 8.0, 1.0)},
                     totals={"p03001": Total("p02001", 1 / 3600, 86_420.0)},
                     derived={"p01001": ("p02001", 1.70), "p01002": ("p02001", 1.68), "p01003": ("p02001", 1.72)}),
        ]),
    ], staged_breach=("node01", 1, "w01018", 57.3)),
    Site("river_sec_03", "river section", "小沽河某断面", "gb3838-iii", [
        Node("node01", "rtu", [
            Analyzer("logger", "logger_multi", 1, {
                "w01018": Signal(16.0, 3.0, 0.5), "w21003": Signal(0.6, 0.2, 0.03),
                "w21011": Signal(0.12, 0.04, 0.005), "w21001": Signal(0.7, 0.1, 0.03),
                "w01001": Signal(7.6, 0.2, 0.02), "w00000": Signal(800.0, 150.0, 20.0),
                "w21017": Signal(0.5, 0.1, 0.02)}),
        ]),
    ]),
]
