"""The aggregates' maths against values computed by hand (HJ 212-2017 Appendix D; flag rules of C.16-C.18)."""

from __future__ import annotations

import pytest

from edgemon.aggregates.stats import DAY, GAS, HOUR, WATER, Acc, minute_value, rollup


def acc_of(samples, dt_s=20.0):
    """samples: (value, flag, flow L/s or None)"""
    acc = Acc()
    for value, flag, flow in samples:
        acc.add(value, flag, flow, dt_s)
    return acc


def test_flow_weighted_mean_volume_and_load_by_hand():
    # C 10, 20, 30 mg/L at Q 100, 100, 200 L/s, 20 s each:
    # weighted mean (10*100 + 20*100 + 30*200) / 400 = 22.5 (arithmetic would be 20)
    # volume 400 L/s x 20 s = 8000 L = 8 m3; load 22.5 mg/L x 8 m3 x 1e-3 = 0.18 kg
    conc = minute_value(acc_of([(10, "N", 100), (20, "N", 100), (30, "N", 200)]), WATER, "conc")
    assert conc.avg == pytest.approx(22.5) and conc.weighted
    assert conc.cou == pytest.approx(0.18)
    assert (conc.lo, conc.hi, conc.flag, conc.valid, conc.n, conc.count) == (10, 30, "N", True, 3, 3)
    flow = minute_value(acc_of([(100, "N", 100), (100, "N", 100), (200, "N", 200)]), WATER, "flow")
    assert flow.cou == pytest.approx(8.0)
    assert flow.avg == pytest.approx(400 / 3) and not flow.weighted


def test_without_flow_the_mean_is_arithmetic_and_there_is_no_load():
    v = minute_value(acc_of([(10, "N", None), (20, "N", None), (30, "N", None)]), WATER, "conc")
    assert v.avg == pytest.approx(20.0) and not v.weighted and v.cou is None


def test_a_sample_whose_flow_is_unknown_counts_into_min_max_but_not_the_weights():
    v = minute_value(acc_of([(10, "N", 100), (50, "N", None)]), WATER, "conc")
    assert v.avg == pytest.approx(10.0) and v.weighted  # only the sample with a flow is weighted
    assert (v.lo, v.hi, v.n) == (10, 50, 2)


def test_water_one_abnormal_value_makes_the_period_abnormal_and_only_n_values_count():
    v = minute_value(acc_of([(10, "N", None), (99, "M", None), (20, "N", None)]), WATER)
    assert v.flag == "M" and v.valid  # the mean of the N values still exists
    assert v.avg == pytest.approx(15.0) and v.hi == 20 and v.count == 3 and v.n == 2
    minutes = [(acc_of([(10, "N", None)]), None), (acc_of([(12, "N", None), (0, "D", None)]), None),
               (acc_of([(14, "N", None)]), None)]
    minutes = [(a, minute_value(a, WATER)) for a, _ in minutes]
    hour, _ = rollup(minutes, HOUR, WATER)
    assert hour.flag == "D" and hour.avg == pytest.approx(12.0) and hour.count == 4


def test_most_frequent_abnormal_flag_wins_ties_alphabetically():
    assert minute_value(acc_of([(1, "C", None), (1, "C", None), (1, "D", None)]), WATER).flag == "C"
    assert minute_value(acc_of([(1, "D", None), (1, "C", None)]), WATER).flag == "C"


def test_water_period_without_n_values_is_not_valid():
    v = minute_value(acc_of([(5, "D", None)]), WATER)
    assert (v.avg, v.valid, v.flag) == (None, False, "D")


def test_gas_minute_needs_75_percent_normal_values():
    ok = minute_value(acc_of([(1, "N", None), (2, "N", None), (3, "N", None), (50, "C", None)]), GAS)
    assert ok.flag == "N" and ok.valid and ok.avg == pytest.approx(2.0)
    bad = minute_value(acc_of([(1, "N", None), (2, "N", None), (50, "C", None), (60, "C", None)]), GAS)
    assert bad.flag == "C" and not bad.valid


def gas_minutes(valid: int, invalid: int, value=10.0):
    out = []
    for k in range(valid):
        a = acc_of([(value + k % 3, "N", None)] * 4)
        out.append((a, minute_value(a, GAS)))
    for _ in range(invalid):
        a = acc_of([(500.0, "D", None)] * 4)
        out.append((a, minute_value(a, GAS)))
    return out


def test_gas_hour_needs_45_valid_minutes_and_averages_only_those():
    hour, acc = rollup(gas_minutes(45, 15), HOUR, GAS)
    assert hour.valid and hour.flag == "N" and hour.parts == 45
    assert hour.avg == pytest.approx(11.0)  # 10, 11, 12 repeated; the D minutes' 500 never counts
    assert hour.count == 240 and acc.flags == {"D": 60}
    short, _ = rollup(gas_minutes(44, 16), HOUR, GAS)
    assert not short.valid and short.flag == "D" and short.parts == 44
    missing, _ = rollup(gas_minutes(30, 0), HOUR, GAS)  # half an hour of data, all normal
    assert not missing.valid and missing.flag == "B"


def test_gas_day_needs_20_valid_hours():
    def hours(valid, invalid):
        out = []
        for k in range(valid + invalid):
            v, a = rollup(gas_minutes(50 if k < valid else 10, 10 if k < valid else 50), HOUR, GAS)
            out.append((a, v))
        return out
    day, _ = rollup(hours(20, 4), DAY, GAS)
    assert day.valid and day.flag == "N" and day.parts == 20
    short, _ = rollup(hours(19, 5), DAY, GAS)
    assert not short.valid and short.flag == "D"


def test_hour_from_minutes_is_exactly_the_flow_weighted_mean_of_all_samples():
    a1 = acc_of([(10, "N", 100), (20, "N", 300)])
    a2 = acc_of([(40, "N", 100)])
    hour, _ = rollup([(a1, minute_value(a1, WATER, "conc")), (a2, minute_value(a2, WATER, "conc"))], HOUR, WATER,
                     "conc")
    # (10*100 + 20*300 + 40*100) / 500 = 22.0 ; volume 500 x 20 s = 10 m3 ; load 22 x 10 x 1e-3 = 0.22 kg
    assert hour.avg == pytest.approx(22.0) and hour.cou == pytest.approx(0.22)


def test_sums_survive_json():
    a = acc_of([(10, "N", 100), (3, "C", None)])
    assert Acc.from_json(a.to_json()) == a
