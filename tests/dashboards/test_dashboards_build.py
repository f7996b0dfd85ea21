"""The dashboards as built (pure, no servers): the checked-in JSON is what the code builds, Grafana's
model (grafana-foundation-sdk's types) takes it unchanged, limits, names and units come from the
project's files (a changed profile or override changes the dashboards), uids are stable, and the
provisioning files parse and point at the datasource and the folder the dashboards use."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from edgemon.alarms.config import PROFILE_DIR
from edgemon.cli import main
from edgemon.configschema import ConfigError
from edgemon.dashboards import FILES, build_all, demo_setup, dump, load_setup, setup as setup_mod
from edgemon.dashboards.influxql import DATASOURCE_UID
from edgemon.dashboards.model_check import problems
from edgemon.dashboards.publish import FOLDER_UID

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "server" / "grafana" / "provisioning"
UIDS = ["edgemon-overview", "edgemon-site", "edgemon-alarms", "edgemon-completeness", "edgemon-fleet"]


@pytest.fixture(scope="module")
def built():
    return build_all(demo_setup())


def all_panels(model):
    for p in model["panels"]:
        yield p
        yield from p.get("panels", [])


def override(panel, name):
    for o in panel["fieldConfig"]["overrides"]:
        if o["matcher"]["options"] == name:
            return {p["id"]: p["value"] for p in o["properties"]}
    raise AssertionError(name)


def panel(model, title):
    return next(p for p in all_panels(model) if p["title"] == title and p["type"] != "row")


def grafana_colour(steps, value):
    """The colour Grafana gives a value: the last step whose value is at or below it."""
    colour = steps[0]["color"]
    for s in steps[1:]:
        if value >= s["value"]:
            colour = s["color"]
    return colour


def test_the_checked_in_dashboards_are_what_the_code_builds_and_grafanas_model_takes_them(built):
    for key, model in built.items():
        path = ROOT / "dashboards" / FILES[key]
        assert path.read_text("utf-8") == dump(model), f"{path} is stale: run edgemon dashboards build --demo"
        assert problems(model) == []
    broken = json.loads(json.dumps(built["site"]))
    broken["panels"][1]["fieldconfig"] = broken["panels"][1].pop("fieldConfig")
    broken["panels"][1]["options"]["legend"]["showlegend"] = True
    broken["panels"][2]["type"] = "graph-panel-x"
    found = problems(broken)
    assert any("panels[1].fieldconfig" in p for p in found)
    assert any("legend.showlegend" in p for p in found)
    assert any("graph-panel-x" in p for p in found)


def test_uids_titles_refresh_and_every_panel_queries_the_edgemon_datasource(built):
    assert [m["uid"] for m in built.values()] == UIDS
    assert sorted(FILES.values()) == sorted(f"{u}.json" for u in UIDS)
    for model in built.values():
        assert model["refresh"] == "10s" and model["timezone"] == "Asia/Shanghai"
        assert re.search(r"[\u4e00-\u9fff]", model["title"])
        for p in all_panels(model):
            if p["type"] == "row":
                continue
            assert re.search(r"[\u4e00-\u9fff]", p["title"]), p["title"]
            assert p["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}
            assert p["targets"] and all(t["rawQuery"] and t["query"].startswith(("SELECT", "SHOW"))
                                        and t["datasource"]["uid"] == DATASOURCE_UID for t in p["targets"])
        for v in model["templating"].get("list", []):
            assert v["query"].startswith("SHOW TAG VALUES") and v["datasource"]["uid"] == DATASOURCE_UID
    site_vars = {v["name"]: v for v in built["site"]["templating"]["list"]}
    assert site_vars["param"]["multi"] and '"site" =~ /^$site$/' in site_vars["param"]["query"]


def test_limits_as_grafana_colours_them_breach_only_beyond_the_limit(built):
    site = panel(built["site"], "监测值 · ${param}")
    cod = override(site, "laixi_ent_07/w01018")["thresholds"]["steps"]
    assert [grafana_colour(cod, v) for v in (39.9, 40.0, 40.0001)] == ["green", "green", "red"]
    ph = override(site, "river_sec_03/w01001")["thresholds"]["steps"]
    assert [grafana_colour(ph, v) for v in (5.99, 6.0, 9.0, 9.01)] == ["red", "green", "green", "red"]
    do = override(site, "river_sec_03/w01009")["thresholds"]["steps"]  # DO is a minimum
    assert [grafana_colour(do, v) for v in (4.9, 5.0)] == ["red", "green"]
    assert override(site, "laixi_ent_07/w00000")["displayName"] == "污水流量"  # no limit: no thresholds
    assert "thresholds" not in override(site, "laixi_ent_07/w00000") or \
        override(site, "laixi_ent_07/w00000")["thresholds"]["steps"] == [{"value": None, "color": "blue"}]
    nh3 = override(site, "qd_wwtp_outlet/w21003")["displayName"]
    assert nh3 == "氨氮（限值 ≤5 mg/L（水温≤12℃时 ≤8 mg/L））"


def write_config(tmp_path, cod_max, override_nh3=None, name="某站"):
    profile = (PROFILE_DIR / "gb18918-1a.toml").read_text("utf-8")
    profile = profile.replace("[limits.w01018]\nmax = 50.0", f"[limits.w01018]\nmax = {cod_max}")
    (tmp_path / "mine.toml").write_text(profile, encoding="utf-8")
    extra = f"[sites.s1.overrides.w21003]\nmax = {override_nh3}\n" if override_nh3 is not None else ""
    (tmp_path / "alarms.toml").write_text(
        f'[sites.s1]\nname = "{name}"\nprofile = "mine.toml"\n' + extra, encoding="utf-8")
    (tmp_path / "gateway.toml").write_text(
        '[gateway]\nstate_dir = "st"\n[mqtt]\npassword_env = "NOT_SET_ANYWHERE"\nusername = "gw"\n'
        '[influx]\nurl = "http://127.0.0.1:1"\ndatabase = "edge"\n[alarms]\nconfig = "alarms.toml"\n'
        '[liveness]\nsilent_periods = 4\n[aggregates]\ntimezone = "Asia/Urumqi"\n'
        '[sites.s1]\npoll_s = 15\nnodes = ["n1"]\n', encoding="utf-8")
    return tmp_path / "gateway.toml"


def red_step(models, name, dashboard="site", title="监测值 · ${param}"):
    return override(panel(models[dashboard], title), name)["thresholds"]["steps"][-1]["value"]


def test_a_changed_profile_or_override_changes_the_dashboards_thresholds(tmp_path):
    path = write_config(tmp_path, 33.3)
    models = build_all(load_setup(path))  # the gateway's secrets are not needed to build
    assert red_step(models, "s1/w01018") == math.nextafter(33.3, math.inf)
    assert red_step(models, "w01018", "overview", "最新监测值") == math.nextafter(33.3, math.inf)
    assert red_step(models, "s1/w21003") == math.nextafter(5.0, math.inf)
    models = build_all(load_setup(write_config(tmp_path, 44.0, override_nh3=1.5, name="新站名")))
    assert red_step(models, "s1/w01018") == math.nextafter(44.0, math.inf)
    assert red_step(models, "s1/w21003") == math.nextafter(1.5, math.inf)
    assert red_step(models, "s1/w01018", "site", "日均值（近 30 天）") == math.nextafter(44.0, math.inf)
    assert models["overview"]["panels"][0]["title"].startswith("新站名（s1）")
    assert models["site"]["timezone"] == "Asia/Urumqi"
    assert "tz('Asia/Urumqi')" in panel(models["completeness"], "每日接收记录与应收记录")["targets"][0]["query"]
    late = panel(models["completeness"], "迟到记录（每日含迟到记录的上报窗口数）")["targets"][0]["query"]
    assert '"lag_ms_max" > 60000' in late  # silent_periods 4 x poll_s 15
    daily = panel(models["completeness"], "每日接收记录与应收记录")
    assert override(daily, "s1/n1 received")["thresholds"]["steps"][-1]["value"] == 86400 / 15


def test_chinese_names_and_units_come_from_params_toml(tmp_path, monkeypatch, built):
    site = panel(built["site"], "监测值 · ${param}")
    assert override(site, "qd_wwtp_outlet/w01018")["unit"] == "suffix: mg/L"
    assert override(site, "qd_wwtp_outlet/w01001")["unit"] == "none"  # pH has no unit
    params = tmp_path / "params.toml"
    params.write_text((setup_mod.PARAMS_FILE.read_text("utf-8")).replace('name = "化学需氧量"', 'name = "COD测试名"'),
                      encoding="utf-8")
    monkeypatch.setattr(setup_mod, "PARAMS_FILE", params)
    models = build_all(demo_setup())
    assert override(panel(models["site"], "监测值 · ${param}"), "qd_wwtp_outlet/w01018")["displayName"].startswith("COD测试名")
    flags = panel(models["site"], "数据标记")["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert flags["M"]["text"] == "维护(M)" and flags["C"]["text"] == "校准(C)" and flags["B"]["text"] == "通讯异常(B)"


def test_config_errors_name_the_file_the_field_and_the_fix(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_setup(tmp_path / "nope.toml")
    assert "nope.toml" in str(exc.value) and "--config" in str(exc.value)
    path = write_config(tmp_path, 33.3)
    path.write_text(path.read_text().replace('config = "alarms.toml"', 'config = "gone.toml"'))
    with pytest.raises(ConfigError) as exc:
        load_setup(path)
    assert "alarms.config" in str(exc.value) and "gone.toml" in str(exc.value)
    runner = CliRunner()
    r = runner.invoke(main, ["dashboards", "build", "--config", str(path), "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and "alarms.config" in r.output and "fix" in r.output.lower()
    r = runner.invoke(main, ["dashboards", "build", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "--config" in r.output
    r = runner.invoke(main, ["dashboards", "build", "--demo", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(FILES.values())


def env_refs(value: str) -> list[str]:
    return re.findall(r"\$__env\{(\w+)\}", value)


def test_provisioning_files_parse_and_point_at_the_datasource_and_folder_the_dashboards_use(tmp_path):
    ds_doc = yaml.safe_load((PROVISIONING / "datasources" / "edgemon.yaml").read_text("utf-8"))
    (ds,) = ds_doc["datasources"]
    assert ds_doc["apiVersion"] == 1 and ds["uid"] == DATASOURCE_UID and ds["type"] == "influxdb"
    assert ds["jsonData"]["version"] == "InfluxQL"
    assert env_refs(ds["database"]) == env_refs(ds["jsonData"]["dbName"]) == ["EDGEMON_INFLUX_DB"]
    for value in (ds["url"], ds["user"], ds["secureJsonData"]["password"]):
        assert env_refs(value) and value == f"$__env{{{env_refs(value)[0]}}}"  # nothing literal, no secret
    assert "password" not in ds["jsonData"]
    prov = yaml.safe_load((PROVISIONING / "dashboards" / "edgemon.yaml").read_text("utf-8"))
    (p,) = prov["providers"]
    assert p["type"] == "file" and p["folderUid"] == FOLDER_UID
    (var,) = env_refs(p["options"]["path"])
    folder = Path(os.path.expandvars(p["options"]["path"].replace("$__env{", "${")).replace(
        f"${{{var}}}", str(ROOT / "dashboards")))
    assert sorted(x.name for x in folder.glob("*.json")) == sorted(FILES.values())
    for f in folder.glob("*.json"):
        model = json.loads(f.read_text("utf-8"))
        assert {t["datasource"]["uid"] for q in all_panels(model) for t in q.get("targets", [])} <= {DATASOURCE_UID}
    shutil.rmtree(tmp_path, ignore_errors=True)
