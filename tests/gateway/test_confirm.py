"""confirm.py, the gateway's confirmation rules (pure): ranges, the confirmed point per node, the
union with peer gateways' claims (a node's records split between two gateways of a shared group),
the signed messages, the rate limit and the "again" after a reconnect."""

from __future__ import annotations

import json
import random

from hypothesis import given
from hypothesis import strategies as st

from edgemon.confirm import Confirmer, NodeConfirm, add_range, to_ranges
from edgemon.contract import split_signature
from edgemon.keys import sign

KEY = bytes.fromhex("5f" * 32)


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=40))
def test_add_range_keeps_sorted_disjoint_ranges_of_exactly_the_seqs_added(pairs):
    ranges: list[list[int]] = []
    want: set[int] = set()
    for lo, n in pairs:
        add_range(ranges, lo, lo + n)
        want.update(range(lo, lo + n + 1))
    assert ranges == to_ranges(want)
    assert all(a[1] + 1 < b[0] for a, b in zip(ranges, ranges[1:]))  # not even adjacent


def test_the_confirmed_point_moves_only_over_contiguous_stored_seqs():
    n = NodeConfirm()
    n.stored([1, 2, 3, 5, 6])
    assert n.upto == 3 and n.own == [[5, 6]] and n.dirty
    n.stored([4])
    assert n.upto == 6 and n.own == []
    n.stored([2, 3])  # duplicates below the point change nothing
    assert n.upto == 6 and n.own == []


def test_two_gateways_each_with_half_the_records_confirm_exactly_what_both_hold():
    a, b = Confirmer("gw-a"), Confirmer("gw-b")
    rnd = random.Random(7)
    seqs = list(range(1, 201))
    lost = {150}  # in neither store (the broker died with it): nothing at or after it is confirmed
    for s in seqs:
        if s not in lost:
            (a if rnd.random() < 0.5 else b).stored("s", "n", [s])
    # Alone, neither can confirm past its first hole.
    assert a.nodes["s/n"].upto < 20 and b.nodes["s/n"].upto < 20
    for _ in range(2):  # the claims cross (each retained on the broker, seen by the other)
        ca = a.claim(a.nodes["s/n"], KEY)
        cb = b.claim(b.nodes["s/n"], KEY)
        assert b.peer_claim("s", "n", split_signature(ca)[0]) is None
        assert a.peer_claim("s", "n", split_signature(cb)[0]) is None
    assert a.nodes["s/n"].upto == b.nodes["s/n"].upto == 149
    # The node still learns about 151-200 through the ranges (it may free them once 150 arrives).
    doc = json.loads(split_signature(a.confirmation(a.nodes["s/n"], 1, KEY))[0])
    assert doc["upto"] == 149 and doc["ranges"] == [[151, 200]]
    b.stored("s", "n", [150])  # the node sent it again
    assert b.nodes["s/n"].upto == 200
    a.peer_claim("s", "n", split_signature(b.claim(b.nodes["s/n"], KEY))[0])
    assert a.nodes["s/n"].upto == 200
    # Our own claim back from the broker is not a peer's.
    before = dict(a.nodes["s/n"].peers)
    a.peer_claim("s", "n", split_signature(a.claim(a.nodes["s/n"], KEY))[0])
    assert a.nodes["s/n"].peers == before


def test_a_bad_claim_is_named():
    c = Confirmer("gw-a")
    for body in (b"[]", b'{"gw":"x","upto":-1,"ranges":[]}', b'{"gw":"x","upto":3,"ranges":[[5,4]]}',
                 b'{"gw":"x","upto":3}'):
        assert "a claim is" in c.peer_claim("s", "n", body), body
    assert c.nodes.get("s/n") is None or c.nodes["s/n"].upto == 0


def test_confirmations_are_signed_rate_limited_and_ask_again_after_a_reconnect():
    c = Confirmer("gw-a", interval_ms=1000, state={"s/n": 40})
    assert c.nodes["s/n"].upto == 40 and c.due(0) == []  # known, nothing new
    c.stored("s", "n", [41, 42])
    (name, n), = c.due(5000)
    p = c.confirmation(n, 5000, KEY)
    body, sig = split_signature(p)
    assert sig == sign(body, KEY)  # the node's own rule: HMAC over the rest plus "}"
    assert json.loads(body) == {"upto": 42, "ranges": [], "again": 0, "gw": "gw-a", "ts": 5000}
    c.published(n, 5000)
    c.stored("s", "n", [43])
    assert c.due(5500) == [] and len(c.due(6000)) == 1  # at most one a second per node
    c.published(n, 6000)
    c.ask_again()
    (name, n), = c.due(7000)
    assert json.loads(split_signature(c.confirmation(n, 7000, KEY))[0])["again"] == 1
    c.published(n, 7000)
    assert json.loads(split_signature(c.confirmation(n, 8000, KEY))[0])["again"] == 0
    assert c.state() == {"s/n": 43}


def test_a_confirmation_carries_the_highest_ranges_those_past_the_gaps_a_node_skipped():
    # Records a node dropped (queue overflow) never arrive: upto stays below each gap, and the
    # range that continues the node's own floor is the newest one.
    n = NodeConfirm()
    for lo, hi in ((1, 10), (20, 30), (40, 50), (60, 70), (80, 90), (100, 120)):
        n.stored(range(lo, hi + 1))
    c = Confirmer("gw-a")
    c.nodes["s/n"] = n
    doc = json.loads(split_signature(c.confirmation(n, 1, KEY))[0])
    assert doc["upto"] == 10 and doc["ranges"] == [[40, 50], [60, 70], [80, 90], [100, 120]]
