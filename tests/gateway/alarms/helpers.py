"""Small builders shared by the alarm tests."""

from pathlib import Path

from edgemon.alarms.config import load
from edgemon.contract import Reading, Record, Status

T0 = 1_764_000_000_000  # 2025-11-24T16:00:00Z = 2025-11-25 00:00 Asia/Shanghai
MIN = 60_000
DUTY = "+8613800000001"
CHIEF = "+8613800000002"

BASE = f"""
[sms]
burst = 3
burst_window_s = 60
rate_per_hour = 20
dedup_s = 600
[people.duty]
phone = "{DUTY}"
[people.chief]
phone = "{CHIEF}"
"""


def config(tmp_path: Path, sites: str, base: str = BASE):
    path = tmp_path / "alarms.toml"
    path.write_text(base + sites, encoding="utf-8")
    return load(path)


def rec(ts: int, seq: int = 0, clk: str | None = "ntp", **readings) -> Record:
    """rec(ts, w01018=(45.0, "N"), ...) or w01018=45.0 (flag N)."""
    rs = {}
    for code, v in readings.items():
        value, flag = v if isinstance(v, tuple) else (v, "N")
        rs[code] = Reading(value, flag)
    return Record(ts=ts, seq=seq, clk=clk, readings=rs)


def status(state="online", clk="ntp") -> Status:
    return Status(state=state, clk=clk)
