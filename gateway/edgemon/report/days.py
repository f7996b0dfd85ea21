"""Calendar days in a time zone: a report's day is local midnight to local midnight (pure)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import ReportError

DEFAULT_TZ = "Asia/Shanghai"
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(f"unknown time zone {name!r}; write an IANA name, e.g. --tz {DEFAULT_TZ}") from None


def parse_day(text: str | date) -> date:
    """A YYYY-MM-DD date (a date passes through)."""
    if isinstance(text, date):
        return text
    if not DATE_RE.fullmatch(text or ""):
        raise ReportError(f"bad date {text!r}: expected YYYY-MM-DD, e.g. 2026-12-07")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ReportError(f"bad date {text!r}: {exc}") from None


def day_bounds(day: date, tz: ZoneInfo) -> tuple[int, int]:
    """[start, end) of the day in ms since the Unix epoch: local midnight to the next local midnight."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def local_day(ms: int, tz: ZoneInfo) -> date:
    """The calendar day (in tz) an instant belongs to."""
    return datetime.fromtimestamp(ms / 1000, tz).date()


def local_text(ms: int, tz: ZoneInfo, fmt: str = "%H:%M:%S") -> str:
    return datetime.fromtimestamp(ms / 1000, tz).strftime(fmt)


def hour_starts(start_ms: int, end_ms: int) -> list[int]:
    """The starts of the day's hours (24, or 23/25 on a daylight-saving change)."""
    return list(range(start_ms, end_ms, 3_600_000))
