"""Splitting a packet over the standard's 1,024-byte data segment (HJ 212-2017 C.49-C.50): the D
bit, PNUM/PNO, DataTime in each part, whole pollutant items, each part parsed back by the codec."""

from __future__ import annotations

import pytest

from edgemon.aggregates.stats import Value
from edgemon.hj212 import parse
from edgemon.hj212.packet import MAX_DATA
from edgemon.uplink import packets as P
from edgemon.uplink.settings import SiteSettings

SITE = SiteSettings("plant", "010000A8900016F000169DC0", "123456", "32", ("prov",))
T0 = 1_765_000_800_000


def hour(n):
    values = {f"a{k:05d}": Value(100.5 + k, 99.5, 101.5, 12.25, "N", True, 360, 360, True, 60) for k in range(n)}
    return P.period_packet(SITE, "2017", "20261206100000000", "hour", T0, values, "Asia/Shanghai")


def test_a_packet_that_fits_is_sent_as_it_is():
    pk = hour(3)
    assert P.split(pk) == [pk] and pk.pnum is None and pk.flag == 5


def test_a_long_packet_becomes_parts_that_each_fit_and_together_hold_every_item():
    pk = hour(40)
    assert len(pk.data_segment().encode()) > MAX_DATA
    qns = iter(["20261206100000001", "20261206100000002", "20261206100000003", "20261206100000004"])
    parts = P.split(pk, lambda: next(qns))
    assert len(parts) >= 3
    seen = {}
    for i, part in enumerate(parts, 1):
        back = parse(part.encode()).packet  # CRC, length, PNUM/PNO checked by the codec
        assert (back.pnum, back.pno, back.flag) == (len(parts), i, 7)
        assert back.cp.get("DataTime") == pk.cp.get("DataTime")
        seen.update(back.cp.pollutants())
    assert seen == pk.cp.pollutants()
    assert [p.qn for p in parts] == ["20261206100000000"] + [f"2026120610000000{k}" for k in range(1, len(parts))]
    assert {p.qn for p in P.split(pk)} == {pk.qn}  # history: every part on the request's QN


def test_an_item_too_long_for_any_part_is_refused():
    pk = hour(1)
    pk.cp.groups[-1] = [(f"a00000-X{k}", "9" * 14) for k in range(80)]
    with pytest.raises(ValueError, match="alone is over 1024"):
        P.split(pk)
