"""The demo's three sites as data: their analyzers (firmware profiles on simulated buses), how each
value moves, their limit profile, and the exceedance the demo stages so an alarm and its SMS show."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Signal:
    """A value that moves like an outfall: mean, daily swing, noise (the 'day' is shortened in the demo)."""

    mean: float
    swing: float
    noise: float


@dataclass
class Analyzer:
    name: str
    profile: str            # firmware/profiles/<profile>.json
    unit: int
    signals: dict[str, Signal]


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
            Analyzer("flow", "flow_lmag", 4, {"w00000": Signal(120.0, 40.0, 3.0)}),
        ]),
    ]),
    Site("laixi_ent_07", "enterprise outfall", "莱西某企业总排口", "laixi-plant", [
        Node("node01", "rtu", [
            Analyzer("cod", "cod_hach_cdab", 1, {"w01018": Signal(30.0, 5.0, 0.8)}),
            Analyzer("flow", "flow_lmag", 2, {"w00000": Signal(35.0, 10.0, 1.0)}),
        ]),
        Node("node02", "tcp", [
            Analyzer("power", "energy_meter_3ph", 1, {"p02001": Signal(45.0, 8.0, 1.0)}),
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
