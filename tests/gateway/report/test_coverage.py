"""Completeness per node: records received / expected (86400 / poll_s) and the gaps (> 3 poll periods)."""

from __future__ import annotations

from datetime import date

from edgemon.report.coverage import Gap, expected_records, find_gaps, node_coverage
from edgemon.report.days import day_bounds, zone

START, END = day_bounds(date(2025, 11, 25), zone("Asia/Shanghai"))
MIN = 60_000


def every_minute(skip=()):
    return [START + i * MIN for i in range(1440) if i not in skip]


def test_expected_is_the_day_over_the_poll_period():
    assert expected_records(START, END, 60) == 1440
    assert expected_records(START, END, 10) == 8640
    assert expected_records(START, END, 7) == 12343


def test_three_missing_records_make_a_gap_two_do_not():
    times = every_minute(skip={100, 101} | {600, 601, 602})
    gaps = find_gaps(times, START, END, 60)
    assert gaps == [Gap(START + 599 * MIN, START + 603 * MIN)]
    assert gaps[0].seconds == 240


def test_the_days_edges_bound_the_first_and_last_gap():
    times = [t for t in every_minute() if START + 2 * 3_600_000 <= t < START + 23 * 3_600_000]
    gaps = find_gaps(times, START, END, 60)
    assert gaps == [Gap(START, START + 2 * 3_600_000), Gap(START + 23 * 3_600_000 - MIN, END)]
    # a first record within 3 periods of midnight is no gap
    assert find_gaps(every_minute(skip={0, 1}), START, END, 60) == []


def test_a_silent_node_has_one_gap_all_day_and_records_outside_the_day_do_not_count():
    cov = node_coverage("n2", [START - MIN, END], START, END, 60)
    assert (cov.received, cov.expected, cov.gaps) == (0, 1440, (Gap(START, END),))
    assert cov.percent == 0.0


def test_received_and_percent_and_the_current_day_ends_its_gaps_now():
    times = [t for t in every_minute(skip=set(range(300, 330))) if t < START + 900 * MIN]  # until 15:00
    now = START + 900 * MIN + 30 * MIN
    cov = node_coverage("n1", times, START, END, 60, until_ms=now)
    assert cov.received == 870 and cov.expected == 1440 and round(cov.percent, 1) == 60.4
    assert cov.gaps == (Gap(START + 299 * MIN, START + 330 * MIN), Gap(START + 899 * MIN, now))
    # the same records on a day that is over: the last gap runs to midnight
    assert node_coverage("n1", times, START, END, 60).gaps[-1] == Gap(START + 899 * MIN, END)


def test_duplicate_times_count_once():
    cov = node_coverage("n1", every_minute() + every_minute()[:10], START, END, 60)
    assert cov.received == 1440 and cov.gaps == ()
