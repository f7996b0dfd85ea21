"""站点详情 (site detail): for the chosen site, one time series per chosen parameter with the site's
limit drawn as a threshold line (and the breaching side shaded), readings whose flag is not N marked
as points, the flags over time (maintenance, calibration, fault, no answer ...), the alarms as
annotations, and the hourly and daily means (`aggregate`) against the same limit.

The limit follows the site: each series is named `<site>/<param>` (the query's alias) and every
site/parameter of the config has an override by that name carrying its limit, Chinese name and unit."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import statetimeline, table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from . import style
from .common import Grid, frame, param_variable, site_variable
from .influxql import DATASOURCE, PARAM_RE, SITE_RE, AnnotationTarget, Target, quote, where
from .setup import Setup

SERIES = "$tag_site/$tag_param"
FLAGGED = "$tag_site/$tag_param/flagged"  # flag is a field: no GROUP BY on it
NOT_N = "\"flag\" != 'N'"


def values_query() -> str:
    return (f'SELECT mean("value") FROM "reading" WHERE {where(SITE_RE, PARAM_RE, "$timeFilter")} '
            'GROUP BY time($__interval), "site", "param" fill(null)')


def flagged_query() -> str:
    """Every reading with a flag other than N, at its own time (drawn as points on the curve)."""
    cond = where(SITE_RE, PARAM_RE, NOT_N, "$timeFilter")
    return f'SELECT "value" FROM "reading" WHERE {cond} GROUP BY "site", "param"'


def flags_query() -> str:
    return (f'SELECT last("flag") FROM "reading" WHERE {where(SITE_RE, PARAM_RE, "$timeFilter")} '
            'GROUP BY time($__interval), "param" fill(none)')


def means_query(period: str) -> str:
    cond = where(SITE_RE, PARAM_RE, f'"period" = {quote(period)}', "$timeFilter")
    return f'SELECT "avg" FROM "aggregate" WHERE {cond} GROUP BY "site", "param"'


def day_table_query() -> str:
    cond = where(SITE_RE, PARAM_RE, '"period" = ' + quote("day"), "$timeFilter")
    return f'SELECT "avg", "min", "max", "flag", "valid", "n", "count" FROM "aggregate" WHERE {cond} GROUP BY "param"'


def alarm_annotation_query() -> str:
    return ('SELECT "message", "state", "value", "limit", "rule", "param" FROM "alarm" '
            f'WHERE {where(SITE_RE, "$timeFilter")}')


def _overrides(setup: Setup, panel, line: bool):
    for site in setup.sites:
        for code in style.site_params(setup, site):
            p = setup.param(code)
            name = f"{p.name}（{style.limit_text(site.limits.get(code), p, site)}）" if code in site.limits else p.name
            panel = panel.override_by_name(f"{site.id}/{code}",
                                           style.series_props(setup, site, code, name=name, line=line))
    return panel


def value_panel(setup: Setup) -> timeseries.Panel:
    panel = (timeseries.Panel().title("监测值 · ${param}")
             .description("按时间间隔求平均的监测值；红线为该站点的限值（超标一侧着色），橙色点为标记非 N 的读数。")
             .with_target(Target("A", values_query(), alias=SERIES))
             .with_target(Target("B", flagged_query(), alias=FLAGGED))
             .repeat("param").repeat_direction("h").max_per_row(2)
             .line_width(1).fill_opacity(0).span_nulls(False).show_points(cm.VisibilityMode.NEVER)
             .legend(cb.VizLegendOptions().show_legend(True).display_mode(cm.LegendDisplayMode.LIST)
                     .placement(cm.LegendPlacement.BOTTOM).calcs(["lastNotNull", "max", "min"]))
             .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.NONE)))
    panel = _overrides(setup, panel, line=True)
    return panel.override_by_query("B", [
        dm.DynamicConfigValue(id_val="custom.drawStyle", value="points"),
        dm.DynamicConfigValue(id_val="custom.pointSize", value=7),
        dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "orange"}),
        dm.DynamicConfigValue(id_val="displayName", value="标记非N的读数"),
        dm.DynamicConfigValue(id_val="custom.thresholdsStyle", value={"mode": "off"}),
    ])


def flags_panel(setup: Setup) -> statetimeline.Panel:
    panel = (statetimeline.Panel().title("数据标记")
             .description("各参数在每个时间间隔内最后一条读数的 HJ 212 标记：N 正常，M 维护，C 校准，D 故障，"
                          "B 通讯异常（无应答），F 停运，T 超量程，S 手工输入。")
             .with_target(Target("A", flags_query(), alias="$tag_param"))
             .mappings([style.flag_mapping(setup)]).show_value(cm.VisibilityMode.AUTO).merge_values(True)
             .row_height(0.8).line_width(0).fill_opacity(80))
    for code in setup.params:
        panel = panel.override_by_name(code, [dm.DynamicConfigValue(id_val="displayName", value=setup.param(code).name)])
    return panel


def means_panel(setup: Setup, period: str, title: str, time_from: str) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).time_from(time_from)
             .description(f"`aggregate` 中 period={period} 的均值（流量加权，仅计 N 数据），红线为限值。")
             .with_target(Target("A", means_query(period), alias=SERIES))
             .draw_style(cm.GraphDrawStyle.BARS if period == "day" else cm.GraphDrawStyle.LINE)
             .bar_alignment(cm.BarAlignment.AFTER).fill_opacity(40 if period == "day" else 10)
             .show_points(cm.VisibilityMode.ALWAYS).point_size(4))
    return _overrides(setup, panel, line=True)


def day_table(setup: Setup) -> table.Panel:
    return (table.Panel().title("日均值与有效性").time_from("30d")
            .description("每日的均值、最小值、最大值、标记与有效性（valid：按 HJ 212 规则是否为有效日）。")
            .with_target(Target("A", day_table_query(), table=True))
            .overrides([style.column("param", ("mappings", [style.param_mapping(setup)]), ("displayName", "参数")),
                        style.column("flag", ("mappings", [style.flag_mapping(setup)]), ("displayName", "标记")),
                        style.column("avg", ("displayName", "均值")), style.column("valid", ("displayName", "有效")),
                        style.column("n", ("displayName", "有效读数")), style.column("count", ("displayName", "读数"))]))


def build(setup: Setup) -> db.Dashboard:
    d = (frame("site", setup, "单个站点各参数的监测值与限值、数据标记、告警标注、小时与日均值。")
         .with_variable(site_variable(multi=False)).with_variable(param_variable())
         .annotation(db.AnnotationQuery().name("告警").datasource(DATASOURCE).enable(True).icon_color("red")
                     .target(AnnotationTarget(alarm_annotation_query(), "message", "state,rule,param"))))
    grid = Grid()
    d = d.with_row(grid.row("监测值与限值"))
    d = d.with_panel(grid.put(value_panel(setup), 12, 9))
    grid.x = 24  # the repeated panels take the rest of the row
    d = d.with_row(grid.row("数据标记"))
    d = d.with_panel(grid.put(flags_panel(setup), 24, 7))
    d = d.with_row(grid.row("小时均值与日均值"))
    d = d.with_panel(grid.put(means_panel(setup, "hour", "小时均值（近 2 天）", "2d"), 12, 8))
    d = d.with_panel(grid.put(means_panel(setup, "day", "日均值（近 30 天）", "30d"), 12, 8))
    d = d.with_panel(grid.put(day_table(setup), 24, 8))
    return d
