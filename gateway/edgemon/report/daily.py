"""Daily reports from a gateway's config: which sites, their poll periods, keys and limits (gateway.toml
and the alarms config it names), the data (source.py), the content (content.py), the files (render.py).

    write_daily_reports("gateway.toml", "2026-12-07", "reports")   # every site -> [pdf, png, pdf, png, ...]
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .. import config as gateway_config
from . import ReportError
from .content import DailyReport, ParamInfo, SiteData, build_report
from .days import DEFAULT_TZ, day_bounds, local_day, parse_day, zone
from .source import InfluxSource, refusals

PARAMS_FILE = Path(__file__).resolve().parent.parent / "data" / "params.toml"


def load_params() -> dict[str, ParamInfo]:
    """code -> Chinese name, short name and unit (data/params.toml), in the file's order."""
    raw = tomllib.loads(PARAMS_FILE.read_text("utf-8"))
    return {code: ParamInfo(v.get("name", code), v.get("short", ""), v.get("unit", "")) for code, v in raw.items()}


@dataclass
class SiteSetup:
    poll_s: float
    nodes: list[str]
    name: str
    limits: dict
    profile: str
    basis: str
    cold_param: str | None
    cold_at_or_below: float | None
    notes: list[str]


def _profile_title(profile_id: str, alarms_path: Path) -> tuple[str, str]:
    from ..alarms.config import PROFILE_DIR, load_profile
    from ..configschema import ConfigError
    for p in (PROFILE_DIR / f"{profile_id}.toml", alarms_path.parent / f"{profile_id}.toml"):
        if p.is_file():
            try:
                prof = load_profile(p)
            except ConfigError:
                break
            return prof.title, prof.basis
    return profile_id, "sample"


def site_setups(loaded) -> dict[str, SiteSetup]:
    """site -> what its report needs from gateway.toml and the alarms config."""
    alarms = None
    if loaded.alarms_config is not None:
        from ..alarms.config import load as load_alarms
        alarms = load_alarms(loaded.alarms_config)
    setups: dict[str, SiteSetup] = {}
    for site, node, poll_s in loaded.gateway.nodes:
        if site not in setups:
            sc = alarms.sites.get(site) if alarms else None
            if sc is None:
                why = ("gateway.toml 未配置 [alarms]" if alarms is None
                       else f"{loaded.alarms_config.name} 中无 [sites.{site}]")
                setups[site] = SiteSetup(poll_s, [], site, {}, "", "sample", None, None,
                                         [f"本站点未配置限值（{why}），各参数只列出日均值"])
            else:
                title, basis = _profile_title(sc.site.profile, loaded.alarms_config)
                setups[site] = SiteSetup(poll_s, [], sc.site.name, dict(sc.site.limits), title, basis,
                                         sc.site.cold_param, sc.site.cold_at_or_below, [])
        setups[site].nodes.append(node)
    return setups


def gather(source: InfluxSource, site: str, setup: SiteSetup, day: date, tz_name: str, now_ms: int,
           keys: dict | None, require_all: bool, refused: list[dict]) -> SiteData:
    start, end = day_bounds(day, zone(tz_name))
    return SiteData(
        site=site, site_name=setup.name, day=day, tz=tz_name, start_ms=start, end_ms=end, now_ms=now_ms,
        poll_s=setup.poll_s, nodes=setup.nodes, limits=setup.limits, profile=setup.profile, basis=setup.basis,
        cold_param=setup.cold_param, cold_at_or_below=setup.cold_at_or_below,
        series=source.series(site, start, end),
        day_points=source.aggregates(site, "day", start, end),
        hour_points=source.aggregates(site, "hour", start, end),
        record_times=source.record_times(site, start, end),
        alarms=source.alarms(site, start, end),
        refusals=refused,
        keyed_nodes=sorted(name.split("/", 1)[1] for name in (keys or {}) if name.split("/", 1)[0] == site),
        require_all=require_all, notes=list(setup.notes))


def report_zone(loaded, tz: str | None) -> str:
    """The report's time zone: gateway.toml's [aggregates] timezone (the calendar the day values are
    computed on) unless tz says otherwise; another zone than the gateway's own aggregates use is refused
    (their day points start at another midnight: every daily value would be missing)."""
    agg = getattr(loaded, "aggregates", None) or {}
    configured = agg.get("timezone") or DEFAULT_TZ
    if tz is None:
        return configured
    zone(tz)
    if tz != configured and agg.get("enabled", True):
        raise ReportError(f"--tz {tz} is not the time zone of the day values: {loaded.path} [aggregates] timezone "
                          f"is {configured}; leave --tz out, or give --tz {configured}")
    return tz


def build_daily_reports(config_path: str | Path, day: str | date, sites: list[str] | None = None,
                        tz: str | None = None, now_ms: int | None = None) -> list[DailyReport]:
    """The reports' content for these sites (None: every site in gateway.toml); tz None: gateway.toml's
    [aggregates] timezone (default Asia/Shanghai). Raises ConfigError (gateway.toml or the alarms
    config) or ReportError (unknown site, bad date or zone, InfluxDB)."""
    loaded = gateway_config.load(config_path)
    tz = report_zone(loaded, tz)
    day = parse_day(day)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if day > local_day(now_ms, zone(tz)):
        raise ReportError(f"date {day.isoformat()} is in the future ({tz}); give a past day or today")
    setups = site_setups(loaded)
    if not setups:
        raise ReportError(f"{loaded.path}: no [sites.<id>] in it; a report needs the site's nodes and poll_s")
    wanted = list(setups) if not sites else list(dict.fromkeys(sites))
    unknown = [s for s in wanted if s not in setups]
    if unknown:
        raise ReportError(f"unknown site {', '.join(unknown)} (known in {loaded.path}: {', '.join(setups)})")
    cfg = loaded.gateway
    if cfg.influx_api != "v1":
        raise ReportError(f"{loaded.path}: influx.api = {cfg.influx_api!r}: the report reads through the v1 "
                          "/query API only (InfluxDB 1.x); point it at a v1 endpoint")
    refused = refusals(cfg.quarantine_path, wanted)
    params = load_params()
    source = InfluxSource(cfg.influx_url, cfg.influx_db, cfg.influx_user, cfg.influx_password)
    try:
        return [build_report(gather(source, s, setups[s], day, tz, now_ms, cfg.keys, cfg.require_signatures,
                                    refused), params) for s in wanted]
    finally:
        source.close()


def report_paths(report: DailyReport, out_dir: str | Path) -> tuple[Path, Path]:
    stem = f"{report.site}_{report.day.isoformat()}"
    return Path(out_dir) / f"{stem}.pdf", Path(out_dir) / f"{stem}.png"


def write_daily_reports(config_path: str | Path, day: str | date, out_dir: str | Path = "reports",
                        sites: list[str] | None = None, tz: str | None = None, now_ms: int | None = None
                        ) -> list[Path]:
    """Write <out_dir>/<site>_<YYYY-MM-DD>.pdf and .png per site (None: every site in gateway.toml), for
    the calendar day in tz (None: gateway.toml's [aggregates] timezone, default Asia/Shanghai);
    returns the paths written, PDF then PNG for each site."""
    from .fonts import find_cjk_font
    from .render import write_pdf, write_png
    find_cjk_font()  # before any query: a missing font is said at once
    written = []
    for report in build_daily_reports(config_path, day, sites, tz, now_ms):
        pdf, png = report_paths(report, out_dir)
        written += [write_pdf(report, pdf), write_png(report, png)]
    return written
