"""Liveness: a silent node goes offline once, and comes back with its clock offset."""

from edgemon.contract import Record, Reading
from edgemon.liveness import Liveness


def test_liveness_silence_and_clock():
    lv = Liveness(silent_periods=3, future_tolerance_ms=60_000, past_tolerance_ms=600_000)
    lv.configure("s", "n", 10, now_ms=0)
    assert lv.tick(29_000) == []
    [line] = lv.tick(31_000)
    assert line.startswith("node,node=n,site=s online=false,reason=") and "3 poll periods of 10 s" in line
    assert lv.tick(40_000) == []  # said once
    rec = Record(ts=50_000 + 120_000, seq=1, clk="ntp", readings={"w01018": Reading(1.0, "N")})
    [back] = lv.on_data("s", "n", [rec], 50_000, in_batch=False)
    assert 'online=true,clock_offset_ms=120000.0,clock="future",reason="data resumed"' in back
