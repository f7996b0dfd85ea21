"""What every dashboard shares: uids, the dashboard frame (refresh 10 s, the sites' time zone, the
links between the five), the site and parameter variables, and a grid that places panels."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from .influxql import DATASOURCE, PARAM_RE, SITE_RE, tag_values
from .setup import Setup

REFRESH = "10s"
TAG = "edgemon"
UIDS = {  # stable: links and bookmarks use them; tests/dashboards checks they never change
    "overview": "edgemon-overview",
    "site": "edgemon-site",
    "alarms": "edgemon-alarms",
    "completeness": "edgemon-completeness",
    "fleet": "edgemon-fleet",
}
TITLES = {
    "overview": "排口在线监测 · 总览",
    "site": "排口在线监测 · 站点详情",
    "alarms": "排口在线监测 · 告警",
    "completeness": "排口在线监测 · 数据完整性",
    "fleet": "排口在线监测 · 设备健康",
}


def site_detail_url(site: str, param: str | None = None) -> str:
    """The site detail dashboard for one site (Grafana fills the ${...} when the link is followed)."""
    url = f"/d/{UIDS['site']}/?var-site={site}"
    if param:
        url += f"&var-param={param}"
    return url + "&${__url_time_range}"


def frame(key: str, setup: Setup, description: str, time_from: str = "now-6h") -> db.Dashboard:
    d = (db.Dashboard(TITLES[key]).uid(UIDS[key]).description(description).tags([TAG])
         .refresh(REFRESH).timezone(setup.timezone).time(time_from, "now").editable()
         .tooltip(dm.DashboardCursorSync.CROSSHAIR)
         .timepicker(db.TimePicker().refresh_intervals(["10s", "30s", "1m", "5m", "15m", "1h"])))
    for other in UIDS:
        if other != key:
            d = d.link(db.DashboardLink(TITLES[other].split(" · ")[-1]).type(dm.DashboardLinkType.LINK)
                       .url(f"/d/{UIDS[other]}/").keep_time(True).include_vars(other != "overview")
                       .target_blank(False).as_dropdown(False).icon("dashboard").tooltip(TITLES[other]))
    return d


def site_variable(multi: bool) -> db.QueryVariable:
    v = (db.QueryVariable("site").label("站点").datasource(DATASOURCE)
         .query(tag_values("reading", "site"))
         .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
         .description("站点编号（MQTT 主题与 InfluxDB 中的 site 标签）"))
    if multi:
        v = v.multi(True).include_all(True)
    return v


def param_variable() -> db.QueryVariable:
    return (db.QueryVariable("param").label("监测参数").datasource(DATASOURCE)
            .query(tag_values("reading", "param", SITE_RE))
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True)
            .description("HJ 212 参数编码；图例与坐标轴显示中文名称和单位"))


class Grid:
    """Places panels left to right, top to bottom, 24 columns wide; numbers them from 1."""

    def __init__(self):
        self.x = self.y = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> tuple[int, dm.GridPos]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = dm.GridPos(h=h, w=w, x=self.x, y=self.y)
        self.x += w
        self.row_h = max(self.row_h, h)
        pid, self.next_id = self.next_id, self.next_id + 1
        return pid, pos

    def row(self, title: str) -> db.Row:
        self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pid, pos = self.place(24, 1)
        self.x, self.y, self.row_h = 0, self.y + 1, 0
        return db.Row(title).id(pid).grid_pos(pos)

    def put(self, panel, w: int, h: int):
        """`panel` (an SDK panel builder) with its id, position and the dashboards' datasource."""
        pid, pos = self.place(w, h)
        return panel.id(pid).grid_pos(pos).datasource(DATASOURCE)


__all__ = ["REFRESH", "UIDS", "TITLES", "Grid", "frame", "site_variable", "param_variable", "site_detail_url",
           "PARAM_RE", "SITE_RE"]
