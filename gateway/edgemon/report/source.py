"""What a report reads: InfluxDB over the v1 /query API (InfluxQL) and the gateway's quarantine file.
Each function returns plain data (dicts of a point's tags and fields, `time` in ms) for content.py."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .. import quarantine
from ..influx import InfluxError, InfluxV1Writer
from . import ReportError
from .content import refusal_row

SERIES_LOOKBACK_MS = 7 * 86_400_000  # a parameter seen in the week before is listed even when silent today
RECORD_BUCKET = "1s"  # record times are counted as the seconds with a reading (poll periods are >= 1 s)


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def rows(series: list[dict]) -> list[dict]:
    """Series from InfluxV1Writer.query as one dict per row: the series' tags, then the columns."""
    out = []
    for s in series:
        for values in s["values"]:
            row = dict(s["tags"])
            row.update(zip(s["columns"], values))
            out.append(row)
    return out


class InfluxSource:
    def __init__(self, url: str, database: str, username: str | None = None, password: str | None = None,
                 timeout_s: float = 30.0):
        self.url, self.database = url, database
        self._client = InfluxV1Writer(url, database, username, password, timeout_s=timeout_s)

    def close(self) -> None:
        self._client.close()

    def _query(self, q: str) -> list[dict]:
        try:
            return rows(self._client.query(q))
        except InfluxError as exc:
            raise ReportError(f"cannot read InfluxDB at {self.url} (database {self.database!r}): {exc}") from None

    def _where(self, site: str, start_ms: int, end_ms: int) -> str:
        return f'"site" = {_literal(site)} AND time >= {int(start_ms)}ms AND time < {int(end_ms)}ms'

    def aggregates(self, site: str, period: str, start_ms: int, end_ms: int) -> list[dict]:
        """`aggregate` points of one period ("hour", "day") starting in [start, end)."""
        return self._query(f'SELECT * FROM "aggregate" WHERE {self._where(site, start_ms, end_ms)} '
                           f'AND "period" = {_literal(period)}')

    def series(self, site: str, start_ms: int, end_ms: int) -> list[tuple[str, str]]:
        """(param, node) pairs with readings in the week before end_ms."""
        found = self._query(f'SELECT last("flag") FROM "reading" WHERE '
                            f'{self._where(site, end_ms - SERIES_LOOKBACK_MS, end_ms)} GROUP BY "node", "param"')
        return sorted({(r["param"], r["node"]) for r in found if r.get("param") and r.get("node")})

    def record_times(self, site: str, start_ms: int, end_ms: int) -> dict[str, list[int]]:
        """node -> the sample times of its records in [start, end), to the second."""
        found = self._query(f'SELECT count("flag") FROM "reading" WHERE {self._where(site, start_ms, end_ms)} '
                            f'GROUP BY time({RECORD_BUCKET}), "node" fill(none)')
        times: dict[str, list[int]] = {}
        for r in found:
            if r.get("count"):
                times.setdefault(r["node"], []).append(int(r["time"]))
        return times

    def alarms(self, site: str, start_ms: int, end_ms: int) -> list[dict]:
        return self._query(f'SELECT * FROM "alarm" WHERE {self._where(site, start_ms, end_ms)}')


def refusals(path: str | Path, sites: Iterable[str]) -> list[dict]:
    """The compact quarantine rows (content.refusal_row) of these sites; a missing file has none."""
    wanted = set(sites)
    try:
        return [refusal_row(e) for e in quarantine.read(path) if e.get("site") in wanted]
    except OSError as exc:
        raise ReportError(f"cannot read the quarantine file {path}: {exc}") from None
