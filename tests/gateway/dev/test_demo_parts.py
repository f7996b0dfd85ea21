"""The demo's pure parts: how its values move, the names it shows, why it says it failed; and the
read-only commands that find the gateway's state folder from gateway.toml."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from edgemon.cli import main
from edgemon.dev.demo import Demo
from edgemon.dev.demo_sites import SITES
from edgemon.dev.demo_view import explaining_line, fmt_value, param_names


def _analyzer(profile):
    return next(a for s in SITES for n in s.nodes for a in n.analyzers if a.profile == profile)


def test_flow_totaliser_integrates_the_flow_and_never_goes_back():
    flow = _analyzer("flow_lmag")
    totals: dict[str, float] = {}
    first = flow.step(1000.0, 0.0, 600.0, {}, totals, noise=False)
    assert first["w00001"] == pytest.approx(flow.totals["w00001"].start)
    values = [first]
    for i in range(1, 11):
        values.append(flow.step(1000.0 + 10 * i, 10.0, 600.0, {}, totals, noise=False))
    # L/s x s / 1000 = m3, step by step
    for before, after in zip(values, values[1:]):
        assert after["w00001"] == pytest.approx(before["w00001"] + after["w00000"] * 10 * 0.001, abs=2e-3)
        assert after["w00001"] > before["w00001"]


def test_energy_register_and_phase_currents_follow_the_power():
    meter = _analyzer("energy_meter_3ph")
    totals: dict[str, float] = {}
    meter.step(0.0, 0.0, 600.0, {}, totals, noise=False)
    v = meter.step(3600.0, 3600.0, 600.0, {}, totals, noise=False)
    assert v["p03001"] == pytest.approx(meter.totals["p03001"].start + v["p02001"], rel=1e-6)  # kW x 1 h = kWh
    for phase in ("p01001", "p01002", "p01003"):
        assert 1.6 * v["p02001"] < v[phase] < 1.8 * v["p02001"]


def test_every_demo_parameter_has_its_chinese_name_and_unit():
    names = param_names()
    missing = []
    for s in SITES:
        for n in s.nodes:
            for a in n.analyzers:
                for p in a.params():
                    zh, _short, unit = names.get(p, ("", "", ""))
                    if not any("\u4e00" <= c <= "\u9fff" for c in zh) or (not unit and p != "w01001"):
                        missing.append(p)
    assert missing == []


def test_values_read_at_a_glance():
    assert fmt_value(152345.678) == "152345.7"
    assert fmt_value(57.3) == "57.3" and fmt_value(0.1234) == "0.123" and fmt_value(None) == "—"


def test_the_line_that_explains_a_log(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("starting\nINFO fine\nTraceback (most recent call last):\n  File \"a\", line 1\n"
                   "KeyError: 'thread_restarts'\nafter\n")
    assert explaining_line(log) == "KeyError: 'thread_restarts'"
    log.write_text("starting\nconfig error: node.json: poll_s: must be a number > 0, got -1\nbye\n")
    assert explaining_line(log) == "config error: node.json: poll_s: must be a number > 0, got -1"
    log.write_text("one\ntwo\n")
    assert explaining_line(log) == "two"
    assert explaining_line(tmp_path / "none.log") is None


def test_no_record_within_the_timeout_is_a_failure_naming_the_log_line(tmp_path):
    demo = Demo(tmp_path / "run", poll_s=2, day_s=600, breach_at_s=20, breach_for_s=20, first_record_timeout_s=60)
    demo.run_dir.mkdir(parents=True, exist_ok=True)
    (demo.run_dir / "gateway.log").write_text("level=ERROR msg=\"MQTT connect refused: not authorised\"\n")
    assert demo.failure(rows_seen=False) is None  # still within the minute
    demo.started = time.time() - 61
    why = demo.failure(rows_seen=False)
    assert why.startswith("no record reached InfluxDB within 60 s") and "not authorised" in why
    assert demo.failure(rows_seen=True) is None


def _gateway_toml(folder, state_dir="gw-state"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "gateway.toml"
    path.write_text(f'[gateway]\nstate_dir = "{state_dir}"\n[mqtt]\nhost = "127.0.0.1"\n')
    return path


def test_quarantine_list_reads_the_folder_named_in_gateway_toml(tmp_path, monkeypatch):
    cfg = _gateway_toml(tmp_path / "etc")
    monkeypatch.chdir(tmp_path)  # state_dir is relative to gateway.toml's folder, not to here
    r = CliRunner().invoke(main, ["quarantine", "list", "--config", str(cfg)])
    assert r.exit_code == 1 and "etc/gw-state: no such folder (from gateway.state_dir in" in r.output, r.output
    state = tmp_path / "etc" / "gw-state"
    state.mkdir()
    r = CliRunner().invoke(main, ["quarantine", "list", "--config", str(cfg)])
    assert r.exit_code == 0 and "no quarantined payloads in" in r.output, r.output
    (state / "quarantine.jsonl").write_text(json.dumps({"received_ms": 1764633600000, "topic": "edge/v1/a/b/data",
                                                        "reason": "not JSON", "payload": "{{"}) + "\n")
    r = CliRunner().invoke(main, ["quarantine", "list", "--config", str(cfg)])
    assert r.exit_code == 0 and "not JSON" in r.output and "1 of 1 entries" in r.output, r.output
    r = CliRunner().invoke(main, ["quarantine", "count", "--state-dir", str(tmp_path / "nowhere")])
    assert r.exit_code == 1 and "no such folder (from --state-dir)" in r.output


def test_alarms_list_shows_history_and_refuses_a_missing_folder(tmp_path):
    cfg = _gateway_toml(tmp_path, state_dir=str(tmp_path / "state"))
    r = CliRunner().invoke(main, ["alarms", "list", "--config", str(cfg)])
    assert r.exit_code == 1 and "alarms: no such folder" in r.output, r.output
    alarms = tmp_path / "state" / "alarms"
    alarms.mkdir(parents=True)
    raised = {"event": "raised", "site": "s1", "node": "n1", "param": "w01018", "rule": "instant",
              "ts": 1764633600000, "episode": "e1", "value": 57.3, "limit": 40.0}
    cleared = dict(raised, event="cleared", ts=1764633660000, value=30.1)
    # the raise twice, as a crash between the state write and the history append leaves it
    (alarms / "alarm_history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in (raised, raised, cleared))
                                                + '{"torn')
    r = CliRunner().invoke(main, ["alarms", "list", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if "s1/n1 w01018" in ln]
    assert len(lines) == 2 and "raised" in lines[0] and "cleared" in lines[1], r.output
    assert "12月02日08:00" in lines[0]  # Beijing time
    assert "no active alarms" in r.output


@pytest.mark.parametrize("spec", ["siteA", "siteA/n 1", "a/b/c", "/n1"])
def test_stack_refuses_a_bad_node_before_starting_anything(spec, tmp_path):
    r = CliRunner().invoke(main, ["stack", "--run-dir", str(tmp_path / "s"), "--node", spec])
    assert r.exit_code == 2 and "expected SITE/NODE" in r.output, r.output
    assert not (tmp_path / "s" / "mosquitto").exists()
