"""The answers to the platform's requests (pure): the reply sequence, what they change, the refusals."""

from __future__ import annotations

from edgemon.hj212 import CP, Packet
from edgemon.uplink.requests import handle
from edgemon.uplink.settings import SiteSettings

SITE = SiteSettings("plant", "010000A8900016F000169DC0", "123456", "32", ("prov",))
CURRENT = {"over_time_s": 10, "re_count": 3, "rtd_interval_s": 60, "min_interval_min": 1, "rtd_on": 1}
NOW = 1796000000000


def ask(cn, fields=None, pw="123456"):
    req = Packet(st="32", cn=cn, mn=SITE.mn, pw=pw, qn="20261206100000000", flag=5, cp=CP.build(fields or {}))
    return handle(req, SITE, "2017", CURRENT, NOW, "Asia/Shanghai", lambda period, b, e: [])


def test_stop_realtime_is_a_notify_answered_with_9013():
    out = ask("2012")
    assert [p.cn for p in out.packets] == ["9013"] and out.changes == {"rtd_on": 0}
    assert out.packets[0].st == "91" and out.packets[0].qn == "20261206100000000" and out.packets[0].flag == 4


def test_min_interval_must_divide_an_hour():
    assert ask("1064", {"MinInterval": "7"}).packets[-1].cp.get("ExeRtn") == "3"
    out = ask("1064", {"MinInterval": "10"})
    assert out.packets[-1].cp.get("ExeRtn") == "1" and out.changes == {"min_interval_min": 10}


def test_unknown_command_and_wrong_password_are_refused_in_the_9011():
    (only,) = ask("3011").packets
    assert (only.cn, only.cp.get("QnRtn")) == ("9011", "8")
    (only,) = ask("1011", pw="000000").packets
    assert (only.cn, only.cp.get("QnRtn")) == ("9011", "3")


def test_history_without_data_ends_with_exertn_100():
    out = ask("2031", {"BeginTime": "20261201000000", "EndTime": "20261205000000"})
    assert [p.cn for p in out.packets] == ["9011", "9012"] and out.packets[-1].cp.get("ExeRtn") == "100"


def test_time_set_is_logged_with_the_difference_and_not_applied():
    out = ask("1012", {"SystemTime": "20261206100000"})
    assert out.changes == {} and out.packets[-1].cp.get("ExeRtn") == "1"
    assert "not applied" in out.log[0] and " s from the gateway's clock" in out.log[0]
