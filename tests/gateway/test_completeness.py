"""Completeness: gaps, late records, duplicates, wild jumps, node-reported losses, and a set model."""

import json

from hypothesis import given
from hypothesis import strategies as st

from edgemon.completeness import Completeness, NodeCompleteness


def test_completeness_gaps_late_records_and_duplicates():
    nc = NodeCompleteness()
    for seq in (10, 11, 15, 12, 11, 20):
        nc.add(seq)
    assert (nc.expected, nc.received, nc.missing, nc.duplicates) == (11, 5, 6, 1)
    assert nc.gaps == [[13, 14], [16, 19]]
    for seq in (13, 14, 17):
        nc.add(seq)
    assert nc.gaps == [[16, 16], [18, 19]] and nc.missing == 3
    nc.add(8)  # older than anything seen: the range widens, 9 is missing
    assert (nc.first, nc.missing, nc.expected) == (8, 4, 13)


def test_completeness_one_wild_seq_is_an_incident_not_a_baseline():
    c = Completeness()
    c.add("s", "n", [1, 2, 3])
    c.add("s", "n", [4_000_000_000])
    c.add("s", "n", [4, 5])
    nc = c.nodes["s/n"]
    assert (nc.expected, nc.received, nc.missing, nc.last, nc.jumps) == (5, 5, 0, 5, 1)
    assert c.incidents == [("s/n", 4_000_000_000, 1, 3)]
    again = NodeCompleteness.from_json(json.loads(json.dumps(nc.to_json())))
    assert (again.expected, again.jumps, again.jump) == (5, 1, [4_000_000_000, 4_000_000_000, 1])
    line = c.lines(1764000000000)[0]
    assert "seq_jumps=1.0" in line and "last_seq=5.0" in line and "expected=5.0" in line


def test_completeness_a_counter_that_really_jumped_starts_a_new_range():
    from edgemon.completeness import MAX_JUMP, REBASE_AFTER

    nc = NodeCompleteness()
    for seq in range(1, 11):
        nc.add(seq)
    nc.add(7)  # a duplicate: still counted as before
    base = 10 + MAX_JUMP + 5
    for seq in range(base, base + REBASE_AFTER + 1):
        if seq == base + 3:
            continue  # one lost in the new range
        nc.add(seq)
    assert nc.rebased == 1 and nc.jump is None
    assert (nc.first, nc.last) == (base, base + REBASE_AFTER)
    assert (nc.expected, nc.received, nc.missing, nc.duplicates) == (10 + REBASE_AFTER + 1, 10 + REBASE_AFTER, 1, 1)
    assert nc.add(base + 3) is True and nc.missing == 0  # the late one from the new range


def test_completeness_node_reported_losses_count_once():
    nc = NodeCompleteness()
    assert nc.add_loss(5, 5, [1, 5, 5]) == 5
    assert nc.add_loss(5, 5, [1, 5, 5]) == 0  # the same event again
    assert nc.add_loss(8, 8, [2, 8, 8]) == 3  # its PUBACK was lost: the next one repeats the 5
    legacy = NodeCompleteness()  # firmware 0.2: no "lost", the events' dropped summed, repeats dropped
    assert legacy.add_loss(4, None, [1, 4, 4]) == 4 and legacy.add_loss(4, None, [1, 4, 4]) == 0
    assert legacy.add_loss(2, None, [2, 2, 6]) == 2 and legacy.lost == 6
    c = Completeness()
    c.add_loss("s", "n", 3, 3, [1, 3, 3])
    assert "last_seq" not in c.lines(1)[0] and "lost=3.0" in c.lines(1, only_dirty=False)[0]


def test_completeness_late_record_from_a_given_up_gap_is_received_not_a_duplicate(monkeypatch):
    from edgemon import completeness
    monkeypatch.setattr(completeness, "MAX_GAPS", 2)
    nc = NodeCompleteness()
    for seq in (1, 3, 5, 7):  # gaps [2], [4], [6]: the first is given up on
        nc.add(seq)
    assert nc.gaps == [[4, 4], [6, 6]] and nc.given_up == 1 and nc.missing == 3
    assert nc.add(2) is True  # the replay brings it after all
    assert (nc.received, nc.duplicates, nc.missing, nc.given_up) == (5, 0, 2, 0)
    assert nc.add(3) is False and nc.duplicates == 1  # a real duplicate: nothing left given up
    saved = NodeCompleteness.from_json(json.loads(json.dumps(nc.to_json())))
    assert saved.to_json() == nc.to_json()
    old = NodeCompleteness.from_json([1, 7, 4, 0, [[4, 4]], 1])  # state saved by the previous version
    assert old.given_up_hi is None and old.add(2) is False  # unknown range: counted as before


@given(st.lists(st.integers(0, 200), max_size=300))
def test_completeness_matches_a_set(seqs):
    c = Completeness()
    c.add("s", "n", seqs)
    c = Completeness(json.loads(json.dumps(c.to_json())))  # through its saved form
    nc = c.nodes.get("s/n")
    if not seqs:
        assert nc.expected == nc.received == nc.missing == 0
        return
    distinct = set(seqs)
    assert nc.received == len(distinct)
    assert nc.duplicates == len(seqs) - len(distinct)
    assert nc.expected == max(seqs) - min(min(seqs), 1) + 1  # expected from seq 1, whatever came first
    assert nc.missing == nc.expected - len(distinct)


def test_a_node_never_seen_is_expected_from_seq_1_or_from_where_it_was_confirmed():
    # A broker that lost the gateway's session lost seq 1-67: the first record to arrive is 68.
    c = Completeness(starts={"s/b": 501})
    c.add("s", "a", [68, 69])
    a = c.nodes["s/a"]
    assert (a.expected, a.received, a.missing, a.gaps) == (69, 2, 67, [[1, 67]])
    c.add("s", "a", range(1, 68))  # the node sends them again (not confirmed): all there
    assert (a.expected, a.received, a.missing, a.duplicates) == (69, 69, 0, 0)
    c.add("s", "b", [503])  # confirmed up to 500 before this gateway's state began
    b = c.nodes["s/b"]
    assert (b.first, b.expected, b.missing) == (501, 3, 2)
    c.add("s", "c", [2_000_000])  # beyond MAX_JUMP from 1: a node long in service, not 2 M missing
    assert (c.nodes["s/c"].first, c.nodes["s/c"].missing) == (2_000_000, 0)
