"""The daily report's content from plain data (no servers): verdicts against limits, hours, alarms,
signature counts and the time zone's day."""

from __future__ import annotations

import json
from datetime import date

import pytest

from edgemon.alarms.rules.base import Limit
from edgemon.report.content import (EXCEED, INVALID, NO_LIMIT, NOT_JUDGED, PASS, ParamInfo, SiteData, build_report,
                                    judge, limit_in_force, number, refusal_row)
from edgemon.report.days import day_bounds, local_day, zone

SH = zone("Asia/Shanghai")
DAY = date(2025, 11, 25)
START, END = day_bounds(DAY, SH)
H = 3_600_000
PARAMS = {"w01018": ParamInfo("化学需氧量", "COD", "mg/L"), "w21003": ParamInfo("氨氮", "NH3-N", "mg/L"),
          "w01001": ParamInfo("pH值", "pH", ""), "w00000": ParamInfo("污水流量", "flow", "L/s"),
          "w01010": ParamInfo("水温", "T", "℃")}


def day_point(param, avg, node="n1", valid=True, flag="N", **more):
    p = {"time": START, "site": "s1", "node": node, "param": param, "period": "day", "flag": flag, "valid": valid,
         "n": 24, "count": 24, **more}
    if avg is not None:
        p["avg"] = avg
    return p


def site(**kw) -> SiteData:
    base = dict(site="s1", site_name="一号排口", day=DAY, tz="Asia/Shanghai", start_ms=START, end_ms=END,
                now_ms=END + 5 * H, poll_s=60.0, nodes=["n1"], limits={})
    base.update(kw)
    return SiteData(**base)


def row_of(report, param, node="n1"):
    return next(r for r in report.rows if (r.param, r.node) == (param, node))


# --------------------------------------------------------------------------- verdicts

@pytest.mark.parametrize("avg, lo, hi, verdict", [
    (35.2, None, 40.0, PASS),
    (40.0, None, 40.0, PASS),      # equal to the limit passes
    (40.01, None, 40.0, EXCEED),
    (5.9, 6.0, 9.0, EXCEED),       # pH under its minimum
    (9.2, 6.0, 9.0, EXCEED),
    (7.3, 6.0, 9.0, PASS),
])
def test_a_valid_daily_mean_against_its_limit(avg, lo, hi, verdict):
    assert judge(day_point("w01018", avg), lo, hi, True)[0] == verdict


def test_not_valid_without_a_day_point_when_valid_is_false_or_without_avg():
    assert judge(None, None, 40.0, True) == (INVALID, "当日无日均值")
    verdict, note = judge(day_point("w01018", 35.0, valid=False, n=12, count=24), None, 40.0, True)
    assert verdict == INVALID and note == "日均值无效（有效值12个/共24个）"
    assert judge(day_point("w01018", None), None, 40.0, True)[0] == INVALID
    # no limit: the value is listed, not judged; still not valid when it is not
    assert judge(day_point("w00000", 12.5), None, None, False)[0] == NOT_JUDGED
    assert judge(day_point("w00000", 12.5, valid=False), None, None, False)[0] == INVALID


def test_limit_texts_and_the_cold_water_max():
    nh3 = Limit(max=5.0, cold_max=8.0)
    assert limit_in_force(nh3, 15.0, 12.0)[:2] == (None, 5.0)
    lo, hi, text = limit_in_force(nh3, 11.5, 12.0)
    assert hi == 8.0 and text.startswith("≤8") and "水温" in text
    assert limit_in_force(nh3, None, 12.0)[1] == 5.0  # no temperature known: the stricter max
    assert limit_in_force(Limit(min=6.0, max=9.0), None, None) == (6.0, 9.0, "6～9")
    assert limit_in_force(None, None, None) == (None, None, NO_LIMIT)


def test_rows_judge_each_parameter_of_the_site_with_the_days_mean_temperature():
    data = site(limits={"w01018": Limit(max=40.0), "w21003": Limit(max=5.0, cold_max=8.0),
                        "w01001": Limit(min=6.0, max=9.0)}, cold_param="w01010", cold_at_or_below=12.0,
                day_points=[day_point("w01018", 43.0), day_point("w21003", 6.5), day_point("w01001", 7.1, valid=False),
                            day_point("w01010", 10.5), day_point("w00000", 12.5, cou=1080.0)],
                series=[("w21011", "n1")])  # measured that week, nothing today
    r = build_report(data, PARAMS)
    assert row_of(r, "w01018").verdict == EXCEED and row_of(r, "w01018").note == "超过上限40"
    assert row_of(r, "w21003").verdict == PASS and row_of(r, "w21003").hi == 8.0  # cold water: 6.5 <= 8
    assert row_of(r, "w01001").verdict == INVALID
    flow = row_of(r, "w00000")
    assert (flow.verdict, flow.limit_text, flow.cou, flow.cou_unit) == (NOT_JUDGED, NO_LIMIT, 1080.0, "m³")
    assert row_of(r, "w21011").verdict == INVALID and row_of(r, "w21011").value is None
    # parameters with a limit first, in params.toml order
    assert [x.param for x in r.rows][:3] == ["w01018", "w21003", "w01001"]
    assert (r.count(PASS), r.count(EXCEED), r.count(INVALID), r.count(NOT_JUDGED)) == (1, 1, 2, 2)

    warm = build_report(site(limits=data.limits, cold_param="w01010", cold_at_or_below=12.0,
                             day_points=[day_point("w21003", 6.5), day_point("w01010", 14.0)]), PARAMS)
    assert row_of(warm, "w21003").verdict == EXCEED and row_of(warm, "w21003").hi == 5.0


def test_hours_flagged_invalid_and_missing():
    hours = [{"time": START + h * H, "node": "n1", "param": "w01018", "avg": 30.0 + h, "flag": "N", "valid": True}
             for h in range(24) if h != 7]
    hours[3]["flag"] = "D"
    hours[5]["valid"] = False
    del hours[6]["avg"]
    r = build_report(site(hour_points=hours, limits={"w01018": Limit(max=40.0)}), PARAMS)
    cells = row_of(r, "w01018").hours
    assert len(cells) == 24 and cells[0].start_ms == START
    states = [c.state for c in cells]
    assert states[3] == "flagged" and states[5] == "invalid" and states[6] == "invalid" and states[7] == "missing"
    assert states.count("ok") == 20
    assert cells[10].avg == 40.0 and cells[8].start_ms == START + 8 * H  # by the point's time, not its position
    assert row_of(r, "w01018").verdict == INVALID  # hours alone make no daily value


def test_number_formats():
    assert [number(v) for v in (35.2, 40.0, 2.6, 0.05, 1234.4, 123.45, None)] == \
        ["35.2", "40", "2.6", "0.05", "1234", "123.5", "—"]


# --------------------------------------------------------------------------- alarms

def test_the_days_alarms_in_time_order_with_names():
    pts = [{"time": START + 9 * H, "node": "n1", "param": "w21003", "rule": "instant", "state": "cleared",
            "value": 1.5, "limit": 2.0, "message": "【告警解除】氨氮"},
           {"time": START + 8 * H, "node": "n1", "param": "w21003", "rule": "instant", "state": "raised",
            "value": 2.9, "limit": 2.0, "message": "【超标预警】氨氮"},
           {"time": START + 10 * H, "node": "n2", "param": "node", "rule": "offline", "state": "raised",
            "message": "离线"}]
    lines = build_report(site(alarms=pts), PARAMS).alarms
    assert [(a.state, a.param_name, a.value) for a in lines] == [("触发", "氨氮", 2.9), ("解除", "氨氮", 1.5),
                                                                 ("触发", "node", None)]
    assert lines[0].time_ms == START + 8 * H and lines[0].limit == 2.0 and lines[0].message == "【超标预警】氨氮"


# --------------------------------------------------------------------------- signatures

def entry(kind, reason, payload, received_ms, site_id="s1"):
    return {"received_ms": received_ms, "topic": f"edge/v1/{site_id}/n1/{kind}", "site": site_id, "node": "n1",
            "reason": reason, "payload": payload}


def test_refusal_rows_carry_the_sample_times_of_their_records():
    one = refusal_row(entry("data", "sig: missing", json.dumps({"ts": START + 5, "seq": 1, "readings": {}}), END))
    assert one["kind"] == "data" and one["times"] == [START + 5]
    batch = refusal_row(entry("data", "sig: does not match", json.dumps({"batch": [{"ts": 1}, {"ts": 2}]}), END))
    assert batch["times"] == [1, 2]
    junk = refusal_row(entry("data", "sig: missing", "not json", END + 1))
    assert junk["times"] == [END + 1]
    assert refusal_row(entry("status", "sig: missing", "{}", END))["times"] == []


def test_signature_counts_by_sample_time_in_the_day():
    def data_entry(reason, *ts, received=START + H, site_id="s1"):
        payload = json.dumps({"batch": [{"ts": t} for t in ts]} if len(ts) > 1 else {"ts": ts[0]})
        return refusal_row(entry("data", reason, payload, received, site_id))

    refusals = [
        data_entry("sig: missing; s1/n1 must sign its payloads", START + 10),
        data_entry("sig: does not match the key of s1/n1", START + 20, START + 80, END - 1),  # a batch of 3
        data_entry("sig: signed with the key of s1/n2, not of s1/n1", START - 1, received=START + 5),  # yesterday's
        data_entry("sig: missing", START + 30, site_id="s2"),  # another site
        refusal_row(entry("status", "sig: missing", "{}", START + 40)),
        refusal_row(entry("data", "readings: empty", '{"ts": 1}', START + 50)),
    ]
    times = {"n1": [START + i * 60_000 for i in range(100)]}
    s = build_report(site(refusals=refusals, record_times=times, keyed_nodes=["n1"]), PARAMS).signatures
    assert (s.refused_missing, s.refused_bad, s.refused, s.refused_payloads) == (1, 3, 4, 2)
    assert (s.refused_other, s.quarantined_other, s.accepted, s.required) == (1, 1, 100, True)
    assert "n1" in s.basis

    assert build_report(site(require_all=True), PARAMS).signatures.required
    open_site = build_report(site(), PARAMS).signatures
    assert not open_site.required and "未经签名校验" in open_site.basis


# --------------------------------------------------------------------------- the time zone's day

def test_a_shanghai_day_is_local_midnight_to_midnight():
    assert START == 1_764_000_000_000  # 2025-11-24T16:00:00Z
    assert END - START == 86_400_000
    last = START + 86_400_000 - 60_000  # 23:59 Shanghai
    assert local_day(last, SH) == DAY and local_day(END, SH) == date(2025, 11, 26)
    utc_start, _ = day_bounds(DAY, zone("UTC"))
    assert utc_start - START == 8 * H


def test_a_record_at_2359_counts_for_the_day_and_one_at_0000_for_the_next():
    times = {"n1": [START + i * 60_000 for i in range(1440)] + [END, END + 60_000]}
    r = build_report(site(record_times=times), PARAMS)
    (cov,) = r.coverage
    assert (cov.received, cov.expected, cov.gaps) == (1440, 1440, ())
    nxt = build_report(site(day=date(2025, 11, 26), start_ms=END, end_ms=END + 86_400_000, record_times=times),
                       PARAMS)
    assert nxt.coverage[0].received == 2


def test_unknown_time_zone_and_bad_dates_are_refused():
    from edgemon.report import ReportError
    from edgemon.report.days import parse_day
    with pytest.raises(ReportError, match="unknown time zone"):
        zone("Mars/Olympus")
    for bad in ("2025-13-01", "25-11-01", "2025/11/01", ""):
        with pytest.raises(ReportError, match="bad date"):
            parse_day(bad)
    assert parse_day("2025-11-25") == DAY
