"""Every query of the checked-in dashboards (panel targets, template variables, annotations) run
against a real InfluxDB 1.x holding a day of the demo's sites written by the gateway's own writers
(demo_data.py), after the substitution Grafana makes (grafana_influxql.py): both time range forms,
a single site and several. Each panel's answer is compared with what was written: the series and
columns the panel draws, and the values it shows (latest values, limits on the series it colours,
open alarms, counts per day in the sites' time zone, ...). A target without a check fails the test."""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from edgemon.dashboards import FILES, demo_setup
from edgemon.dashboards.style import steps

from .demo_data import make
from .grafana_influxql import TimeRange, duration_ms, interpolate, panels

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")


class World:
    def __init__(self, url, db, demo, setup):
        self.url, self.db, self.demo, self.setup = url, db, demo, setup
        self.sites = {s.id: s for s in setup.sites}
        self.queries = 0

    def query(self, q: str) -> list[dict]:
        r = requests.get(f"{self.url}/query", params={"db": self.db, "q": q, "epoch": "ms"}, timeout=30)
        assert r.status_code == 200, (q, r.text)
        result = r.json()["results"][0]
        assert "error" not in result, (q, result["error"])
        self.queries += 1
        return result.get("series", [])


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    db = stack.new_database()
    now = int(time.time() * 1000) // 300_000 * 300_000
    demo = make(stack.influx_url, db, tmp_path_factory.mktemp("demo_data"), now)
    return World(stack.influx_url, db, demo, demo_setup())


def models() -> dict[str, dict]:
    return {key: json.loads((ROOT / "dashboards" / name).read_text("utf-8")) for key, name in FILES.items()}


def rows(series: list[dict]) -> list[dict]:
    out = []
    for s in series:
        for v in s["values"]:
            out.append({**s.get("tags", {}), **dict(zip(s["columns"], v))})
    return out


def in_range(tr: TimeRange, t: int) -> bool:
    return tr.now_ms - tr.span_ms <= t <= tr.now_ms


def site_of(query: str) -> str:
    return query.split('"site" = \'')[1].split("'")[0]


def override(panel: dict, name: str) -> dict:
    for o in panel["fieldConfig"]["overrides"]:
        if o["matcher"] == {"id": "byName", "options": name}:
            return {p["id"]: p["value"] for p in o["properties"]}
    raise AssertionError(f"panel {panel['title']!r} has no override for the series {name!r}")


def assert_limit_colours(w: World, panel: dict, site: str, param: str, name: str):
    """The series is named by the site's parameter, in Chinese, with the profile's limit as its steps."""
    props = override(panel, name)
    assert props["displayName"].startswith(w.setup.params[param].name)
    limit = w.sites[site].limits.get(param)
    if limit is not None:
        got = props["thresholds"]["steps"]
        assert got == [{"value": s.value, "color": s.color} for s in steps(limit)]
        if limit.max is not None:
            assert got[-1]["color"] == "red" and got[-1]["value"] > limit.max
            assert got[-1]["value"] == math.nextafter(limit.max, math.inf)
        if limit.min is not None:
            assert {"value": limit.min, "color": "green"} in got


# ----------------------------------------------------------------------------------- the checks

def ov_values(w, panel, target, series, tr, chosen):
    site = site_of(target["query"])
    want = {p: v for (s, p), (t, v) in w.demo.last_value.items() if s == site and in_range(tr, t)}
    got = {s["tags"]["param"]: s["values"][0][1] for s in series}
    assert set(got) == set(want) and want
    for p, v in got.items():
        assert v == pytest.approx(want[p])
        assert_limit_colours(w, panel, site, p, p)
    assert "var-site=" + site in panel["fieldConfig"]["defaults"]["links"][0]["url"]


def ov_age(w, panel, target, series, tr, chosen):
    site = site_of(target["query"])
    got = {s["tags"]["node"]: s["values"][0][0] for s in series}
    assert got == {n: t for (s, n), t in w.demo.latest_node_ts.items() if s == site}


def ov_online(w, panel, target, series, tr, chosen):
    site = site_of(target["query"])
    got = {s["tags"]["node"]: s["values"][0][1] for s in series}
    assert got == {n: on for (s, n), on in w.demo.online.items() if s == site}


def ov_flags(w, panel, target, series, tr, chosen):
    site = site_of(target["query"])
    got = {s["tags"]["param"]: s["values"][0][1] for s in series}
    assert got == {p: f for (s, p), (t, v, f) in w.demo.latest.items() if s == site}
    options = panel["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert all(f in options for f in got.values())


def ov_open(w, panel, target, series, tr, chosen):
    site = site_of(target["query"])
    n = sum(1 for a in w.demo.active if a["site"] == site)
    assert (series[0]["values"][0][1] if series else 0) == n
    assert n == (1 if site == "river_sec_03" else 0)


def sd_values(w, panel, target, series, tr, chosen):
    site = chosen["site"][0]
    want = {p for (s, p), (t, v) in w.demo.last_value.items() if s == site}
    got = {s["tags"]["param"] for s in series}
    assert got == want
    for s in series:
        assert s["columns"] == ["time", "mean"] and any(v[1] is not None for v in s["values"])
        assert_limit_colours(w, panel, site, s["tags"]["param"], f"{site}/{s['tags']['param']}")
        assert override(panel, f"{site}/{s['tags']['param']}").get("custom.thresholdsStyle", {"mode": "line+area"})
    for s in w.sites[site].limits:
        if s in got:
            assert override(panel, f"{site}/{s}")["custom.thresholdsStyle"] == {"mode": "line+area"}


def sd_flagged(w, panel, target, series, tr, chosen):
    site = chosen["site"][0]
    got = sorted((s["tags"]["param"], t, v) for s in series for t, v in s["values"])
    want = sorted((p, t, v) for s, p, t, v, f in w.demo.flagged if s == site and v is not None and in_range(tr, t))
    assert got == want
    assert bool(want) == (site == "qd_wwtp_outlet")


def sd_flag_timeline(w, panel, target, series, tr, chosen):
    site = chosen["site"][0]
    flags = {v for s in series for _, v in s["values"]}
    assert "N" in flags
    want = {f for s, p, t, v, f in w.demo.flagged if s == site}
    assert want <= flags  # M at the plant, B at the river (last reading of its interval)


def _means(w, panel, series, tr, chosen, period):
    site = chosen["site"][0]
    want = {(p.param, p.start): p.value.avg for p in w.demo.aggregates
            if p.site == site and p.period == period and in_range(tr, p.start) and p.value.avg is not None}
    got = {(s["tags"]["param"], t): v for s in series for t, v in s["values"]}
    assert set(got) == set(want) and want
    for k, v in got.items():
        assert v == pytest.approx(want[k])
    for s in series:
        assert_limit_colours(w, panel, site, s["tags"]["param"], f"{site}/{s['tags']['param']}")


def sd_hour(w, panel, target, series, tr, chosen):
    _means(w, panel, series, tr, chosen, "hour")


def sd_day(w, panel, target, series, tr, chosen):
    _means(w, panel, series, tr, chosen, "day")


def sd_day_table(w, panel, target, series, tr, chosen):
    site = chosen["site"][0]
    assert series and all(s["columns"] == ["time", "avg", "min", "max", "flag", "valid", "n", "count"] for s in series)
    days = [p for p in w.demo.aggregates if p.site == site and p.period == "day"]
    assert len(rows(series)) == len(days)


def al_open(w, panel, target, series, tr, chosen):
    got = {(r["site"], r["node"], r["param"], r["rule"]): r for r in rows(series)}
    want = {(a["site"], a["node"], a["param"], a["rule"]): a for a in w.demo.active if a["site"] in chosen["site"]}
    assert set(got) == set(want)
    raised = {(t["site"], t["node"], t["param"], t["rule"]): t for t in w.demo.transitions if t["event"] == "raised"}
    for k, r in got.items():
        assert r["state"] == "raised" and r["time"] == raised[k]["ts"] and r["limit"] == raised[k]["limit"]
        assert r["message"] == raised[k]["message"]
        assert r["limit"] == w.sites[k[0]].limits[k[2]].max or r["limit"] == w.sites[k[0]].limits[k[2]].min


def al_history(w, panel, target, series, tr, chosen):
    got = [(r["time"], r["site"], r["param"], r["state"]) for r in rows(series)]
    want = sorted(((t["ts"], t["site"], t["param"], t["event"]) for t in w.demo.transitions
                   if t["site"] in chosen["site"] and in_range(tr, t["ts"])), reverse=True)
    assert got == want and series[0]["columns"][:3] == ["time", "state", "site"]


def al_counts(w, panel, target, series, tr, chosen):
    got = {(s["tags"]["site"], s["tags"]["rule"]): s["values"][0][1] for s in series}
    want = defaultdict(int)
    for t in w.demo.transitions:
        if t["event"] == "raised" and t["site"] in chosen["site"] and in_range(tr, t["ts"]):
            want[(t["site"], t["rule"])] += 1
    assert got == dict(want) and want
    for site, rule in got:
        assert override(panel, f"{site}/{rule}")["displayName"].startswith(w.sites[site].name)


def anno_alarms(w, target, series, tr, chosen):
    got = rows(series)
    want = [t for t in w.demo.transitions if t["site"] in chosen["site"] and in_range(tr, t["ts"])]
    assert len(got) == len(want)
    assert {r["message"] for r in got} == {t["message"] for t in want}
    assert target["textColumn"] in series[0]["columns"] if series else not want


def _day(t):
    return datetime.fromtimestamp(t / 1000, TZ).date()


def co_daily(w, panel, target, series, tr, chosen):
    spreads = defaultdict(list)
    for t, site, node, f in w.demo.completeness:
        if site in chosen["site"] and in_range(tr, t):
            spreads[(site, node, _day(t))].append(f)
    got = {}
    for s in series:
        assert s["columns"] == ["time", "received", "expected", "missing"]
        for row in s["values"]:
            got[(s["tags"]["site"], s["tags"]["node"], _day(row[0]))] = tuple(row[1:])
            assert datetime.fromtimestamp(row[0] / 1000, TZ).hour == 0  # days of Asia/Shanghai
    want = {k: tuple(max(f[c] for f in fs) - min(f[c] for f in fs) for c in ("received", "expected", "missing"))
            for k, fs in spreads.items()}
    assert got == want
    assert any(v[2] == 5 for k, v in got.items() if k[0] == "qd_wwtp_outlet") == ("qd_wwtp_outlet" in chosen["site"])


def co_totals(w, panel, target, series, tr, chosen):
    last = {}
    for t, site, node, f in w.demo.completeness:
        if site in chosen["site"]:
            last[(site, node)] = f
    got = {(r["site"], r["node"]): r for r in rows(series)}
    assert set(got) == set(last)
    for k, f in last.items():
        assert {c: got[k][c] for c in f} == f


def co_late(w, panel, target, series, tr, chosen):
    site = site_of(target["query"])
    late_ms = w.sites[site].late_ms(w.setup.silent_periods)
    assert f'"lag_ms_max" > {late_ms}' in target["query"]
    want = defaultdict(int)
    for t, s, node, lag in w.demo.ingest:
        if s == site and s in chosen["site"] and lag > late_ms and in_range(tr, t):
            want[(node, _day(t))] += 1
    got = {(s["tags"]["node"], _day(v[0])): v[1] for s in series for v in s["values"]}
    assert got == dict(want)
    assert bool(want) == (site == "laixi_ent_07" and site in chosen["site"])


def co_lag(w, panel, target, series, tr, chosen):
    got = {(s["tags"]["site"], s["tags"]["node"]): max(v[1] for v in s["values"]) for s in series}
    assert {k[0] for k in got} == set(chosen["site"])
    for k, v in got.items():
        assert v == (120_000 if k == ("laixi_ent_07", "node01") else 350)


def co_quarantine(w, panel, target, series, tr, chosen):
    by_day = defaultdict(list)
    for t, q in w.demo.health:
        if in_range(tr, t):
            by_day[_day(t)].append(q)
    got = {_day(v[0]): v[1] for s in series for v in s["values"]}
    assert got == {d: max(qs) - min(qs) for d, qs in by_day.items()} and series[0]["tags"] == {"gateway": "demo-gateway"}


def fl_status(w, panel, target, series, tr, chosen):
    got = {(r["site"], r["node"]): r for r in rows(series)}
    want = {k: st for k, st in w.demo.status.items() if k[0] in chosen["site"]}
    assert set(got) == set(want)
    for k, st in want.items():
        r = got[k]
        assert (r["fw"], r["up"], r["heap"], r["rssi"], r["queue"], r["clock_offset_ms"]) == \
            (st.fw, st.up, st.heap, st.rssi, st.queue, 120.0)


def fl_online(w, panel, target, series, tr, chosen):
    got = {(r["site"], r["node"]): r["online"] for r in rows(series)}
    assert got == {k: v for k, v in w.demo.online.items() if k[0] in chosen["site"]}


def fl_boot(w, panel, target, series, tr, chosen):
    got = {(r["site"], r["node"]): r["time"] for r in rows(series)}
    assert got == {k: b[-1] for k, b in w.demo.boots.items() if k[0] in chosen["site"]}
    assert all(json.loads(r["boot"])["fw"] == "0.4.0" for r in rows(series))


def fl_boots(w, panel, target, series, tr, chosen):
    got = {(r["site"], r["node"]): r["boots"] for r in rows(series)}
    want = {k: sum(in_range(tr, b) for b in bs) for k, bs in w.demo.boots.items() if k[0] in chosen["site"]}
    assert got == {k: n for k, n in want.items() if n}


def fl_series(w, panel, target, series, tr, chosen):
    got = {(s["tags"]["site"], s["tags"]["node"]) for s in series}
    assert got == {k for k in w.demo.status if k[0] in chosen["site"]}
    for site, node in got:
        assert override(panel, f"{site}/{node}")["displayName"] == f"{w.sites[site].name}/{node}"


CHECKS = {  # (dashboard, panel title, refId) -> check
    ("overview", "最新监测值", "A"): ov_values, ("overview", "数据时效", "A"): ov_age,
    ("overview", "节点在线", "A"): ov_online, ("overview", "数据标记", "A"): ov_flags,
    ("overview", "未解除告警", "A"): ov_open,
    ("site", "监测值 · ${param}", "A"): sd_values, ("site", "监测值 · ${param}", "B"): sd_flagged,
    ("site", "数据标记", "A"): sd_flag_timeline, ("site", "小时均值（近 2 天）", "A"): sd_hour,
    ("site", "日均值（近 30 天）", "A"): sd_day, ("site", "日均值与有效性", "A"): sd_day_table,
    ("alarms", "未解除告警", "A"): al_open, ("alarms", "告警历史（产生与解除）", "A"): al_history,
    ("alarms", "各站点、各规则的告警次数", "A"): al_counts,
    ("completeness", "每日接收记录与应收记录", "A"): co_daily, ("completeness", "seq 缺口与重复（累计）", "A"): co_totals,
    ("completeness", "迟到记录（每日含迟到记录的上报窗口数）", "late*"): co_late,
    ("completeness", "最大到达延迟", "A"): co_lag, ("completeness", "每日隔离的报文（网关）", "A"): co_quarantine,
    ("fleet", "节点状态（时间范围内最新）", "A"): fl_status, ("fleet", "节点状态（时间范围内最新）", "B"): fl_online,
    ("fleet", "上次启动（运行时长）", "A"): fl_boot, ("fleet", "上次启动（运行时长）", "B"): fl_boots,
    ("fleet", "空闲内存", "A"): fl_series, ("fleet", "WiFi 信号", "A"): fl_series,
    ("fleet", "待发记录（闪存队列）", "A"): fl_series, ("fleet", "时钟偏差", "A"): fl_series,
}


def check_for(key, panel, target):
    ref = target["refId"]
    return CHECKS.get((key, panel["title"], ref)) or CHECKS.get((key, panel["title"], ref.rstrip("0123456789") + "*"))


def variable_values(w: World, model: dict, tr: TimeRange, site_choice: list[str] | None) -> dict[str, list[str]]:
    """Run the dashboard's variable queries as Grafana does (site first; param depends on it) and
    choose: site_choice (None: All), every parameter."""
    chosen: dict[str, list[str]] = {}
    for var in model["templating"].get("list", []):
        q = interpolate(var["query"], chosen, tr)
        options = sorted(v for s in w.query(q) for _, v in s["values"])
        if var["name"] == "site":
            assert options == sorted(w.sites)
            chosen["site"] = site_choice or options
        elif var["name"] == "param":
            assert options == sorted({p for (s, p) in w.demo.latest if s in chosen["site"]})
            chosen["param"] = options
    return chosen


@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "epoch-ms"])
def test_every_dashboard_query_returns_what_its_panel_shows(world, absolute):
    w = world
    ran, checked = 0, set()
    for key, model in models().items():
        span = duration_ms(model["time"]["from"])
        tr = TimeRange(w.demo.now_ms, span, absolute)
        names = {v["name"] for v in model["templating"].get("list", [])}
        if "param" in names:  # site detail: one site at a time
            choices = [[s] for s in sorted(w.sites)]
        elif "site" in names:
            choices = [None, ["laixi_ent_07"]]
        else:
            choices = [[]]
        for choice in choices:
            chosen = variable_values(w, model, tr, choice) if names else {}
            for panel in panels(model):
                assert panel["targets"], panel["title"]
                for target in panel["targets"]:
                    check = check_for(key, panel, target)
                    assert check is not None, f"no check for {key}: {panel['title']} {target['refId']}"
                    series = w.query(interpolate(target["query"], chosen, tr, panel))
                    check(w, panel, target, series, tr.for_panel(panel), chosen)
                    ran += 1
                    checked.add(check.__name__)
            for anno in model["annotations"].get("list", []):
                target = anno["target"]
                series = w.query(interpolate(target["query"], chosen, tr))
                anno_alarms(w, target, series, tr, chosen)
                ran += 1
    assert checked == {c.__name__ for c in CHECKS.values()}  # every check ran at least once
    print(f"\n{ran} panel/annotation queries checked (InfluxDB queries so far, variables included: {w.queries}), "
          f"{w.demo.lines} lines of demo data")
