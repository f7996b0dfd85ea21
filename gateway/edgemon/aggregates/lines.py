"""The `aggregate` measurement (docs/ARCHITECTURE.md section 4): one point per site, node, parameter
and period, at the period's start; a recomputed period is the same point again, with new fields."""

from __future__ import annotations

from ..lineproto import line
from .engine import Point

MEASUREMENT = "aggregate"


def point_line(p: Point) -> str:
    v = p.value
    fields: dict[str, object] = {}
    for name, x in (("avg", v.avg), ("min", v.lo), ("max", v.hi), ("cou", v.cou)):
        if x is not None:
            fields[name] = x
    fields.update(flag=v.flag, valid=v.valid, n=v.n, count=v.count, weighted=v.weighted, parts=v.parts)
    return line(MEASUREMENT, {"site": p.site, "node": p.node, "param": p.param, "period": p.period}, fields,
                p.start)
