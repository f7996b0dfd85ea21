"""Colours, thresholds, units and value mappings, all from the setup (limit profiles, params.toml,
the SMS words): a threshold is never written here, only turned into Grafana's steps.

Grafana colours a value with the highest step at or below it. A profile's `max` is breached only
above it (alarms/rules: "above this is a breach"), so the red step sits at the next float above
max; `min` is breached below it, so the green step is at min itself.
"""

from __future__ import annotations

import math

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from ..alarms.rules.base import Limit
from .setup import Param, Setup, SiteInfo

OK, BREACH, NO_LIMIT = "green", "red", "blue"
FLAG_COLOURS = {"N": "green", "M": "blue", "C": "purple", "D": "red", "B": "orange", "F": "dark-red",
                "S": "yellow", "T": "dark-orange"}
STATE_WORDS = {"raised": ("告警中", "red"), "cleared": ("已解除", "green")}


def steps(limit: Limit | None) -> list[dm.Threshold]:
    """Grafana threshold steps for a limit (None: no limit, one neutral colour)."""
    if limit is None or (limit.min is None and limit.max is None):
        return [dm.Threshold(None, NO_LIMIT)]
    out = [dm.Threshold(None, BREACH if limit.min is not None else OK)]
    if limit.min is not None:
        out.append(dm.Threshold(float(limit.min), OK))
    if limit.max is not None:
        out.append(dm.Threshold(math.nextafter(float(limit.max), math.inf), BREACH))
    return out


def thresholds(limit: Limit | None) -> dm.ThresholdsConfig:
    return dm.ThresholdsConfig(mode=dm.ThresholdsMode.ABSOLUTE, steps=steps(limit))


def thresholds_builder(limit: Limit | None) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps(limit))


def unit(param: Param) -> str:
    return f"suffix: {param.unit}" if param.unit else "none"


def limit_text(limit: Limit | None, param: Param, site: SiteInfo | None = None) -> str:
    """限值 ≤50 mg/L, 6–9, ≥5 mg/L; with the cold-water max when the profile has one."""
    if limit is None or (limit.min is None and limit.max is None):
        return "无限值"
    u = f" {param.unit}" if param.unit else ""
    if limit.min is not None and limit.max is not None:
        text = f"限值 {limit.min:g}–{limit.max:g}{u}"
    elif limit.max is not None:
        text = f"限值 ≤{limit.max:g}{u}"
    else:
        text = f"限值 ≥{limit.min:g}{u}"
    if limit.cold_max is not None and site is not None and site.cold_at_or_below is not None:
        text += f"（水温≤{site.cold_at_or_below:g}℃时 ≤{limit.cold_max:g}{u}）"
    return text


def series_props(setup: Setup, site: SiteInfo | None, code: str, *, name: str | None = None,
                 limits: bool = True, line: bool = False) -> list[dm.DynamicConfigValue]:
    """The field properties of one parameter's series: its Chinese name, unit and (at a site) its
    limit as thresholds; `line` draws the limit into a time series."""
    p = setup.param(code)
    limit = site.limits.get(code) if (site is not None and limits) else None
    props = [dm.DynamicConfigValue(id_val="displayName", value=name or p.name),
             dm.DynamicConfigValue(id_val="unit", value=unit(p))]
    if site is not None and limits:
        props.append(dm.DynamicConfigValue(id_val="thresholds", value=thresholds(limit)))
        if line and limit is not None:
            props.append(dm.DynamicConfigValue(id_val="custom.thresholdsStyle", value={"mode": "line+area"}))
    return props


def site_params(setup: Setup, site: SiteInfo) -> list[str]:
    """The parameters a site may report: those with a limit first, then every other one params.toml
    knows (a site's analyzers are not in the gateway's config)."""
    return [*site.limits, *(c for c in setup.params if c not in site.limits)]


def mapping(options: dict[str, tuple[str, str | None]]) -> dm.ValueMap:
    return dm.ValueMap(options={
        k: dm.ValueMappingResult(text=text, color=colour, index=i) if colour
        else dm.ValueMappingResult(text=text, index=i)
        for i, (k, (text, colour)) in enumerate(options.items())})


def flag_mapping(setup: Setup) -> dm.ValueMap:
    return mapping({f: (f"{word}({f})", FLAG_COLOURS.get(f, "orange")) for f, word in setup.flag_words.items()})


def online_mapping() -> dm.ValueMap:
    return mapping({"true": ("在线", "green"), "false": ("离线", "red")})


def site_mapping(setup: Setup) -> dm.ValueMap:
    return mapping({s.id: (s.name, None) for s in setup.sites})


def state_mapping() -> dm.ValueMap:
    return mapping(dict(STATE_WORDS))


def rule_mapping(setup: Setup) -> dm.ValueMap:
    """rule id -> the SMS word of its kind (超标, 均值超标, 离线, ...), with the id."""
    out: dict[str, tuple[str, str | None]] = {}
    for site in setup.sites:
        for rid in site.rules:
            out.setdefault(rid, (f"{setup.rule_word(site, rid)}({rid})", None))
    return mapping(out)


def param_mapping(setup: Setup) -> dm.ValueMap:
    return mapping({c: (p.name, None) for c, p in setup.params.items()})


def by_name(name: str, props: list[dm.DynamicConfigValue]) -> db.DashboardFieldConfigSourceOverrides:
    return (db.DashboardFieldConfigSourceOverrides()
            .matcher(dm.MatcherConfig(id_val="byName", options=name)).properties(props))


def column(name: str, *props: tuple[str, object]) -> db.DashboardFieldConfigSourceOverrides:
    """Properties of one table column (by its field name)."""
    return by_name(name, [dm.DynamicConfigValue(id_val=k, value=v) for k, v in props])
