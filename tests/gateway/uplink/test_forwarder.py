"""The forwarder against the platform simulator on real loopback sockets: real-time and period data,
dropped 9014 replies (resent after OverTime with the same QN, never again once answered), a platform
outage (everything kept in the durable queue, delivered once back), the platform's requests, and
HJ 212-2025's Flag and SM4-encrypted CP."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import pytest

from edgemon.aggregates.engine import Point
from edgemon.aggregates.stats import Value
from edgemon.contract import Reading, Record
from edgemon.dev.platformsim import PlatformSimulator
from edgemon.hj212 import parse
from edgemon.uplink.forwarder import Forwarder
from edgemon.uplink.settings import PlatformSettings, SiteSettings, UplinkSettings
from edgemon.uplink.sm4 import decrypt_cp

MN = "010000A8900016F000169DC0"
T0 = int(datetime(2026, 12, 6, 2, 0, tzinfo=timezone.utc).timestamp() * 1000)  # 10:00 Shanghai
KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")


@pytest.fixture
def sim():
    s = PlatformSimulator().start()
    yield s
    s.stop()


def forwarder(sim, tmp_path, version="2017", key=None, history=None, **site):
    platform = PlatformSettings("prov", "127.0.0.1", sim.port, version=version, over_time_s=1, re_count=2,
                                reconnect_s=0.3, sm4_key=key)
    s = SiteSettings("plant", MN, "123456", "32", ("prov",), **site)
    fw = Forwarder(UplinkSettings({"prov": platform}, {"plant": s}), tmp_path, history=history)
    return fw.start()


def value(avg, flag="N", cou=None):
    return Value(avg, avg - 1, avg + 1, cou, flag, flag == "N", 10, 10, cou is not None, 10)


def test_realtime_at_the_site_interval_and_period_data(sim, tmp_path):
    fw = forwarder(sim, tmp_path, rtd_interval_s=60)
    try:
        recs = [Record(T0 + k * 20_000, k, "ntp", {"w01018": Reading(30.5 + k, "N"), "w21003": Reading(None, "B")})
                for k in range(4)]  # 0, 20, 40, 60 s: two 2011 packets at a 60 s interval
        fw.on_records("plant", "n1", recs, T0)
        fw.on_aggregates([Point("plant", "n1", "w01018", "hour", T0, value(22.5, cou=0.18)),
                          Point("plant", "n1", "w00000", "hour", T0, value(100.0, cou=8.0)),
                          Point("plant", "n2", "w21003", "hour", T0, value(1.2, "M"))])
        assert sim.wait_for(lambda: len(sim.data()) == 3)
        rtd = sim.data("2011")
        assert [r.packet.cp.get("DataTime") for r in rtd] == ["20261206100000", "20261206100100"]
        assert rtd[0].packet.cp.pollutants() == {"w01018": {"Rtd": "30.5", "Flag": "N"}, "w21003": {"Flag": "B"}}
        assert rtd[0].packet.flag == 5 and rtd[0].packet.mn == MN and rtd[0].packet.pw == "123456"
        (hour,) = sim.data("2061")
        assert hour.packet.cp.get("DataTime") == "20261206100000"
        assert hour.packet.cp.pollutants() == {
            "w00000": {"Min": "99", "Avg": "100", "Max": "101", "Cou": "8", "Flag": "N"},
            "w01018": {"Min": "21.5", "Avg": "22.5", "Max": "23.5", "Cou": "0.18", "Flag": "N"},
            "w21003": {"Min": "0.2", "Avg": "1.2", "Max": "2.2", "Flag": "M"}}  # both nodes in one packet
        assert sim.wait_for(lambda: fw.queue.count() == 0, 5)
        assert sim.rejected == []
    finally:
        fw.stop()


def test_a_dropped_reply_is_resent_with_the_same_qn_and_never_again_once_answered(sim, tmp_path):
    fw = forwarder(sim, tmp_path)
    try:
        sim.drop_replies(1)
        fw.on_aggregates([Point("plant", "n1", "w01018", "hour", T0, value(22.5))])
        assert sim.wait_for(lambda: len(sim.data()) == 2, 5)  # the first, unanswered; again after OverTime 1 s
        first, second = sim.data()
        assert first.packet.qn == second.packet.qn and first.raw == second.raw
        assert (first.answer, second.answer) == ("dropped", "9014")
        assert sim.wait_for(lambda: fw.queue.count() == 0, 3)
        assert not sim.wait_for(lambda: len(sim.data()) > 2, 2.5)  # answered: not sent a third time
        assert fw.links["prov"].stats["resent"] == 1
    finally:
        fw.stop()


def test_platform_outage_keeps_everything_and_delivers_each_once(sim, tmp_path):
    fw = forwarder(sim, tmp_path)
    try:
        fw.on_aggregates([Point("plant", "n1", "w01018", "hour", T0, value(20.0))])
        assert sim.wait_for(lambda: len(sim.data()) == 1 and fw.queue.count() == 0, 5)
        sim.set_down(True)
        for k in range(1, 6):
            fw.on_aggregates([Point("plant", "n1", "w01018", "hour", T0 + k * 3_600_000, value(20.0 + k))])
        assert fw.queue.count() == 5
        assert not sim.wait_for(lambda: len(sim.data()) > 1, 2)  # nothing reaches a platform that is down
        fw.stop()  # and the gateway restarts during the outage: the queue is on disk
        fw = forwarder(sim, tmp_path)
        assert fw.queue.count() == 5
        sim.set_down(False)
        assert sim.wait_for(lambda: fw.queue.count() == 0, 10)
        qns = Counter(r.packet.qn for r in sim.data() if r.answer == "9014")
        from edgemon.dev import faultlog
        faultlog.record({"scenario": "hj212_platform_outage_with_gateway_restart",
                         "faults": ["HJ 212 platform down (connections refused)", "gateway restarted during it"],
                         "produced": 6, "stored": len(qns), "lost": 6 - len(qns),
                         "duplicated": sum(n - 1 for n in qns.values())})
        assert len(qns) == 6 and set(qns.values()) == {1}  # every packet answered exactly once
        avgs = [r.packet.cp.pollutants()["w01018"]["Avg"] for r in sim.data()]
        assert avgs == ["20", "21", "22", "23", "24", "25"]  # in order
    finally:
        fw.stop()


def test_link_down_after_recount_then_back(sim, tmp_path):
    fw = forwarder(sim, tmp_path)
    try:
        sim.drop_replies(3)  # the send and its 2 resends (ReCount 2) unanswered: link down
        fw.on_aggregates([Point("plant", "n1", "w01018", "hour", T0, value(20.0))])
        assert sim.wait_for(lambda: fw.links["prov"].stats["link_down"] == 1, 8)
        assert sim.wait_for(lambda: fw.queue.count() == 0, 8)  # reconnected, sent again, answered
        assert [r.answer for r in sim.data()] == ["dropped", "dropped", "dropped", "9014"]
        assert fw.links["prov"].stats["connects"] == 2
    finally:
        fw.stop()


def test_requests_time_intervals_and_history(sim, tmp_path):
    history_asked = []

    def history(site, period, begin, end):
        history_asked.append((site, period, begin, end))
        return [(T0, {"w01018": value(30.0)}), (T0 + 3_600_000, {"w01018": value(31.0, "D")})]

    fw = forwarder(sim, tmp_path, history=history)
    try:
        fw.on_aggregates([Point("plant", "n1", "w01018", "hour", T0, value(20.0))])  # connects, says its MN
        assert sim.wait_for(lambda: fw.queue.count() == 0, 5)

        def ask(cn, fields):
            qn = sim.request(MN, cn, fields, pw="123456")
            assert sim.wait_for(lambda: any(r.packet.cn == "9012" for r in sim.replies_to(qn)), 5), cn
            return [r.packet for r in sim.replies_to(qn)]

        got = ask("1011", {})
        assert [p.cn for p in got] == ["9011", "1011", "9012"]
        assert got[0].cp.get("QnRtn") == "1" and got[2].cp.get("ExeRtn") == "1"
        assert len(got[1].cp.get("SystemTime")) == 14
        assert ask("1062", {"RtdInterval": "120"})[-1].cp.get("ExeRtn") == "1"
        assert ask("1061", {})[1].cp.get("RtdInterval") == "120"
        assert ask("1062", {"RtdInterval": "5"})[-1].cp.get("ExeRtn") == "3"  # out of range: refused
        assert ask("1000", {"OverTime": "5", "ReCount": "4"})[-1].cp.get("ExeRtn") == "1"
        assert fw.links["prov"].settings() == (5.0, 4)
        assert ask("1012", {"SystemTime": "20261206100000"})[-1].cp.get("ExeRtn") == "1"  # logged, not applied
        hist = ask("2061", {"BeginTime": "20261206100000", "EndTime": "20261206110000"})
        assert [p.cn for p in hist] == ["9011", "2061", "2061", "9012"]
        assert [p.cp.pollutants()["w01018"]["Flag"] for p in hist[1:3]] == ["N", "D"]
        assert history_asked == [("plant", "hour", T0, T0 + 3_600_000)]
        assert ask("2031", {"BeginTime": "2026-12-06", "EndTime": "x"})[-1].cp.get("ExeRtn") == "3"
        qn = sim.request(MN, "1011", {}, pw="wrong")
        assert sim.wait_for(lambda: sim.replies_to(qn), 5)
        assert sim.replies_to(qn)[0].packet.cp.get("QnRtn") == "3"
    finally:
        fw.stop()
    again = Forwarder(fw.settings, tmp_path)  # what the platform set survives a restart
    assert again.current(fw.settings.sites["plant"], fw.settings.platforms["prov"])["rtd_interval_s"] == 120
    again.queue.close()


def test_hj212_2025_flag_and_sm4_encrypted_cp(sim, tmp_path):
    fw = forwarder(sim, tmp_path, version="2025", key=KEY)
    try:
        fw.on_aggregates([Point("plant", "n1", "w01018", "hour", T0, value(22.5))])
        assert sim.wait_for(lambda: len(sim.data()) == 1, 5)
        (got,) = sim.data()
        assert got.packet.flag == 9 and got.packet.version == "HJ 212-2025" and got.answer == "9014"
        text = parse(got.raw).packet.cp.encode()
        assert "w01018" not in text and len(text) % 32 == 0
        assert decrypt_cp(text, KEY) == "DataTime=20261206100000;w01018-Min=21.5,w01018-Avg=22.5,w01018-Max=23.5,w01018-Flag=N"
    finally:
        fw.stop()


def _many(n, flag="N"):
    codes = [f"a{k:05d}" for k in range(n)]
    return codes, [Point("plant", "n1", c, "hour", T0, value(1000.1234 + k, flag, cou=12345.6789)) for k, c in
                   enumerate(codes)]


@pytest.mark.parametrize("version,key", [("2017", None), ("2025", KEY)])
def test_an_hour_over_1024_bytes_goes_in_parts_each_answered_on_its_own_qn(sim, tmp_path, version, key):
    codes, points = _many(30)
    fw = forwarder(sim, tmp_path, version=version, key=key)
    try:
        fw.on_aggregates(points)
        assert sim.wait_for(lambda: fw.queue.count() == 0 and len(sim.data("2061")) > 1, 10)
        parts = sim.data("2061")
        assert all(r.answer == "9014" for r in parts) and len({r.packet.qn for r in parts}) == len(parts)
        assert [r.packet.pno for r in parts] == list(range(1, len(parts) + 1))
        assert {r.packet.pnum for r in parts} == {len(parts)} and all(r.packet.flag & 2 for r in parts)
        assert all(len(r.raw) <= 1036 for r in parts), [len(r.raw) for r in parts]
        got = {}
        for r in parts:
            cp = r.packet.cp
            if key is not None:
                from edgemon.hj212.cp import CP
                cp = CP.parse(decrypt_cp(cp.text, key, "zero"))
            assert cp.get("DataTime") == "20261206100000"
            got.update(cp.pollutants())
        assert sorted(got) == codes and got["a00007"]["Avg"] == "1007.1234"
    finally:
        fw.stop()
