"""What Grafana does to an InfluxQL query before sending it, for the tests that run the dashboards'
queries against a real InfluxDB (Grafana itself cannot run on these machines):

- `$timeFilter` becomes the time range: relative, `time >= now() - 6h` (as the InfluxQL editor shows
  it), or absolute in epoch ms, `time >= 1765000000000ms and time <= 1765021600000ms` (what Grafana's
  backend sends); a panel's `timeFrom` ("30d") replaces the dashboard's range for that panel;
- `$__interval` and `$interval` become the interval Grafana picks: the range divided by the panel's
  max data points, rounded up to a "nice" one (1s, 10s, 1m, ...; here: the same table);
- a variable `$site` / `${site}` / `${site:regex}` inside a regex (`=~ /^$site$/`) becomes the value
  with regex metacharacters escaped, or for several values (or All) `(a|b|c)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NICE_MS = [1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
           1_200_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000]
UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
REGEX_SPECIALS = re.compile(r"[\\^$*+?.()|{}\[\]/]")


def duration_ms(text: str) -> int:
    """"6h", "30d", "now-24h" -> ms."""
    m = re.fullmatch(r"(?:now-)?(\d+)([smhdw])", text)
    if not m:
        raise ValueError(f"not a relative time: {text!r}")
    return int(m.group(1)) * UNITS_MS[m.group(2)]


def interval_text(ms: int) -> str:
    for unit in ("d", "h", "m", "s"):
        if ms % UNITS_MS[unit] == 0:
            return f"{ms // UNITS_MS[unit]}{unit}"
    return f"{ms}ms"


@dataclass
class TimeRange:
    now_ms: int
    span_ms: int
    absolute: bool  # epoch ms (Grafana's backend) or now() - span (relative)

    def for_panel(self, panel: dict) -> TimeRange:
        if panel.get("timeFrom"):
            return TimeRange(self.now_ms, duration_ms(panel["timeFrom"]), self.absolute)
        return self

    def filter(self) -> str:
        if self.absolute:
            return f"time >= {self.now_ms - self.span_ms}ms and time <= {self.now_ms}ms"
        return f"time >= now() - {interval_text(self.span_ms)}"

    def interval(self, max_points: int = 1000) -> str:
        raw = self.span_ms / max_points
        return interval_text(next((n for n in NICE_MS if n >= raw), NICE_MS[-1]))


def regex_value(values: list[str]) -> str:
    escaped = [REGEX_SPECIALS.sub(lambda m: "\\" + m.group(0), v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(query: str, variables: dict[str, list[str]], time_range: TimeRange, panel: dict | None = None) -> str:
    tr = time_range.for_panel(panel or {})
    out = query.replace("$timeFilter", tr.filter())
    interval = tr.interval(int((panel or {}).get("maxDataPoints") or 1000))
    out = out.replace("$__interval", interval).replace("$interval", interval)
    for name, values in variables.items():
        value = regex_value(values)
        out = re.sub(r"\$\{" + name + r"(?::regex)?\}", lambda m: value, out)
        out = re.sub(r"\$" + name + r"\b", lambda m: value, out)
    left = re.findall(r"\$\{?[A-Za-z_]\w*", out)
    if left:
        raise AssertionError(f"variables Grafana would not know left in {out!r}: {left}")
    return out


def panels(model: dict):
    """Every panel, rows' nested ones too (not the rows themselves)."""
    for p in model.get("panels") or []:
        if p.get("type") != "row":
            yield p
        for q in p.get("panels") or []:
            yield q
