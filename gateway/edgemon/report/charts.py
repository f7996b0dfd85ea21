"""One parameter's day, hour by hour: the hourly means, the limit lines, flagged and invalid hours shaded."""

from __future__ import annotations

import math
from zoneinfo import ZoneInfo

from .content import NOT_JUDGED, ParamRow, number, unit_text
from .days import local_text

LINE, LIMIT, MEAN = "#1f4e79", "#c0392b", "#2e86c1"
FLAGGED, INVALID = "#f5b041", "#b3b6b7"
LEGEND = ("红色虚线：限值；蓝色点线：日均值；橙色底：标记异常（标记≠N）的小时；"
          "灰色底：无效或缺测的小时")
VERDICT_COLOURS = {"达标": "#1e8449", "超标": "#c0392b", "无效": "#7f8c8d"}
# WenQuanYi Micro Hei maps these to empty glyphs: drawn as their spelled-out forms.
GLYPH_SUBST = str.maketrans({"℃": "°C", "℉": "°F"})


def shown(text: str) -> str:
    """Text as drawn with the report's font."""
    return text.translate(GLYPH_SUBST)


def title(row: ParamRow) -> str:
    verdict = "" if row.verdict == NOT_JUDGED else f" {row.verdict}"
    return f"{row.info.name} · {row.node}  日均{number(row.value)}{'' if not row.info.unit else ' ' + row.info.unit}{verdict}"


def draw_hours(ax, row: ParamRow, tz: ZoneInfo, size: float = 7) -> None:
    n = len(row.hours)
    for i, cell in enumerate(row.hours):
        if cell.state == "flagged":
            ax.axvspan(i, i + 1, color=FLAGGED, alpha=0.45, lw=0)
        elif cell.state in ("invalid", "missing"):
            ax.axvspan(i, i + 1, color=INVALID, alpha=0.35, lw=0)
    xs = [i + 0.5 for i in range(n)]
    ys = [math.nan if c.avg is None else float(c.avg) for c in row.hours]
    if any(not math.isnan(y) for y in ys):
        ax.plot(xs, ys, "-o", color=LINE, lw=1, ms=2.2)
    else:
        ax.text(0.5, 0.5, "无小时数据", transform=ax.transAxes, ha="center", va="center", fontsize=size + 1,
                color="#7f8c8d")
    for y in (row.hi, row.lo):
        if y is not None:
            ax.axhline(y, color=LIMIT, ls="--", lw=1)
    if row.value is not None:
        ax.axhline(float(row.value), color=MEAN, ls=":", lw=0.9)
    ax.set_xlim(0, n)
    ticks = list(range(0, n + 1, 3))
    ax.set_xticks(ticks)
    ax.set_xticklabels([local_text(row.hours[0].start_ms + t * 3_600_000, tz, "%H") if row.hours and t < n
                        else str(t) for t in ticks], fontsize=size)
    ax.tick_params(axis="y", labelsize=size)
    ax.set_ylabel(shown(unit_text(row.info.unit)), fontsize=size)
    ax.set_title(shown(title(row)), fontsize=size + 1, loc="left",
                 color=VERDICT_COLOURS.get(row.verdict, "black"))
    ax.grid(True, axis="y", lw=0.3, alpha=0.6)
