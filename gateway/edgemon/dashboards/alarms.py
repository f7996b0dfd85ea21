"""告警 (alarms): the alarms whose newest state is `raised` first (whatever the time range, up to
OPEN_LOOKBACK back), then the history of raises and clears in the time range, then how many
alarms were raised per site and rule. Rule ids are shown with the SMS word of their kind."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, table
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from . import style
from .common import Grid, frame, site_variable
from .influxql import OPEN_LOOKBACK, SITE_RE, Target, where
from .setup import Setup

TAGS = '"site", "node", "param", "rule"'
RAISED = "\"state\" = 'raised'"


def open_query() -> str:
    """The newest point of every alarm (site, node, param, rule), kept when it is a raise: `last()`
    with plain fields returns those fields of the same point, and its time."""
    inner = (f'SELECT last("state") AS "state", "value", "limit", "message" FROM "alarm" '
             f'WHERE {where(SITE_RE, f"time > now() - {OPEN_LOOKBACK}")} GROUP BY {TAGS}')
    return f'SELECT "state", "value", "limit", "message" FROM ({inner}) WHERE {RAISED} GROUP BY {TAGS}'


def history_query() -> str:
    return ('SELECT "state", "site", "node", "param", "rule", "value", "limit", "message" FROM "alarm" '
            f'WHERE {where(SITE_RE, "$timeFilter")} ORDER BY time DESC LIMIT 1000')


def counts_query() -> str:
    return f'SELECT count("state") AS "raised" FROM "alarm" WHERE {where(SITE_RE, RAISED, "$timeFilter")} GROUP BY "site", "rule"'


def _columns(setup: Setup) -> list:
    return [
        style.column("site", ("displayName", "站点"), ("mappings", [style.site_mapping(setup)])),
        style.column("node", ("displayName", "节点")),
        style.column("param", ("displayName", "参数"), ("mappings", [style.param_mapping(setup)])),
        style.column("rule", ("displayName", "规则"), ("mappings", [style.rule_mapping(setup)])),
        style.column("state", ("displayName", "状态"), ("mappings", [style.state_mapping()]),
                     ("custom.cellOptions", {"type": "color-background"})),
        style.column("value", ("displayName", "监测值")),
        style.column("limit", ("displayName", "限值")),
        style.column("message", ("displayName", "说明"), ("custom.width", 520)),
        style.column("Time", ("displayName", "时间")),
    ]


def open_panel(setup: Setup) -> table.Panel:
    return (table.Panel().title("未解除告警")
            .description(f"每条告警（站点、节点、参数、规则）的最新状态为“告警中”的，{OPEN_LOOKBACK[:-1]} 天内，"
                         "与所选时间范围无关；时间为告警产生的时间。")
            .with_target(Target("A", open_query(), table=True))
            .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
            .sort_by([cb.TableSortByFieldState().display_name("Time").desc(True)])
            .no_value("无未解除告警").overrides(_columns(setup)))


def history_panel(setup: Setup) -> table.Panel:
    return (table.Panel().title("告警历史（产生与解除）")
            .description("所选时间范围内每一次告警产生与解除，最新的在前（最多 1000 条）。")
            .with_target(Target("A", history_query(), table=True))
            .no_value("所选时间范围内无告警").overrides(_columns(setup)))


def counts_panel(setup: Setup) -> bargauge.Panel:
    panel = (bargauge.Panel().title("各站点、各规则的告警次数")
             .description("所选时间范围内产生（raised）的告警次数。")
             .with_target(Target("A", counts_query(), alias="$tag_site/$tag_rule"))
             .orientation(cm.VizOrientation.HORIZONTAL).display_mode(cm.BarGaugeDisplayMode.BASIC)
             .reduce_options(cb.ReduceDataOptions().values(False).calcs(["sum"]).fields(""))
             .unit("none").decimals(0).min(0).no_value("0")
             .thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
                         .steps([dm.Threshold(None, "orange")])))
    for site in setup.sites:
        for rid in site.rules:
            panel = panel.override_by_name(f"{site.id}/{rid}", [dm.DynamicConfigValue(
                id_val="displayName", value=f"{site.name} · {setup.rule_word(site, rid)}（{rid}）")])
    return panel


def build(setup: Setup) -> db.Dashboard:
    d = frame("alarms", setup, "未解除告警在前，然后是告警历史，以及各站点各规则的告警次数。",
              time_from="now-7d").with_variable(site_variable(multi=True))
    grid = Grid()
    d = d.with_panel(grid.put(open_panel(setup), 24, 8))
    d = d.with_panel(grid.put(history_panel(setup), 16, 12))
    d = d.with_panel(grid.put(counts_panel(setup), 8, 12))
    return d
