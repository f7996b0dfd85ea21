"""The observer with its real edges: state files, outbox, the sender on a simulated modem (pty)."""

import json
import time

import pytest
from click.testing import CliRunner

from edgemon.alarms.observer import AlarmObserver
from edgemon.cli import main
from edgemon.dev.modemsim import ModemSimulator

from .helpers import BASE, DUTY, MIN, T0, config, rec
from ..sms.pdudecoder import join_messages

SITES = """
[sites.plant]
name = "莱西市污水处理厂"
profile = "laixi-plant"
roles = { duty = ["duty"] }
[sites.plant.rules.instant]
raise_n = 1
clear_n = 1
"""


@pytest.fixture
def sim(tmp_path):
    (tmp_path / "dev").mkdir()
    s = ModemSimulator(tmp_path / "dev").start()
    yield s
    s.stop()


def _cfg(tmp_path, port):
    base = BASE.replace("[sms]", f'[sms]\nport = "{port}"\ncommand_timeout_s = 1\nsend_timeout_s = 1')
    return config(tmp_path, SITES, base)


def _wait(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_breach_sends_chinese_sms_and_writes_alarm_point(tmp_path, sim):
    written = []
    obs = AlarmObserver(_cfg(tmp_path, sim.path), tmp_path / "state", written.extend)
    try:
        obs.on_records("plant", "n1", [rec(T0, 1, w01018=47.5)], T0 + 200)
        assert sim.wait_for(1)
        assert _wait(lambda: any(ln.startswith("alarm,") for ln in written))
        obs.on_records("plant", "n1", [rec(T0 + MIN, 2, w01018=20.0)], T0 + MIN + 200)
        assert sim.wait_for(2)
        assert _wait(lambda: sum(ln.startswith("sms,") for ln in written) == 2)
    finally:
        obs.stop()
    (n1, raise_text), (n2, clear_text) = join_messages([r.pdu for r in sim.received])
    assert n1 == n2 == DUTY
    assert raise_text.startswith("【超标预警】莱西市污水处理厂化学需氧量监测值47.5mg/L，超过限值40mg/L")
    assert clear_text.startswith("【告警解除】莱西市污水处理厂化学需氧量超标已恢复正常")
    alarm_lines = [ln for ln in written if ln.startswith("alarm,")]
    assert [('state="raised"' in ln, 'state="cleared"' in ln) for ln in alarm_lines] == [(True, False), (False, True)]
    audit = [json.loads(x) for x in (tmp_path / "state" / "sms_audit.jsonl").read_text().splitlines()]
    assert [(a["to"], a["result"], a["kind"]) for a in audit] == [(DUTY, "sent", "alarm"), (DUTY, "sent", "clear")]


def test_restart_keeps_the_episode_no_second_sms_and_the_clear_is_not_lost(tmp_path, sim):
    written = []
    cfg = _cfg(tmp_path, sim.path)
    obs = AlarmObserver(cfg, tmp_path / "state", written.extend)
    obs.on_records("plant", "n1", [rec(T0, 1, w01018=47.5)], T0)
    assert sim.wait_for(1)
    obs.stop()
    obs = AlarmObserver(cfg, tmp_path / "state", written.extend)  # gateway restarted
    try:
        assert [a["param"] for a in obs.active()] == ["w01018"]
        obs.on_records("plant", "n1", [rec(T0 + MIN, 2, w01018=48.0)], T0 + MIN)  # still breaching
        time.sleep(0.3)
        assert len(sim.received) == 1
        obs.on_records("plant", "n1", [rec(T0 + 2 * MIN, 3, w01018=10.0)], T0 + 2 * MIN)
        assert sim.wait_for(2)
    finally:
        obs.stop()
    texts = [t for _, t in join_messages([r.pdu for r in sim.received])]
    assert texts[0].startswith("【超标预警】") and texts[1].startswith("【告警解除】")


def test_modem_unplugged_message_waits_on_disk_across_restart(tmp_path, sim):
    cfg = _cfg(tmp_path, sim.path)
    sim.unplug()
    obs = AlarmObserver(cfg, tmp_path / "gw" / "alarms", lambda lines: None)
    obs.on_records("plant", "n1", [rec(T0, 1, w01018=47.5)], T0)
    time.sleep(0.3)
    obs.stop()
    # --state-dir is the gateway's state folder; the alarm state is in its alarms/
    r = CliRunner().invoke(main, ["alarms", "list", "--state-dir", str(tmp_path / "gw")])
    assert r.exit_code == 0 and "plant/n1 w01018 instant" in r.output and "1 SMS waiting" in r.output
    assert "raised" in r.output.split("active alarm")[0]  # the history shows the raise too
    sim.replug()
    obs = AlarmObserver(cfg, tmp_path / "gw" / "alarms", lambda lines: None)
    try:
        assert sim.wait_for(1)
    finally:
        obs.stop()
    assert join_messages([r.pdu for r in sim.received])[0][1].startswith("【超标预警】莱西市污水处理厂")


def test_crash_after_state_commit_redoes_the_handoff_once(tmp_path, sim):
    """The state file holds the decision (handoff) but the outbox never got the message."""
    cfg = _cfg(tmp_path, sim.path)
    obs = AlarmObserver(cfg, tmp_path / "state", lambda lines: None, start_sender=False)
    obs._deliver = lambda handoff: None  # the process dies right after commit (1)
    obs.on_records("plant", "n1", [rec(T0, 1, w01018=47.5)], T0)
    obs.lines.stop()
    state = json.loads((tmp_path / "state" / "alarms_state.json").read_text())
    assert state["handoff"]["messages"] and not (tmp_path / "state" / "sms_outbox.json").exists() or \
        json.loads((tmp_path / "state" / "sms_outbox.json").read_text())["queue"] == []
    written = []
    for _ in range(2):  # two restarts: the handoff is redone, the outbox takes it once
        obs = AlarmObserver(cfg, tmp_path / "state", written.extend)
        assert sim.wait_for(1)
        obs.stop()
    time.sleep(0.2)
    assert len(sim.received) == 1
    assert sum(ln.startswith("alarm,") for ln in written) >= 1


def test_sms_test_command_through_the_modem(tmp_path, sim):
    cfg_path = tmp_path / "alarms.toml"
    cfg_path.write_text(f'[sms]\nport = "{sim.path}"\n', encoding="utf-8")
    r = CliRunner().invoke(main, ["sms", "test", "+8613912345678", "--config", str(cfg_path)])
    assert r.exit_code == 0, r.output
    assert "registered" in r.output and "1 part(s)" in r.output
    assert join_messages([x.pdu for x in sim.received]) == [("+8613912345678", "【测试】在线监测短信告警通道测试，收到请忽略。")]
    sim.unplug()
    r = CliRunner().invoke(main, ["sms", "test", "+8613912345678", "--config", str(cfg_path)])
    assert r.exit_code == 1 and "cannot open modem port" in r.output
