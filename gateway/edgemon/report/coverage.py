"""Completeness of a node's day: records received against those expected at its poll period, and
the gaps, spans longer than 3 poll periods with no record (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

GAP_PERIODS = 3  # a span with no record longer than this many poll periods is a gap


@dataclass(frozen=True)
class Gap:
    start_ms: int  # the last record before it (or the day's start)
    end_ms: int  # the first record after it (or the day's end, or now on the current day)

    @property
    def seconds(self) -> float:
        return (self.end_ms - self.start_ms) / 1000


@dataclass(frozen=True)
class NodeCoverage:
    node: str
    poll_s: float
    received: int
    expected: int
    gaps: tuple[Gap, ...]
    configured: bool = True  # listed under [sites.<site>] nodes in gateway.toml

    @property
    def percent(self) -> float:
        return 100.0 * self.received / self.expected if self.expected else 0.0


def expected_records(start_ms: int, end_ms: int, poll_s: float) -> int:
    """Records a node polling every poll_s sends in [start, end): 86400 / poll_s for a whole day."""
    return int(round((end_ms - start_ms) / 1000 / poll_s))


def find_gaps(times_ms: Iterable[int], start_ms: int, end_ms: int, poll_s: float,
              periods: int = GAP_PERIODS) -> list[Gap]:
    """Spans in [start, end) longer than `periods` poll periods without a record. The day's start
    and end bound the first and last span: a node silent since midnight has a gap from 00:00."""
    limit = periods * poll_s * 1000
    gaps = []
    prev = start_ms
    for t in sorted(set(t for t in times_ms if start_ms <= t < end_ms)):
        if t - prev > limit:
            gaps.append(Gap(prev, t))
        prev = t
    if end_ms - prev > limit:
        gaps.append(Gap(prev, end_ms))
    return gaps


def node_coverage(node: str, times_ms: Iterable[int], start_ms: int, end_ms: int, poll_s: float,
                  until_ms: int | None = None, configured: bool = True) -> NodeCoverage:
    """until_ms: on the current day, gaps end at this instant (now), not at midnight; `expected`
    stays the whole day's."""
    times = sorted(set(t for t in times_ms if start_ms <= t < end_ms))
    horizon = end_ms if until_ms is None else max(start_ms, min(end_ms, until_ms))
    return NodeCoverage(node=node, poll_s=poll_s, received=len(times),
                        expected=expected_records(start_ms, end_ms, poll_s),
                        gaps=tuple(find_gaps(times, start_ms, horizon, poll_s)), configured=configured)
