"""The aggregator: records in, minute/hour/day values out (stats.py does the maths, store.py keeps
the state). A period is computed once it is over (its end + `close_after_s`), and computed again when
a late or replayed record lands in it, and then so are its hour and its day: the new values replace
the old ones (same tags and time in InfluxDB; the forwarder sends the corrected period again).

Each record time of a node is counted once (a replay of a record already counted changes nothing).
A sample's share of time (for volumes and loads) is its site's poll period. A record older than
`retention_days` is not counted: the sums it would join are forgotten by then (logged)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ..contract import Record
from . import periods
from .periods import DEFAULT_TZ, end_of, parent, start_of
from .stats import DAY, GAS, HOUR, MINUTE, WATER, Value, minute_value, rollup
from .store import AggregateStore

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
CONCENTRATION_UNITS = ("mg/L",)


@dataclass(frozen=True)
class SiteSettings:
    medium: str = WATER  # "water" (ST 32) or "gas" (ST 31)
    flow: str | None = "w00000"  # the site's flow (L/s) that weights its concentrations; None: none
    poll_s: float = 10.0


@dataclass(frozen=True)
class Point:
    site: str
    node: str
    param: str
    period: str
    start: int  # ms, the period's start (HJ 212 DataTime)
    value: Value


class Aggregator:
    def __init__(self, store: AggregateStore, sites: dict[str, SiteSettings] | None = None, *,
                 units: dict[str, str] | None = None, tz: str = DEFAULT_TZ, close_after_s: float = 60.0,
                 retention_days: float = 40.0, default_site: SiteSettings = SiteSettings()):
        periods.zone(tz)  # an unknown zone fails here, not at the first record
        self.store, self.sites, self.units, self.tz = store, dict(sites or {}), dict(units or {}), tz
        self.close_ms = int(close_after_s * 1000)
        self.retention_ms = int(retention_days * DAY_MS)
        self.default_site = default_site
        self.too_old = 0

    def site(self, site: str) -> SiteSettings:
        return self.sites.get(site, self.default_site)

    def kind(self, site: str, param: str) -> str:
        s = self.site(site)
        if s.medium == GAS:
            return "plain"
        if param == s.flow:
            return "flow"
        return "conc" if self.units.get(param) in CONCENTRATION_UNITS else "plain"

    def add(self, site: str, node: str, records: Iterable[Record], now_ms: int) -> int:
        """Count the records' samples; returns how many records were new."""
        s = self.site(site)
        new = 0
        with self.store.transaction() as st:
            for rec in records:
                if rec.ts < now_ms - self.retention_ms:
                    self.too_old += 1
                    log.warning("aggregates: %s/%s record at %d is older than the retention: not counted",
                                site, node, rec.ts)
                    continue
                if not st.mark_seen(site, node, rec.ts):
                    continue
                new += 1
                minute = start_of(MINUTE, rec.ts, self.tz)
                fr = rec.readings.get(s.flow) if s.flow else None
                flow = fr.value if fr is not None and fr.flag == "N" and fr.value is not None else None
                for param, reading in rec.readings.items():
                    acc = st.acc(site, node, param, MINUTE, minute)
                    kind = self.kind(site, param)
                    acc.add(reading.value, reading.flag, flow if kind != "plain" else None, s.poll_s)
                    st.put_acc(site, node, param, MINUTE, minute, acc)
                st.mark("dirty", (site, node, MINUTE, minute))
        return new

    def compute(self, now_ms: int) -> int:
        """Compute every changed period that is over; returns how many. They wait in the outbox
        (pending()) until handed_on()."""
        done = 0
        with self.store.transaction() as st:
            for period in (MINUTE, HOUR, DAY):
                for key in st.marked("dirty"):
                    site, node, p, start = key
                    if p != period or end_of(p, start, self.tz) + self.close_ms > now_ms:
                        continue
                    self._compute(st, site, node, p, start)
                    st.unmark("dirty", key)
                    st.mark("outbox", key)
                    up = parent(p)
                    if up:
                        st.mark("dirty", (site, node, up, start_of(up, start, self.tz)))
                    done += 1
            if done:
                st.forget_before(now_ms - self.retention_ms - DAY_MS)
        return done

    def _compute(self, st: AggregateStore, site: str, node: str, period: str, start: int) -> None:
        medium = self.site(site).medium
        if period == MINUTE:
            for param in st.params(site, node, MINUTE, start, start + 1):
                acc = st.acc(site, node, param, MINUTE, start)
                st.put(site, node, param, MINUTE, start, acc, minute_value(acc, medium, self.kind(site, param)))
            return
        child = MINUTE if period == HOUR else HOUR
        end = end_of(period, start, self.tz)
        for param in st.params(site, node, child, start, end):
            parts = st.parts(site, node, param, child, start, end)
            value, acc = rollup(parts, period, medium, self.kind(site, param))
            st.put(site, node, param, period, start, acc, value)

    def pending(self) -> list[Point]:
        """The computed periods not handed on yet, oldest first: one Point per parameter."""
        out = []
        with self.store.transaction() as st:
            for site, node, period, start in st.marked("outbox"):
                for param in st.params(site, node, period, start, start + 1):
                    value = st.value(site, node, param, period, start)
                    if value is not None:
                        out.append(Point(site, node, param, period, start, value))
        return out

    def handed_on(self, points: Iterable[Point]) -> None:
        with self.store.transaction() as st:
            for key in {(p.site, p.node, p.period, p.start) for p in points}:
                st.unmark("outbox", key)

    def value(self, site: str, node: str, param: str, period: str, start: int) -> Value | None:
        with self.store.transaction() as st:
            return st.value(site, node, param, period, start)
