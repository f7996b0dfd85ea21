"""Period boundaries (pure): a minute and an hour are UTC-aligned (every zone the gateway serves has
a whole-hour offset, and zones with half-hour offsets still get correct minutes); a day is a calendar
day of the configured time zone (Asia/Shanghai by default), so DataTime, the start of the period, is
local midnight. Times are ms since the Unix epoch."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .stats import DAY, HOUR, MINUTE

MINUTE_MS, HOUR_MS = 60_000, 3_600_000
DEFAULT_TZ = "Asia/Shanghai"


@lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as {DEFAULT_TZ})") from None


def _local_day_start(ts_ms: int, tz: str) -> datetime:
    local = datetime.fromtimestamp(ts_ms / 1000, zone(tz))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def start_of(period: str, ts_ms: int, tz: str = DEFAULT_TZ) -> int:
    if period == MINUTE:
        return ts_ms // MINUTE_MS * MINUTE_MS
    if period == HOUR:
        offset = int(datetime.fromtimestamp(ts_ms / 1000, zone(tz)).utcoffset().total_seconds() * 1000)
        return (ts_ms + offset) // HOUR_MS * HOUR_MS - offset
    if period == DAY:
        return int(_local_day_start(ts_ms, tz).timestamp() * 1000)
    raise ValueError(f"unknown period {period!r}")


def end_of(period: str, start_ms: int, tz: str = DEFAULT_TZ) -> int:
    if period == MINUTE:
        return start_ms + MINUTE_MS
    if period == HOUR:
        return start_ms + HOUR_MS
    # aware datetimes add in wall-clock time: the next local midnight, whatever the day's length
    return int((_local_day_start(start_ms, tz) + timedelta(days=1)).timestamp() * 1000)


def parent(period: str) -> str | None:
    return {MINUTE: HOUR, HOUR: DAY}.get(period)


def local_text(ts_ms: int, tz: str = DEFAULT_TZ, fmt: str = "%Y%m%d%H%M%S") -> str:
    """The local time as HJ 212 writes it (DataTime, SystemTime: YYYYMMDDhhmmss)."""
    return datetime.fromtimestamp(ts_ms / 1000, zone(tz)).strftime(fmt)


def parse_local(text: str, tz: str = DEFAULT_TZ) -> int:
    """YYYYMMDDhhmmss in the zone -> ms (ValueError when malformed)."""
    t = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=zone(tz))
    return int(t.astimezone(timezone.utc).timestamp() * 1000)
