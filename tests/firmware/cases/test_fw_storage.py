import os
from seqstore import SeqStore
from outbox import Outbox
from fakes import make_tmpdir, rmtree, raises


def test_seq_starts_at_one_and_persists():
    d = make_tmpdir()
    try:
        s = SeqStore(d)
        assert s.next() == 1 and s.next() == 2 and s.next() == 3
        s2 = SeqStore(d)  # "reboot"
        assert s2.next() == 4
        assert "seq.tmp" not in os.listdir(d)
        with open(d + "/seq") as f:
            assert f.read().strip() == "4"
    finally:
        rmtree(d)


def test_seq_survives_torn_write():
    d = make_tmpdir()
    try:
        s = SeqStore(d)
        for _ in range(5):
            s.next()
        with open(d + "/seq.tmp", "w") as f:
            f.write("")  # power lost while writing the tmp file
        assert SeqStore(d).next() == 6
        with open(d + "/seq.tmp", "w") as f:
            f.write("9\n")  # power lost after writing tmp, before rename
        assert SeqStore(d).next() == 10
    finally:
        rmtree(d)


def test_outbox_bounded_drops_oldest():
    o = Outbox(3)
    for i in range(5):
        o.push(i)
    assert len(o) == 3 and o.dropped == 2
    assert o.peek() == 2
    assert [o.pop(), o.pop(), o.pop()] == [2, 3, 4]
    assert len(o) == 0 and o.peek() is None
    raises(IndexError, o.pop)
    o.push("a")
    assert o.pop() == "a"


def test_outbox_100():
    o = Outbox(100)
    for i in range(250):
        o.push(i)
    assert len(o) == 100 and o.dropped == 150 and o.peek() == 150
