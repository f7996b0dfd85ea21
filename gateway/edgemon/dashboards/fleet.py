"""设备健康 (fleet health), per node: firmware version, online, free heap, WiFi signal, records
waiting in the flash queue, clock offset (from the `node` points the gateway writes from the
signed statuses and from each record's time against its arrival), its uptime and when it last booted.

Uptime: the `up` field of the `node` points (seconds since boot, from the node's status), and the
time of the node's last `boot` event (`event`, kind=boot, at the node's own clock) as "how long
ago" with the number of boots in the time range (a node that keeps restarting)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from . import style
from .common import Grid, frame, site_variable
from .influxql import OPEN_LOOKBACK, SITE_RE, Target, where

NODE_TAGS = 'GROUP BY "site", "node"'
BOOT = "\"kind\" = 'boot'"
SERIES = [  # field, title, unit, description
    ("heap", "空闲内存", "bytes", "节点状态中的空闲堆内存（字节）"),
    ("rssi", "WiFi 信号", "suffix: dBm", "节点状态中的 WiFi 信号强度"),
    ("queue", "待发记录（闪存队列）", "none", "节点闪存队列中尚未确认的记录数"),
    ("clock_offset_ms", "时钟偏差", "ms", "记录采样时间减去到达网关的时间（正值：节点时钟快）"),
]


def status_query() -> str:
    fields = ", ".join(f'last("{f}") AS "{f}"' for f in ("fw", "up", "heap", "rssi", "queue", "clock_offset_ms"))
    return f'SELECT {fields} FROM "node" WHERE {where(SITE_RE, "$timeFilter")} {NODE_TAGS}'


def online_query() -> str:
    return f'SELECT last("online") AS "online" FROM "node" WHERE {where(SITE_RE, "$timeFilter")} {NODE_TAGS}'


def boot_query() -> str:
    cond = where(SITE_RE, BOOT, f"time > now() - {OPEN_LOOKBACK}")
    return f'SELECT last("detail") AS "boot" FROM "event" WHERE {cond} {NODE_TAGS}'


def boots_query() -> str:
    return f'SELECT count("detail") AS "boots" FROM "event" WHERE {where(SITE_RE, BOOT, "$timeFilter")} {NODE_TAGS}'


def series_query(fieldname: str) -> str:
    return (f'SELECT mean("{fieldname}") FROM "node" WHERE {where(SITE_RE, "$timeFilter")} '
            'GROUP BY time($__interval), "site", "node" fill(none)')


def _site_node(setup):
    return [style.column("site", ("displayName", "站点"), ("mappings", [style.site_mapping(setup)])),
            style.column("node", ("displayName", "节点"))]


def status_panel(setup) -> table.Panel:
    return (table.Panel().title("节点状态（时间范围内最新）")
            .description("固件版本、运行时长、空闲内存、信号、待发记录、时钟偏差：各取时间范围内最新的值。")
            .with_target(Target("A", status_query(), table=True))
            .with_target(Target("B", online_query(), table=True))
            .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
            .overrides([*_site_node(setup), style.column("Time", ("custom.hidden", True)),
                        style.column("fw", ("displayName", "固件")),
                        style.column("up", ("displayName", "运行时长"), ("unit", "s")),
                        style.column("online", ("displayName", "在线"), ("mappings", [style.online_mapping()]),
                                     ("custom.cellOptions", {"type": "color-background"})),
                        style.column("heap", ("displayName", "空闲内存"), ("unit", "bytes")),
                        style.column("rssi", ("displayName", "信号"), ("unit", "suffix: dBm")),
                        style.column("queue", ("displayName", "待发记录")),
                        style.column("clock_offset_ms", ("displayName", "时钟偏差"), ("unit", "ms"))]))


def boot_panel(setup) -> table.Panel:
    return (table.Panel().title("上次启动（运行时长）")
            .description("节点最近一次 boot 事件的时间（节点时钟），显示为距今多久：即运行时长。"
                         "节点状态中的 up（运行秒数）网关未写入 InfluxDB。")
            .with_target(Target("A", boot_query(), table=True))
            .with_target(Target("B", boots_query(), table=True))
            .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
            .overrides([*_site_node(setup), style.column("Time", ("displayName", "上次启动"), ("unit", "dateTimeFromNow")),
                        style.column("boot", ("displayName", "启动信息")),
                        style.column("boots", ("displayName", "时间范围内启动次数"))]))


def series_panel(setup, fieldname: str, title: str, unit: str, description: str) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description)
             .with_target(Target("A", series_query(fieldname), alias="$tag_site/$tag_node"))
             .unit(unit).show_points(cm.VisibilityMode.NEVER).span_nulls(True))
    for site in setup.sites:
        for node in site.nodes:
            panel = panel.override_by_name(f"{site.id}/{node}", [
                dm.DynamicConfigValue(id_val="displayName", value=f"{site.name}/{node}")])
    return panel


def build(setup) -> db.Dashboard:
    d = frame("fleet", setup, "每个节点的固件版本、在线、运行时长（上次启动）、空闲内存、信号、待发记录与时钟偏差。",
              time_from="now-24h").with_variable(site_variable(multi=True))
    grid = Grid()
    d = d.with_panel(grid.put(status_panel(setup), 14, 8))
    d = d.with_panel(grid.put(boot_panel(setup), 10, 8))
    for spec in SERIES:
        d = d.with_panel(grid.put(series_panel(setup, *spec), 12, 8))
    return d
