"""The aggregator on its real SQLite store: periods computed once over, late and replayed records,
Asia/Shanghai days, the `aggregate` points, and the state kept across a restart."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from edgemon.aggregates.engine import Aggregator, SiteSettings
from edgemon.aggregates.lines import point_line
from edgemon.aggregates.periods import end_of, start_of
from edgemon.aggregates.store import AggregateStore
from edgemon.contract import Reading, Record

UNITS = {"w01018": "mg/L", "w00000": "L/s", "w01001": ""}
T0 = int(datetime(2026, 12, 6, 2, 0, tzinfo=timezone.utc).timestamp() * 1000)  # 10:00 in Shanghai


def rec(ts, seq, cod, flow, cod_flag="N"):
    return Record(ts, seq, "ntp", {"w01018": Reading(cod, cod_flag), "w00000": Reading(flow, "N")})


def make(tmp_path, **kw):
    store = AggregateStore(tmp_path)
    return Aggregator(store, {"s1": SiteSettings(poll_s=20.0)}, units=UNITS, close_after_s=60, **kw)


def by_key(points):
    return {(p.param, p.period, p.start): p.value for p in points}


def test_a_minute_is_computed_once_over_and_its_hour_once_the_hour_is(tmp_path):
    agg = make(tmp_path)
    agg.add("s1", "n1", [rec(T0, 1, 10, 100), rec(T0 + 20_000, 2, 20, 100), rec(T0 + 40_000, 3, 30, 200)], T0)
    assert agg.compute(T0 + 60_000 + 59_000) == 0  # the minute ended, but not yet + close_after
    assert agg.compute(T0 + 120_000) == 1
    pts = by_key(agg.pending())
    assert pts[("w01018", "minute", T0)].avg == pytest.approx(22.5)
    assert pts[("w00000", "minute", T0)].cou == pytest.approx(8.0)
    assert not any(period == "hour" for _, period, _ in pts)
    agg.handed_on(agg.pending())
    assert agg.pending() == []
    assert agg.compute(T0 + 3_600_000 + 60_000) == 1  # the hour
    hour = by_key(agg.pending())[("w01018", "hour", T0)]
    assert hour.avg == pytest.approx(22.5) and hour.cou == pytest.approx(0.18) and hour.flag == "N"


def test_a_late_record_recomputes_its_minute_hour_and_day_and_a_replay_changes_nothing(tmp_path):
    agg = make(tmp_path)
    agg.add("s1", "n1", [rec(T0, 1, 10, 100), rec(T0 + 60_000, 2, 30, 100)], T0)
    next_day = end_of("day", start_of("day", T0)) + 120_000
    agg.compute(next_day)
    first = by_key(agg.pending())
    day = start_of("day", T0)
    assert first[("w01018", "day", day)].avg == pytest.approx(20.0)
    agg.handed_on(agg.pending())
    # a record of the first minute, stored on the node and replayed a day later: C 40 at Q 200, flag M
    assert agg.add("s1", "n1", [rec(T0 + 20_000, 5, 40, 200, "M")], next_day) == 1
    agg.compute(next_day + 1000)
    again = by_key(agg.pending())
    assert set(again) == {(p, period, start) for p in ("w01018", "w00000")
                          for period, start in (("minute", T0), ("hour", T0), ("day", day))}
    assert again[("w01018", "minute", T0)].flag == "M" and again[("w01018", "day", day)].flag == "M"
    assert again[("w01018", "day", day)].avg == pytest.approx(20.0)  # the M value does not count
    assert again[("w00000", "day", day)].cou == pytest.approx((100 + 200 + 100) * 20 * 1e-3)  # its flow does
    agg.handed_on(agg.pending())
    assert agg.add("s1", "n1", [rec(T0 + 20_000, 5, 40, 200, "M"), rec(T0, 1, 10, 100)], next_day) == 0
    assert agg.compute(next_day + 2000) == 0 and agg.pending() == []


def test_days_are_shanghai_calendar_days(tmp_path):
    agg = make(tmp_path)
    local_2359 = int(datetime(2026, 12, 6, 15, 59, tzinfo=timezone.utc).timestamp() * 1000)  # 23:59 in Shanghai
    agg.add("s1", "n1", [rec(local_2359, 1, 10, 100), rec(local_2359 + 60_000, 2, 50, 100)], local_2359)
    agg.compute(local_2359 + 3 * 86_400_000)
    days = {start: v for (p, period, start), v in by_key(agg.pending()).items() if period == "day" and p == "w01018"}
    assert sorted(days) == [int(datetime(2026, 12, d, 16, 0, tzinfo=timezone.utc).timestamp() * 1000) for d in (5, 6)]
    assert [days[k].avg for k in sorted(days)] == [10, 50]
    assert start_of("day", local_2359, "UTC") == int(datetime(2026, 12, 6, tzinfo=timezone.utc).timestamp() * 1000)


def test_unknown_time_zone_is_refused_at_start(tmp_path):
    with pytest.raises(ValueError, match="Mars/Olympus"):
        Aggregator(AggregateStore(tmp_path), tz="Mars/Olympus")


def test_the_outbox_and_the_sums_survive_a_restart(tmp_path):
    agg = make(tmp_path)
    agg.add("s1", "n1", [rec(T0, 1, 10, 100)], T0)
    agg.compute(T0 + 200_000)
    agg.store.close()
    again = make(tmp_path)  # the gateway restarted before handing the minute on
    assert [(p.param, p.period) for p in again.pending()] == [("w00000", "minute"), ("w01018", "minute")]
    again.add("s1", "n1", [rec(T0 + 20_000, 2, 30, 100)], T0 + 200_000)
    again.compute(T0 + 201_000)
    assert by_key(again.pending())[("w01018", "minute", T0)].avg == pytest.approx(20.0)


def test_a_record_older_than_the_retention_is_not_counted(tmp_path):
    agg = make(tmp_path, retention_days=2)
    assert agg.add("s1", "n1", [rec(T0, 1, 10, 100)], T0 + 3 * 86_400_000) == 0
    assert agg.too_old == 1


def test_gas_site_has_no_load_and_follows_the_gas_rules(tmp_path):
    agg = Aggregator(AggregateStore(tmp_path), {"stack": SiteSettings(medium="gas", flow=None, poll_s=15)},
                     units={"a21026": "mg/m³"})
    recs = [Record(T0 + k * 15_000, k, "ntp", {"a21026": Reading(20.0, "N" if k % 4 else "C")}) for k in range(4)]
    agg.add("stack", "n1", recs, T0)
    agg.compute(T0 + 200_000)
    v = by_key(agg.pending())[("a21026", "minute", T0)]
    assert v.flag == "N" and v.valid and v.cou is None  # 3 of 4 normal: 75 %


def test_aggregate_line(tmp_path):
    agg = make(tmp_path)
    agg.add("s1", "n1", [rec(T0, 1, 10, 100), rec(T0 + 20_000, 2, 20, None)], T0)
    agg.compute(T0 + 200_000)
    lines = sorted(point_line(p) for p in agg.pending())
    assert lines[1] == ("aggregate,node=n1,param=w01018,period=minute,site=s1 avg=10.0,min=10.0,max=20.0,"
                        f'cou=0.02,flag="N",valid=true,n=2.0,count=2.0,weighted=true,parts=2.0 {T0}')
