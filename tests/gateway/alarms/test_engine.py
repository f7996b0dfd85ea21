"""The alarm core, pure and fast: each rule kind, the state machine, notification policy."""

import pytest

from edgemon.alarms.engine import Engine, new_mem

from .helpers import BASE, CHIEF, DUTY, MIN, T0, config, rec, status

SITE = """
[sites.plant]
name = "莱西市污水处理厂"
profile = "laixi-plant"
roles = {{ duty = ["duty"], escalation = ["chief"] }}
escalate_after_min = 30
{rules}
"""


def engine(tmp_path, rules: str, extra: str = ""):
    return Engine(config(tmp_path, SITE.format(rules=rules) + extra)), new_mem()


def feed(eng, mem, values, start=T0, step=MIN, node="n1", param="w01018", recv_delay=500):
    outs = []
    for i, v in enumerate(values):
        ts = start + i * step
        outs.append(eng.records(mem, "plant", node, [rec(ts, i, **{param: v})], ts + recv_delay))
    return outs


def events(outs):
    return [(t["event"], t["rule"], t["param"]) for o in outs for t in o.transitions]


def test_instant_debounce_raise_once_then_clear_after_hysteresis(tmp_path):
    eng, mem = engine(tmp_path, "[sites.plant.rules.instant]\nraise_n = 3\nclear_n = 2\nhysteresis = 0.1")
    # COD limit 40 (Laixi). Two breaches are not enough; the third raises; more breaches raise nothing.
    outs = feed(eng, mem, [41, 42, 39, 45, 46, 47, 50, 51])
    assert events(outs) == [("raised", "instant", "w01018")]
    assert [i for i, o in enumerate(outs) if o.transitions] == [5]
    t = outs[5].transitions[0]
    assert t["start_ts"] == T0 + 3 * MIN and t["value"] == 47 and t["limit"] == 40
    assert [n.to for n in outs[5].notices] == [DUTY]
    assert "化学需氧量" in t["message"] and "47" in t["message"] and "40" in t["message"]
    assert "11月25日00:03" in t["message"]  # start in Asia/Shanghai
    # 38 is within 10 % of the limit: does not count towards clearing; 35, 34 do (clear_n = 2).
    outs = feed(eng, mem, [38, 37, 35, 34], start=T0 + 8 * MIN)
    assert events(outs) == [("cleared", "instant", "w01018")]
    clear = outs[3].transitions[0]
    assert "恢复" in clear["message"] and clear["ts"] == T0 + 11 * MIN
    assert [n.to for n in outs[3].notices] == [DUTY]
    assert mem["alarms"] == {}


def test_alarm_point_has_the_design_schema(tmp_path):
    eng, mem = engine(tmp_path, "[sites.plant.rules.instant]\nraise_n = 1")
    out = feed(eng, mem, [44.5])[0]
    (line,) = out.lines
    head, fields, ts = line.rsplit(" ", 2)[0].split(" ", 1)[0], line.split(" ", 1)[1].rsplit(" ", 1)[0], line.rsplit(" ", 1)[1]
    assert head == "alarm,node=n1,param=w01018,rule=instant,site=plant"
    assert fields.startswith('state="raised",value=44.5,limit=40.0,message="')
    assert ts == str(T0)


def test_non_normal_flags_never_count_and_are_reported(tmp_path):
    eng, mem = engine(tmp_path, "[sites.plant.rules.instant]\nraise_n = 2\nclear_n = 2")
    outs = feed(eng, mem, [(90, "M"), (95, "C"), (99, "D"), (80, "T")])
    assert events(outs) == [] and mem["alarms"] == {}
    outs = feed(eng, mem, [45, (60, "M"), (60, "C"), 46, 20, 20], start=T0 + 10 * MIN)
    assert events(outs) == [("raised", "instant", "w01018"), ("cleared", "instant", "w01018")]
    assert outs[3].transitions[0]["value"] == 46
    clear = outs[5].transitions[0]
    assert clear["excluded"] == {"M": 1, "C": 1}
    assert "其间2条校准(C)、维护(M)数据未计入" in clear["message"]


def test_ph_range_low_and_high(tmp_path):
    eng, mem = engine(tmp_path, "[sites.plant.rules.instant]\nraise_n = 1\nclear_n = 1\nparams = [\"w01001\"]")
    outs = feed(eng, mem, [7.0, 5.5, 7.2, 9.6], param="w01001")
    assert events(outs) == [("raised", "instant", "w01001"), ("cleared", "instant", "w01001"),
                            ("raised", "instant", "w01001")]
    assert outs[1].transitions[0]["limit"] == 6.0 and "6-9" in outs[1].transitions[0]["message"]
    assert outs[3].transitions[0]["limit"] == 9.0


def test_nh3n_limit_follows_water_temperature(tmp_path):
    eng, mem = engine(tmp_path, "[sites.plant.rules.instant]\nraise_n = 1", "")
    eng2 = Engine(config(tmp_path, SITE.format(rules="profile_unused = 1") if False else
                         SITE.replace('profile = "laixi-plant"', 'profile = "gb18918-1a"').format(
                             rules="[sites.plant.rules.instant]\nraise_n = 1")))
    mem = new_mem()
    # 1-A: NH3-N 5 above 12 °C, 8 at or below 12 °C.
    cold = eng2.records(mem, "plant", "n1", [rec(T0, 1, w01010=10.0, w21003=6.5)], T0)
    assert cold.transitions == []
    warm = eng2.records(mem, "plant", "n1", [rec(T0 + MIN, 2, w01010=15.0, w21003=6.5)], T0 + MIN)
    assert [(t["event"], t["limit"]) for t in warm.transitions] == [("raised", 5.0)]


def test_daily_mean_judged_on_calendar_day_of_shanghai(tmp_path):
    eng, mem = engine(tmp_path, '[sites.plant.rules.daily]\nkind = "mean"\nwindow = "1d"\nmin_valid = 3')
    # Day 1: samples every 2 h, mean 42 > 40 (one flagged 200 excluded); judged when day 2 starts.
    vals = [38, 46, 42, (200, "M"), 40, 44]
    outs = feed(eng, mem, vals, step=120 * MIN)
    assert events(outs) == []
    out = eng.records(mem, "plant", "n1", [rec(T0 + 24 * 60 * MIN + 5, 99, w01018=10.0)], T0 + 24 * 60 * MIN)
    (t,) = out.transitions
    assert (t["event"], t["rule"], t["value"], t["ts"]) == ("raised", "daily", 42.0, T0 + 24 * 60 * MIN)
    assert t["detail"]["excluded"] == {"M": 1} and "日均值" in t["message"]
    # Day 2 is judged by the clock tick after its end + grace, even with no further sample.
    out = eng.tick(mem, T0 + 48 * 60 * MIN + 11 * MIN)
    assert events([out]) == []  # only one valid sample: not judged (min_valid 3)
    assert mem["alarms"]  # so the day-1 alarm stays raised


def test_daily_mean_is_flow_weighted_where_flow_is_measured(tmp_path):
    # COD 30 at 300 L/s and 60 at 100 L/s: weighted (30*300 + 60*100) / 400 = 37.5 (within 40);
    # the arithmetic mean 45 would breach. With weighting = "arithmetic" it does.
    def day(rules):
        eng, mem = engine(tmp_path, rules)
        samples = [rec(T0, 1, w01018=30.0, w00000=300.0), rec(T0 + 60 * MIN, 2, w01018=60.0, w00000=100.0)]
        eng.records(mem, "plant", "n1", samples, T0 + 61 * MIN)
        return eng.records(mem, "plant", "n1", [rec(T0 + 24 * 60 * MIN, 3, w01018=10.0)], T0 + 24 * 60 * MIN)
    assert day('[sites.plant.rules.daily]\nkind = "mean"\nwindow = "1d"').transitions == []
    (t,) = day('[sites.plant.rules.daily]\nkind = "mean"\nwindow = "1d"\nweighting = "arithmetic"').transitions
    assert (t["event"], t["value"]) == ("raised", 45.0)
    assert t["detail"]["weighted"] is False


def test_hourly_mean_clears_on_a_clean_hour(tmp_path):
    eng, mem = engine(tmp_path, '[sites.plant.rules.hourly]\nkind = "mean"\nwindow = "1h"')
    outs = feed(eng, mem, [50] * 6 + [30] * 6 + [30], step=10 * MIN)
    assert events(outs) == [("raised", "hourly", "w01018"), ("cleared", "hourly", "w01018")]


def test_rate_of_change(tmp_path):
    eng, mem = engine(tmp_path, '[sites.plant.rules.rate]\nparams = ["w01018"]\nmax_per_min = 5.0\nclear_n = 1')
    outs = feed(eng, mem, [20, 22, 35, 36])
    assert events(outs) == [("raised", "rate", "w01018"), ("cleared", "rate", "w01018")]
    assert outs[2].transitions[0]["value"] == 13.0


def test_flatline_after_hours_without_movement(tmp_path):
    eng, mem = engine(tmp_path, '[sites.plant.rules.flatline]\nparams = ["w01018"]\nepsilon = 0.05\nhours = 2')
    outs = feed(eng, mem, [30.0, 30.02, 29.98, 30.01, 30.0], step=30 * MIN)  # 2 h at t=4
    assert events(outs) == [("raised", "flatline", "w01018")]
    assert "2小时" in outs[4].transitions[0]["message"]
    outs = feed(eng, mem, [31.0], start=T0 + 150 * MIN, step=30 * MIN)
    assert events(outs) == [("cleared", "flatline", "w01018")]


def test_offline_by_receive_time_and_back(tmp_path):
    eng, mem = engine(tmp_path, '[sites.plant.rules.offline]\nafter_min = 10')
    eng.records(mem, "plant", "n1", [rec(T0, 1, w01018=30.0)], T0)
    assert eng.tick(mem, T0 + 9 * MIN).transitions == []
    out = eng.tick(mem, T0 + 10 * MIN)
    assert events([out]) == [("raised", "offline", "node")]
    assert "离线10分钟" in out.transitions[0]["message"]
    assert eng.tick(mem, T0 + 11 * MIN).transitions == []  # one raise per episode
    out = eng.status(mem, "plant", "n1", status("online"), T0 + 12 * MIN)
    assert events([out]) == [("cleared", "offline", "node")]


def test_analyzer_fault_flag_for_n_minutes(tmp_path):
    eng, mem = engine(tmp_path, '[sites.plant.rules.flag]\nafter_min = 20')
    outs = feed(eng, mem, [(None, "D"), (None, "D"), (None, "B")], step=10 * MIN)
    assert events(outs) == [("raised", "flag", "w01018")]
    assert "故障(D)、通讯异常(B)" in outs[2].transitions[0]["message"]
    outs = feed(eng, mem, [(None, "M")], start=T0 + 30 * MIN)  # maintenance is not a fault: clears
    assert events(outs) == [("cleared", "flag", "w01018")]


def test_clock_none_and_skew(tmp_path):
    eng, mem = engine(tmp_path, '[sites.plant.rules.clock]\nmax_ahead_s = 60\nraise_n = 1\nclear_n = 1')
    out = eng.records(mem, "plant", "n1", [rec(T0, 1, clk="none", w01018=1.0)], T0)
    assert events([out]) == [("raised", "clock", "clock")]
    out = eng.records(mem, "plant", "n1", [rec(T0 + MIN, 2, w01018=1.0)], T0 + MIN + 100)
    assert events([out]) == [("cleared", "clock", "clock")]
    out = eng.records(mem, "plant", "n1", [rec(T0 + 10 * MIN, 3, w01018=1.0)], T0 + 5 * MIN)
    assert events([out]) == [("raised", "clock", "clock")] and "超前300秒" in out.transitions[0]["message"]
    # A replayed batch with old sample times is not a clock problem.
    eng2, mem2 = engine(tmp_path, '[sites.plant.rules.clock]\nraise_n = 1')
    batch = [rec(T0 - 5 * 3600_000 + i, i, w01018=1.0) for i in range(3)]
    assert eng2.records(mem2, "plant", "n1", batch, T0).transitions == []


def test_facility_idle_across_two_nodes(tmp_path):
    rules = ('[sites.plant.rules.idle]\nkind = "facility_idle"\npower_node = "pw"\npower_param = "e01001"\n'
             'flow_node = "fl"\nthreshold = 1.0\nafter_min = 10\nmax_age_s = 3600')
    eng, mem = engine(tmp_path, rules)
    out = []
    for i in range(4):
        ts = T0 + i * 5 * MIN
        out.append(eng.records(mem, "plant", "pw", [rec(ts, i, e01001=0.2)], ts))
        out.append(eng.records(mem, "plant", "fl", [rec(ts + 1000, i, w00000=12.5)], ts + 1000))
    assert events(out) == [("raised", "idle", "e01001")]
    assert [i for i, o in enumerate(out) if o.transitions] == [5]  # 10 min after the first idle sample
    out = eng.records(mem, "plant", "fl", [rec(T0 + 30 * MIN, 9, w00000=0.0)], T0 + 30 * MIN)
    out2 = eng.records(mem, "plant", "fl", [rec(T0 + 31 * MIN, 10, w00000=0.0)], T0 + 31 * MIN)
    assert events([out, out2]) == [("cleared", "idle", "e01001")]


def test_escalation_once_then_clear_reaches_both(tmp_path):
    eng, mem = engine(tmp_path, "[sites.plant.rules.instant]\nraise_n = 1\nclear_n = 1")
    feed(eng, mem, [50])
    assert eng.tick(mem, T0 + 29 * MIN).notices == []
    out = eng.tick(mem, T0 + 31 * MIN)
    assert [(n.to, n.kind) for n in out.notices] == [(CHIEF, "escalation")]
    assert "升级告警" in out.notices[0].text and "化学需氧量" in out.notices[0].text
    assert eng.tick(mem, T0 + 90 * MIN).notices == []
    outs = feed(eng, mem, [10], start=T0 + 91 * MIN)
    assert sorted(n.to for n in outs[0].notices) == sorted([DUTY, CHIEF])


def test_many_alarms_at_once_become_one_summary(tmp_path):
    eng, mem = engine(tmp_path, "[sites.plant.rules.instant]\nraise_n = 1")
    params = dict(w01018=50.0, w21003=3.0, w21011=0.9, w21001=20.0, w01017=15.0, w01012=12.0, w01001=10.0)
    out = eng.records(mem, "plant", "n1", [rec(T0, 1, **params)], T0)
    assert len(out.transitions) == 7
    assert len(out.notices) == 3  # the burst limit: 3 now
    assert eng.tick(mem, T0 + 30_000).notices == []  # the rest waits for the burst window
    out = eng.tick(mem, T0 + 61_000)
    (summary,) = out.notices
    assert summary.kind == "summary" and summary.to == DUTY
    assert summary.text.startswith("【告警汇总】4条") and "莱西市污水处理厂" in summary.text


def test_same_event_is_not_sent_twice_within_dedup_window(tmp_path):
    eng, mem = engine(tmp_path, "[sites.plant.rules.instant]\nraise_n = 1\nclear_n = 1\nhysteresis = 0")
    outs = feed(eng, mem, [50, 30, 50, 30])  # flapping within minutes
    assert events(outs) == [("raised", "instant", "w01018"), ("cleared", "instant", "w01018")] * 2
    assert [len(o.notices) for o in outs] == [1, 1, 0, 0]
    assert [len(o.dropped) for o in outs] == [0, 0, 1, 1]
    assert all(len(o.lines) == 1 for o in outs)  # every transition is still an alarm point


def test_hourly_rate_limit_holds_messages_for_a_later_summary(tmp_path):
    base = BASE.replace("rate_per_hour = 20", "rate_per_hour = 2")
    eng = Engine(config(tmp_path, SITE.format(rules="[sites.plant.rules.instant]\nraise_n = 1\nclear_n = 1"), base))
    mem = new_mem()
    sent = 0
    for i in range(4):
        params = {"w01018": 50.0 if i % 2 == 0 else 10.0}
        sent += len(eng.records(mem, "plant", "n1", [rec(T0 + i * 11 * MIN, i, **params)], T0 + i * 11 * MIN).notices)
    assert sent == 2
    assert eng.tick(mem, T0 + 40 * MIN).notices == []
    (summary,) = eng.tick(mem, T0 + 61 * MIN).notices
    assert summary.kind == "summary" and "2条" in summary.text


def test_unknown_site_is_ignored(tmp_path):
    eng, mem = engine(tmp_path, "[sites.plant.rules.instant]\nraise_n = 1")
    assert eng.records(mem, "elsewhere", "n1", [rec(T0, 1, w01018=99.0)], T0).transitions == []


def test_durations_read_naturally_in_chinese():
    from edgemon.alarms.messages import duration

    assert duration(20_000) == "20秒"
    assert duration(59_999) == "59秒"
    assert duration(60_000) == "1分钟"
    assert duration(3_600_000 + 5 * 60_000) == "1小时5分钟"
    assert duration(2 * 86_400_000 + 3 * 3_600_000) == "2天3小时"


def test_queue_overflow_event_raises_once_and_clears_after_a_quiet_hour(tmp_path):
    from edgemon.contract import Event

    eng, mem = engine(tmp_path, "[sites.plant.rules.queue_overflow]\nclear_after_min = 60")
    lost = Event(ts=T0, kind="queue_overflow", detail={"dropped": 168, "total": 168, "lost": 168})
    assert eng.event(mem, "plant", "n1", Event(ts=T0, kind="boot", detail={}), T0).transitions == []
    out = eng.event(mem, "plant", "n1", lost, T0 + 1000)
    assert events([out]) == [("raised", "queue_overflow", "queue")]
    assert out.transitions[0]["message"].startswith("【数据丢失】莱西市污水处理厂监测设备n1离线缓存已满，丢弃了最早的168条数据")
    assert [n.to for n in out.notices] == [DUTY]
    again = Event(ts=T0 + MIN, kind="queue_overflow", detail={"dropped": 5, "total": 173, "lost": 173})
    assert eng.event(mem, "plant", "n1", again, T0 + 30 * MIN).transitions == []  # one raise per episode
    assert eng.tick(mem, T0 + 89 * MIN).transitions == []  # the hour counts from the last overflow
    out = eng.tick(mem, T0 + 90 * MIN)
    assert events([out]) == [("cleared", "queue_overflow", "queue")]
    assert out.transitions[0]["message"].startswith("【告警解除】莱西市污水处理厂缓存溢出丢数已恢复正常")


def test_queue_overflow_rule_checks_its_settings(tmp_path):
    from edgemon.configschema import ConfigError

    with pytest.raises(ConfigError, match="min_dropped"):
        engine(tmp_path, "[sites.plant.rules.queue_overflow]\nmin_dropped = 0")
