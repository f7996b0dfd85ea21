"""The inspectors' Grafana dashboards as code (grafana-foundation-sdk builders, raw InfluxQL targets),
built from the gateway's own config and data files (setup.py) so that no limit, name or unit is
typed twice. One module per dashboard:

    overview.py       总览: every site's latest values against its limits, data age, online, flags, open alarms
    site_detail.py    站点详情: time series with limit lines, flags, alarm annotations, hourly/daily means
    alarms.py         告警: open alarms, history, counts per site and rule
    completeness.py   数据完整性: received/expected per day, seq gaps, quarantine, late records
    fleet.py          设备健康: firmware, uptime (last boot), heap, signal, queue, clock offset

    write_dashboards(load_setup("gateway.toml"), "dashboards")   # -> the JSON files written
    publish.py: the same to a running Grafana over its HTTP API (edgemon dashboards publish)
"""

from __future__ import annotations

import json
from pathlib import Path

from . import alarms, completeness, fleet, overview, site_detail
from .common import TITLES, UIDS
from .setup import Setup, demo_setup, load_setup

BUILDERS = {"overview": overview.build, "site": site_detail.build, "alarms": alarms.build,
            "completeness": completeness.build, "fleet": fleet.build}
FILES = {key: f"{UIDS[key]}.json" for key in BUILDERS}


def to_dict(builder) -> dict:
    """A built dashboard as plain JSON data (the SDK's own encoder)."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    return json.loads(json.dumps(builder.build(), cls=JSONEncoder, ensure_ascii=False))


def build_all(setup: Setup) -> dict[str, dict]:
    """key (overview, site, alarms, completeness, fleet) -> the dashboard's JSON model."""
    return {key: to_dict(build(setup)) for key, build in BUILDERS.items()}


def dump(model: dict) -> str:
    return json.dumps(model, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def write_dashboards(setup: Setup, out_dir: str | Path) -> list[Path]:
    """Every dashboard checked against Grafana's model (model_check.py), then written."""
    from .model_check import problems
    models = build_all(setup)
    for key, model in models.items():
        found = problems(model)
        if found:
            raise ValueError(f"{FILES[key]}: not a valid Grafana dashboard: " + "; ".join(found))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for key, model in models.items():
        path = out / FILES[key]
        path.write_text(dump(model), encoding="utf-8")
        paths.append(path)
    return paths


__all__ = ["BUILDERS", "FILES", "TITLES", "UIDS", "Setup", "build_all", "demo_setup", "dump", "load_setup",
           "write_dashboards"]
