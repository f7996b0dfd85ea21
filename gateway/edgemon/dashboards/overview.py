"""总览 (overview): one row per site of the gateway's config; in it the latest value of each
parameter coloured against the site's limit (red above max / below min), how old the newest record
is, each node online or offline, each parameter's data flag and the alarms still raised. A click on
a value opens the site detail dashboard for that site and parameter."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from . import style
from .common import Grid, frame, site_detail_url
from .influxql import OPEN_LOOKBACK, Target, site_is, where
from .setup import Setup, SiteInfo

NOT_TIME = "/^(?!Time$).*$/"  # every field but the time column (string values included)


def latest_values_query(site: str) -> str:
    return f'SELECT last("value") FROM "reading" WHERE {where(site_is(site), "$timeFilter")} GROUP BY "param"'


def data_age_query(site: str) -> str:
    return f'SELECT last("flag") FROM "reading" WHERE {where(site_is(site), "$timeFilter")} GROUP BY "node"'


def online_query(site: str) -> str:
    return f'SELECT last("online") FROM "node" WHERE {where(site_is(site), "$timeFilter")} GROUP BY "node"'


def flag_query(site: str) -> str:
    return f'SELECT last("flag") FROM "reading" WHERE {where(site_is(site), "$timeFilter")} GROUP BY "param"'


def open_alarms_query(site: str) -> str:
    """How many of the site's alarms have `raised` as their newest state (looked for OPEN_LOOKBACK back,
    whatever the time range: an alarm raised last month and not cleared is still open)."""
    inner = (f'SELECT last("state") AS "state" FROM "alarm" WHERE {where(site_is(site), f"time > now() - {OPEN_LOOKBACK}")}'
             ' GROUP BY "node", "param", "rule"')
    return f"SELECT count(\"state\") AS \"open\" FROM ({inner}) WHERE \"state\" = 'raised'"


def _stat(title: str, description: str) -> stat.Panel:
    return (stat.Panel().title(title).description(description)
            .graph_mode(cm.BigValueGraphMode.NONE).text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
            .color_mode(cm.BigValueColorMode.BACKGROUND).justify_mode(cm.BigValueJustifyMode.AUTO)
            .orientation(cm.VizOrientation.AUTO).no_value("无数据"))


def _reduce(fields: str = "") -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields(fields)


def site_panels(setup: Setup, site: SiteInfo, grid: Grid) -> list:
    params = style.site_params(setup, site)
    values = (_stat("最新监测值", f"各参数最新值，按{site.profile_title or '（未配置限值）'}着色：红色超标，绿色达标，"
                                   "蓝色无限值。点击数值进入站点详情。")
              .with_target(Target("A", latest_values_query(site.id), alias="$tag_param"))
              .reduce_options(_reduce()).unit("none")
              .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
              .thresholds(style.thresholds_builder(None))
              .data_links([db.DashboardLink("查看站点详情").url(site_detail_url(site.id, "${__field.labels.param}"))]))
    for code in params:
        p = setup.param(code)
        name = f"{p.name}（{style.limit_text(site.limits.get(code), p, site)}）" if code in site.limits else p.name
        values = values.override_by_name(code, style.series_props(setup, site, code, name=name))
    age = (_stat("数据时效", "各节点最新一条记录的采样时间距现在多久（时间范围内无记录：无数据）")
           .with_target(Target("A", data_age_query(site.id), alias="$tag_node"))
           .reduce_options(_reduce("/^Time$/")).unit("dateTimeFromNow")
           .color_mode(cm.BigValueColorMode.NONE))
    online = (_stat("节点在线", "网关记录的节点状态：在线 / 离线（遗嘱或连续 "
                    f"{setup.silent_periods:g} 个轮询周期无数据）")
              .with_target(Target("A", online_query(site.id), alias="$tag_node"))
              .reduce_options(_reduce(NOT_TIME)).mappings([style.online_mapping()]))
    flags = (_stat("数据标记", "各参数最新一条记录的 HJ 212 数据标记（N 正常；M 维护、C 校准、D 故障、B 通讯异常等）")
             .with_target(Target("A", flag_query(site.id), alias="$tag_param"))
             .reduce_options(_reduce(NOT_TIME)).mappings([style.flag_mapping(setup)]))
    for code in params:
        flags = flags.override_by_name(code, [dm.DynamicConfigValue(id_val="displayName", value=setup.param(code).name)])
    alarms = (_stat("未解除告警", f"最新状态为“告警中”的告警条数（{OPEN_LOOKBACK[:-1]} 天内）")
              .with_target(Target("A", open_alarms_query(site.id)))
              .reduce_options(_reduce()).no_value("0")
              .thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
                          .steps([dm.Threshold(None, style.OK), dm.Threshold(1.0, style.BREACH)]))
              .data_links([db.DashboardLink("查看告警").url("/d/edgemon-alarms/?var-site=" + site.id
                                                          + "&${__url_time_range}")]))
    return [grid.put(values, 24, 5), grid.put(age, 6, 4), grid.put(online, 6, 4), grid.put(flags, 8, 4),
            grid.put(alarms, 4, 4)]


def build(setup: Setup) -> db.Dashboard:
    d = frame("overview", setup, "每个站点一行：最新监测值（按限值着色）、数据时效、节点在线、数据标记、未解除告警。"
              f"限值来自各站点的限值标准（{setup.source}）。", time_from="now-24h")
    grid = Grid()
    for site in setup.sites:
        title = f"{site.name}（{site.id}）" + (f" · {site.profile_title}" if site.profile_title else " · 未配置限值")
        d = d.with_row(grid.row(title))
        for panel in site_panels(setup, site, grid):
            d = d.with_panel(panel)
    return d
