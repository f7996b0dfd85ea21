"""Helpers shared by the parts of `make bench`: percentiles, the workload scale, InfluxDB counts."""

from __future__ import annotations

import os

import requests


def pct(values: list[float], p: float) -> float:
    """The p-th percentile by nearest rank (no interpolation: every figure is a measured sample)."""
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


def scale() -> float:
    """EDGEMON_BENCH_SCALE (default 1.0) shrinks the reference workloads for a quick run."""
    return float(os.environ.get("EDGEMON_BENCH_SCALE", "1.0"))


def influx_points(url: str, db: str, q: str) -> list[list]:
    """Rows of an InfluxQL query, epoch ms, all series together."""
    r = requests.get(url + "/query", params={"db": db, "q": q, "epoch": "ms"}, timeout=60)
    r.raise_for_status()
    out = []
    for res in r.json()["results"]:
        for s in res.get("series", []) or []:
            out.extend(s["values"])
    return out


def reading_count(url: str, db: str, where: str = "") -> int:
    """Readings stored in InfluxDB's `reading` measurement (optionally with a WHERE clause)."""
    rows = influx_points(url, db, f'SELECT count("value") FROM "reading" {where}')
    return int(rows[0][1]) if rows else 0
