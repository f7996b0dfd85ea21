"""Minute, hour and day values of one parameter (pure): the sums a period keeps, and the period's
value, flag and validity under HJ 212-2017 Appendix D and the notes to its examples C.16-C.18.

A period keeps sums, not samples (`Acc`), so a late or replayed sample is added exactly to a period
already computed, and an hour is the sum of its minutes, a day the sum of its hours:

- every value counted (`count`), by flag (`flags`: the non-N ones);
- the N values only: their number, sum, min and max (only N values count into a period's value);
- with the site's flow measured at the same sample: sum(C x Q x dt) and sum(Q x dt), with Q in L/s
  and dt the sample's share of time in s. The flow-weighted mean is their ratio; the discharged
  volume is sum(Q x dt) x 1e-3 m3 and a concentration's load sum(C x Q x dt) x 1e-6 kg
  (C mg/L x m3 x 1e-3, Appendix D).

Flags and validity (`judge`):
- waste water: one abnormal value makes the period abnormal: its flag is the most frequent
  abnormal flag in it; the period is valid with at least one N value;
- flue gas: a minute is normal (N) with >= 75 % N values; an hour is valid with >= 45 valid
  minutes, a day with >= 20 valid hours; the mean of an hour (day) is over its valid minutes
  (hours) only. An invalid period carries its most frequent abnormal flag, or B (no data from the
  analyzer) when it has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WATER, GAS = "water", "gas"
MINUTE, HOUR, DAY = "minute", "hour", "day"
PERIODS = (MINUTE, HOUR, DAY)
GAS_MINUTE_NORMAL_SHARE = 0.75
GAS_VALID_PARTS = {HOUR: 45, DAY: 20}  # valid minutes per hour, valid hours per day
NO_DATA_FLAG = "B"


@dataclass
class Acc:
    """The sums of one parameter over a period (mergeable)."""

    count: int = 0
    flags: dict[str, int] = field(default_factory=dict)
    n: int = 0
    total: float = 0.0
    lo: float | None = None
    hi: float | None = None
    cq: float = 0.0  # sum of C x Q x dt over N samples with an N flow: mg
    q: float = 0.0  # sum of Q x dt over those samples (for the flow itself: its N samples): L

    def add(self, value: float | None, flag: str, flow: float | None = None, dt_s: float = 0.0) -> None:
        """One sample; flow: the site's N flow (L/s) at the same time, or None."""
        if value is None and flag == "N":
            return  # no value: nothing to count
        self.count += 1
        if flag != "N" or value is None:
            self.flags[flag] = self.flags.get(flag, 0) + 1
            return
        self.n += 1
        self.total += value
        self.lo = value if self.lo is None else min(self.lo, value)
        self.hi = value if self.hi is None else max(self.hi, value)
        if flow is not None and flow >= 0 and dt_s > 0:
            self.cq += value * flow * dt_s
            self.q += flow * dt_s

    def merge(self, other: Acc) -> None:
        self.count += other.count
        for flag, k in other.flags.items():
            self.flags[flag] = self.flags.get(flag, 0) + k
        self.n += other.n
        self.total += other.total
        if other.lo is not None:
            self.lo = other.lo if self.lo is None else min(self.lo, other.lo)
            self.hi = other.hi if self.hi is None else max(self.hi, other.hi)
        self.cq += other.cq
        self.q += other.q

    def to_json(self) -> list:
        return [self.count, self.flags, self.n, self.total, self.lo, self.hi, self.cq, self.q]

    @classmethod
    def from_json(cls, v: list) -> Acc:
        return cls(v[0], dict(v[1]), v[2], v[3], v[4], v[5], v[6], v[7])


@dataclass(frozen=True)
class Value:
    """A period's value as written to InfluxDB and sent to the platform."""

    avg: float | None
    lo: float | None
    hi: float | None
    cou: float | None  # m3 for the flow, kg for a concentration; None where flow is not measured
    flag: str
    valid: bool
    n: int  # N values counted
    count: int  # all values
    weighted: bool  # avg is flow-weighted
    parts: int = 0  # valid minutes (hour) or hours (day) counted; the number of samples for a minute


def dominant_flag(flags: dict[str, int]) -> str | None:
    """The most frequent abnormal flag (ties: alphabetical, so the result does not depend on order)."""
    if not flags:
        return None
    return min(flags, key=lambda f: (-flags[f], f))


def _value(acc: Acc, kind: str, flag: str, valid: bool, parts: int) -> Value:
    avg = lo = hi = cou = None
    weighted = False
    if acc.n:
        lo, hi = acc.lo, acc.hi
        if kind == "conc" and acc.q > 0:
            avg, weighted = acc.cq / acc.q, True
        else:
            avg = acc.total / acc.n
        if kind == "conc" and acc.q > 0:
            cou = acc.cq * 1e-6  # mg -> kg
        elif kind == "flow":
            cou = acc.q * 1e-3  # L -> m3
    return Value(avg, lo, hi, cou, flag, valid, acc.n, acc.count, weighted, parts)


def minute_value(acc: Acc, medium: str, kind: str = "plain") -> Value:
    """kind: "conc" (a concentration: flow-weighted, load), "flow" (the site's flow: volume), "plain"."""
    abnormal = dominant_flag(acc.flags)
    if medium == GAS:
        normal = acc.count > 0 and acc.n >= GAS_MINUTE_NORMAL_SHARE * acc.count
        flag = "N" if normal else (abnormal or NO_DATA_FLAG)
        return _value(acc, kind, flag, normal and acc.n > 0, acc.count)
    flag = abnormal or ("N" if acc.n else NO_DATA_FLAG)
    return _value(acc, kind, flag, acc.n > 0, acc.count)


def rollup(parts: list[tuple[Acc, Value]], period: str, medium: str, kind: str = "plain") -> tuple[Value, Acc]:
    """An hour from its minutes, a day from its hours: (sums, value) of each part present. Returns the
    period's value and the sums it keeps (for flue gas: those of its valid parts, with every part's
    counts and flags)."""
    total = Acc()
    if medium == GAS:
        valid_parts = [acc for acc, v in parts if v.valid]
        for acc in valid_parts:
            total.merge(acc)
        everything = Acc()
        for acc, _ in parts:
            everything.merge(acc)
        total.count, total.flags = everything.count, everything.flags
        valid = len(valid_parts) >= GAS_VALID_PARTS[period]
        flag = "N" if valid else (dominant_flag(everything.flags) or NO_DATA_FLAG)
        return _value(total, kind, flag, valid, len(valid_parts)), total
    for acc, _ in parts:
        total.merge(acc)
    flag = dominant_flag(total.flags) or ("N" if total.n else NO_DATA_FLAG)
    return _value(total, kind, flag, total.n > 0, sum(1 for _, v in parts if v.valid)), total
