"""数据完整性 (data completeness), per site, node and day (days of `[aggregates] timezone`):

- records received against expected: the growth within the day of the gateway's `completeness`
  counters (by `seq`: expected = what the node's counter says it produced), with the poll schedule
  (86400 / poll_s records a day, from gateway.toml) drawn as the line the bars should reach;
- `seq` gaps: missing, duplicates, jumps and what the node itself reported lost;
- quarantined payloads: the gateway's `quarantined` counter (per gateway: the quarantine is not
  split by site in InfluxDB; `edgemon quarantine list` names each payload's site);
- late records: a record is late when it reaches the gateway more than [liveness] silent_periods x
  the site's poll_s after its sample time, i.e. after the gateway would already have marked its
  node offline for silence (it was held on the node's flash and replayed). `ingest` keeps, per node
  and reporting window (health_interval_s), the largest lag: a window whose largest lag is over
  the site's threshold counts as one window with late records.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from . import style
from .common import Grid, frame, site_variable
from .influxql import SITE_RE, Target, day_group, site_is, where
from .setup import Setup

DAY_MS = 86_400_000


def daily_query(tz: str) -> str:
    return ('SELECT spread("received") AS "received", spread("expected") AS "expected", '
            f'spread("missing") AS "missing" FROM "completeness" WHERE {where(SITE_RE, "$timeFilter")} '
            f'GROUP BY time(1d), "site", "node" fill(none) {day_group(tz)}')


def totals_query() -> str:
    fields = ", ".join(f'last("{f}") AS "{f}"' for f in
                       ("expected", "received", "missing", "duplicates", "seq_jumps", "lost", "last_seq"))
    return f'SELECT {fields} FROM "completeness" WHERE {where(SITE_RE, "$timeFilter")} GROUP BY "site", "node"'


def quarantine_query(tz: str) -> str:
    return (f'SELECT spread("quarantined") AS "quarantined" FROM "gateway" WHERE $timeFilter '
            f'GROUP BY time(1d), "gateway" fill(none) {day_group(tz)}')


def late_query(site: str, late_ms: int, tz: str) -> str:
    cond = where(site_is(site), SITE_RE, f'"lag_ms_max" > {late_ms}', "$timeFilter")
    return (f'SELECT count("lag_ms_max") AS "late_windows", max("lag_ms_max") AS "max_lag_ms" FROM "ingest" '
            f'WHERE {cond} GROUP BY time(1d), "site", "node" fill(none) {day_group(tz)}')


def lag_query() -> str:
    return (f'SELECT max("lag_ms_max") FROM "ingest" WHERE {where(SITE_RE, "$timeFilter")} '
            'GROUP BY time($__interval), "site", "node" fill(none)')


def daily_panel(setup: Setup) -> timeseries.Panel:
    panel = (timeseries.Panel().title("每日接收记录与应收记录")
             .description("按 seq 统计：received 当日收到的记录，expected 节点计数器显示应有的记录，missing 缺失。"
                          "虚线为按轮询周期每日应收记录数（86400 / poll_s）。")
             .with_target(Target("A", daily_query(setup.timezone), alias="$tag_site/$tag_node $col"))
             .draw_style(cm.GraphDrawStyle.BARS).bar_alignment(cm.BarAlignment.AFTER).fill_opacity(60)
             .unit("none").decimals(0))
    for site in setup.sites:
        per_day = DAY_MS / 1000 / site.poll_s
        for node in site.nodes:
            panel = panel.override_by_name(f"{site.id}/{node} received", [
                dm.DynamicConfigValue(id_val="displayName", value=f"{site.name}/{node} 收到"),
                dm.DynamicConfigValue(id_val="thresholds", value=dm.ThresholdsConfig(
                    mode=dm.ThresholdsMode.ABSOLUTE, steps=[dm.Threshold(None, "orange"), dm.Threshold(per_day, "green")])),
                dm.DynamicConfigValue(id_val="custom.thresholdsStyle", value={"mode": "dashed"})])
            panel = panel.override_by_name(f"{site.id}/{node} expected", [
                dm.DynamicConfigValue(id_val="displayName", value=f"{site.name}/{node} 应收（按 seq）")])
            panel = panel.override_by_name(f"{site.id}/{node} missing", [
                dm.DynamicConfigValue(id_val="displayName", value=f"{site.name}/{node} 缺失"),
                dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"})])
    return panel


def totals_panel(setup: Setup) -> table.Panel:
    names = {"expected": "应收", "received": "已收", "missing": "缺失（seq 缺口）", "duplicates": "重复",
             "seq_jumps": "seq 跳变", "lost": "节点自报丢失", "last_seq": "最新 seq"}
    return (table.Panel().title("seq 缺口与重复（累计）")
            .description("网关 completeness 计数（自网关开始接收该节点起累计）。")
            .with_target(Target("A", totals_query(), table=True))
            .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
            .overrides([style.column("site", ("displayName", "站点"), ("mappings", [style.site_mapping(setup)])),
                        style.column("node", ("displayName", "节点")), style.column("Time", ("custom.hidden", True)),
                        *(style.column(k, ("displayName", v)) for k, v in names.items())]))


def quarantine_panel(setup: Setup) -> timeseries.Panel:
    return (timeseries.Panel().title("每日隔离的报文（网关）")
            .description("网关拒收并隔离的报文数（签名错误、格式不符、seq 越界、InfluxDB 拒收等），按网关统计，不分站点。")
            .with_target(Target("A", quarantine_query(setup.timezone), alias="$tag_gateway"))
            .draw_style(cm.GraphDrawStyle.BARS).bar_alignment(cm.BarAlignment.AFTER).fill_opacity(60)
            .unit("none").decimals(0))


def late_panel(setup: Setup) -> timeseries.Panel:
    panel = (timeseries.Panel().title("迟到记录（每日含迟到记录的上报窗口数）")
             .description("迟到：记录到达网关时距采样时间超过 silent_periods × poll_s（此时网关已判节点离线，"
                          "记录是节点缓存后补传的）。" + "；".join(
                              f"{s.name}：{s.late_ms(setup.silent_periods) / 1000:g} s" for s in setup.sites))
             .draw_style(cm.GraphDrawStyle.BARS).bar_alignment(cm.BarAlignment.AFTER).fill_opacity(60)
             .unit("none").decimals(0))
    for k, site in enumerate(setup.sites):
        panel = panel.with_target(Target(f"late{k + 1}", late_query(site.id, site.late_ms(setup.silent_periods), setup.timezone),
                                  alias="$tag_site/$tag_node $col"))
    return panel.override_by_regexp(".* max_lag_ms$", [dm.DynamicConfigValue(id_val="custom.hideFrom", value={
        "legend": False, "tooltip": False, "viz": True})])


def lag_panel(setup: Setup) -> timeseries.Panel:
    return (timeseries.Panel().title("最大到达延迟")
            .description("每个上报窗口内记录从采样到到达网关的最大延迟。")
            .with_target(Target("A", lag_query(), alias="$tag_site/$tag_node"))
            .unit("ms").show_points(cm.VisibilityMode.NEVER))


def build(setup: Setup) -> db.Dashboard:
    d = frame("completeness", setup, "按站点、节点和天：接收与应收、seq 缺口、隔离的报文、迟到记录。",
              time_from="now-7d").with_variable(site_variable(multi=True))
    grid = Grid()
    d = d.with_panel(grid.put(daily_panel(setup), 14, 9))
    d = d.with_panel(grid.put(totals_panel(setup), 10, 9))
    d = d.with_panel(grid.put(late_panel(setup), 8, 8))
    d = d.with_panel(grid.put(lag_panel(setup), 8, 8))
    d = d.with_panel(grid.put(quarantine_panel(setup), 8, 8))
    return d
