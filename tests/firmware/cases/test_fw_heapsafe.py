"""The heap-saving paths of the store: decode without rows or into one flat list, schema lists
shared with the node's, the segment index in two arrays across a reboot, peek into one flat list.
(The uplink's heap-saving paths: test_fw_heapsafe_uplink.py.)"""
import os
from reccodec import State, encode, decode
from flashqueue import FlashQueue, schema_list
from fakes import make_tmpdir, rmtree, raises

TS0 = 1764000000000

# ---- 1. reccodec.decode: rows=True / False / flat list ----

def _bodies():
    """Three bodies of one segment (delta-coded in turn) with absent readings, ints and f64s."""
    st = State()
    b1 = encode(st, 1, TS0, "ntp", [1.5, 7, None], ["N", "M", None], [True, False, False])
    b2 = encode(st, 2, TS0 + 60000, "rtc", [2.5, -9, 0.1 + 0.2], ["N", "M", "T"], [True, False, False])
    b3 = encode(st, 5, TS0 + 30000, "none", [None, 3, 4.25], [None, "D", "N"], [True, False, True])
    return [b1, b2, b3]


def test_decode_modes_agree():
    want = [
        (1, TS0, "ntp", [(1.5, "N", True), (7, "M", False), (None, None, False)]),
        (2, TS0 + 60000, "rtc", [(2.5, "N", True), (-9, "M", False), (0.1 + 0.2, "T", False)]),
        (5, TS0 + 30000, "none", [(None, None, False), (3, "D", False), (4.25, "N", True)]),
    ]
    st_t, st_f, st_l = State(), State(), State()
    flat = ["junk"] * 9  # stale entries from an earlier record must all be overwritten
    for body, w in zip(_bodies(), want):
        seq, ts, clk, rows = decode(st_t, body, 3, True)
        assert (seq, ts, clk) == w[:3], (seq, ts, clk)
        assert rows == w[3], rows
        seq, ts, clk, rows = decode(st_f, body, 3, False)
        assert (seq, ts, clk) == w[:3] and rows is None, rows
        res = decode(st_l, body, 3, flat)
        assert res[:3] == w[:3] and res[3] is flat, res
        expect_flat = []
        for v, f, is_f32 in w[3]:
            expect_flat.extend([v, f, is_f32])
        assert flat == expect_flat, flat
        assert len(flat) == 9
        # every mode leaves the state where the next delta is taken from
        for st in (st_f, st_l):
            assert (st.seq, st.ts, st.tags) == (st_t.seq, st_t.ts, st_t.tags)
    assert st_t.seq == 5 and st_t.ts == TS0 + 30000


def test_decode_absent_flat():
    body = _bodies()[0]
    assert decode(State(), body, 3)[3] == [(1.5, "N", True), (7, "M", False), (None, None, False)]
    flat = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    decode(State(), body, 3, flat)
    assert flat[6:] == [None, None, False], flat


def test_decode_bad_bodies():
    # A small ts, so the seq and ts deltas take one byte each and the head byte is at 2.
    b1 = bytes(encode(State(), 1, 10, "ntp", [1.5, 7, None], ["N", "M", None], [True, False, False]))
    assert decode(State(), b1, 3)[:3] == (1, 10, "ntp")
    trailing = bytearray(b1) + b"\x00"
    badclk = bytearray(b1)
    assert badclk[2] & 3 == 2, b1
    badclk[2] |= 3
    st2 = State()
    encode(st2, 1, 10, "ntp", [1.5, 7, None], ["N", "M", None], [True, False, False])
    same_tags = encode(st2, 2, 11, "ntp", [1.5, 7, None], ["N", "M", None], [True, False, False])
    assert len(same_tags) < len(b1)  # the tags repeat: only decodable after the first record
    # The head says tags follow, but only one of the three is there (an absent reading's: no value
    # to unpack before the missing second tag is reached).
    b0 = encode(State(), 1, 10, "ntp", [None, 7, 1.5], [None, "M", "N"], [False, False, True])
    cut_in_tags = bytearray(b0[:4])
    cases = [(trailing, ValueError), (badclk, ValueError), (same_tags, ValueError), (cut_in_tags, IndexError)]
    for body, exc in cases:
        for rows in (True, False, [None] * 9):
            s = State()
            s.seq = 40
            s.ts = 123
            e = raises(exc, decode, s, body, 3, rows)
            assert isinstance(e, exc)
            assert (s.seq, s.ts, s.tags) == (40, 123, None), (rows, s.seq, s.ts)  # unchanged on failure
    # the messages name the fault the same way with or without rows
    assert "trailing" in str(raises(ValueError, decode, State(), trailing, 3, False))
    assert "trailing" in str(raises(ValueError, decode, State(), trailing, 3, True))
    assert "clk" in str(raises(ValueError, decode, State(), badclk, 3, False))
    assert "clk" in str(raises(ValueError, decode, State(), badclk, 3, True))
    # the good body still decodes after all that, into a state that carries on to the next record
    s = State()
    assert decode(s, b1, 3, False)[:3] == (1, 10, "ntp")
    assert decode(s, same_tags, 3, False)[:3] == (2, 11, "ntp")
    # a float cut short: refused in every mode (the queue's readers catch ValueError/IndexError
    # only; CPython's struct.error would have escaped them)
    b2 = encode(State(), 1, 10, "ntp", [1.5, 2.5], ["N", "M"], [True, True])
    for rows in (True, False, [None] * 6):
        st = State()
        e = raises(Exception, decode, st, b2[:-1], 2, rows)
        assert isinstance(e, (ValueError, IndexError)), (rows, e)
        assert st.seq == 0


# ---- 2. flashqueue.schema_list ----

def test_schema_list_identity():
    known = ["w01018", "w21003", "w01001"]
    assert schema_list(b"w01018,w21003,w01001", known) is known
    assert schema_list(memoryview(b"w01018,w21003,w01001"), known) is known
    assert schema_list(memoryview(bytearray(b"xx,w01018,w21003,w01001"))[3:], known) is known
    for b, want in ((b"w01018,w21003", ["w01018", "w21003"]),  # known longer than the frame
                    (b"w01018,w21003,w01001,a", ["w01018", "w21003", "w01001", "a"]),  # frame longer
                    (b"w01018,w21003,w01002", ["w01018", "w21003", "w01002"]),
                    (b"w01018,w21003,w010011", ["w01018", "w21003", "w010011"]),
                    (b"w01018,w21003,w01001,", ["w01018", "w21003", "w01001", ""])):
        got = schema_list(b, known)
        assert got is not known and got == want, (b, got)
        got = schema_list(memoryview(b), known)
        assert got is not known and got == want, (b, got)
    assert known == ["w01018", "w21003", "w01001"]  # never modified
    k2 = ["a", "b"]
    got = schema_list(b"a,b,c", k2)
    assert got == ["a", "b", "c"] and got is not k2 and k2 == ["a", "b"]
    got = schema_list(b"ab", k2)
    assert got == ["ab"]
    assert schema_list(b"a,b", None) == ["a", "b"]
    assert schema_list(memoryview(b"a,b"), None) == ["a", "b"]
    single = ["only"]
    assert schema_list(b"only", single) is single
    assert schema_list(b"only", None) == ["only"]
    assert schema_list(b"onl", single) == ["onl"]
    assert schema_list(b"a", []) == ["a"]


# ---- 3. FlashQueue segment index across a reboot, acks removing whole segments ----

PAB = ["a", "b"]


def _vals(i):
    return [i + 0.5, i * 3]


def _add(q, i, params=PAB):
    vals = _vals(i)
    flags = ["N", "M"]
    f32 = [True, False]
    if len(params) == 3:
        vals = vals + [i * 0.25]
        flags = flags + ["T"]
        f32 = f32 + [False]
    return q.append(TS0 + 1000 * i, "ntp", params, vals, flags, f32)


def _seg_names(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".q"))


def _file_bytes(d, segs):
    return [os.stat("%s/%08x.q" % (d, s))[6] for s, _ in segs]


def test_segment_index_reboot_ack():
    d = make_tmpdir()
    n = 100
    try:
        q = FlashQueue(d, seg_bytes=200)
        for i in range(1, n + 1):
            assert _add(q, i) == i
        segs = q.segments()
        assert len(segs) >= 6, segs
        assert segs[0][0] == 1
        for i in range(1, len(segs)):
            assert segs[i][0] > segs[i - 1][0], segs
        for s, b in segs:
            assert 0 < b <= 200, segs
        assert [b for s, b in segs] == _file_bytes(d, segs)
        assert q.bytes_used() == sum([b for s, b in segs])
        assert _seg_names(d) == ["%08x.q" % s for s, _ in segs]
        q.close()

        q2 = FlashQueue(d, seg_bytes=200)  # "reboot"
        assert q2.segments() == segs, (q2.segments(), segs)
        assert q2.last_seq == n and len(q2) == n and q2.dropped == 0 and q2.repaired == 0
        items = q2.peek(1000)
        assert [it[0] for it in items] == list(range(1, n + 1))
        for it in items:
            seq, ts, clk, schema, rows = it
            assert ts == TS0 + 1000 * seq and clk == "ntp" and schema == PAB
            assert rows == [(seq + 0.5, "N", True), (seq * 3, "M", False)], (seq, rows)

        # Ack inside segment 3: segments 0..2 are wholly acknowledged and go, 3 stays.
        k = segs[3][0] + 2
        assert k < segs[4][0] - 1
        q2.ack(k)
        rest = segs[3:]
        assert q2.segments() == rest, q2.segments()
        assert _seg_names(d) == ["%08x.q" % s for s, _ in rest]
        assert q2.bytes_used() == sum([b for s, b in rest]) == sum(_file_bytes(d, rest))
        assert len(q2) == n - k
        assert [it[0] for it in q2.peek(1000)] == list(range(k + 1, n + 1))
        q2.close()

        q3 = FlashQueue(d, seg_bytes=200)  # another reboot: the same index, the same pointer
        assert q3.segments() == rest and q3.acked == k
        # Ack the exact last seq of segment 3: it goes too.
        q3.ack(segs[4][0] - 1)
        assert q3.segments() == segs[4:]
        assert _seg_names(d) == ["%08x.q" % s for s, _ in segs[4:]]
        assert q3.bytes_used() == sum([b for s, b in segs[4:]])
        assert [it[0] for it in q3.peek(1000)] == list(range(segs[4][0], n + 1))
        # Everything acknowledged: only the open tail segment is kept.
        q3.ack(n)
        assert q3.segments() == segs[-1:] and len(q3) == 0 and q3.peek(10) == []
        assert _seg_names(d) == ["%08x.q" % segs[-1][0]]
        assert q3.bytes_used() == segs[-1][1]
        q3.close()
        q4 = FlashQueue(d, seg_bytes=200)
        assert q4.last_seq == n and len(q4) == 0 and _add(q4, n + 1) == n + 1
        q4.close()
    finally:
        rmtree(d)


# ---- 4. peek into one flat list, across a schema change ----

def test_peek_flat_schema_change():
    d = make_tmpdir()
    pabc = ["a", "b", "c"]
    try:
        q = FlashQueue(d, params=PAB)
        for i in range(1, 6):
            _add(q, i)
        q.append(TS0 + 5500, "ntp", PAB, [None, 11], [None, "B"], [True, False])  # seq 6, one absent
        rows6 = [None] * 6
        for after in range(0, 5):
            items = q.peek(1, after, rows6)
            assert len(items) == 1 and items[0][0] == after + 1
            assert items[0][4] is rows6
            i = after + 1
            assert rows6 == [i + 0.5, "N", True, i * 3, "M", False], rows6
        items = q.peek(1, 5, rows6)
        assert items[0][4] is rows6 and rows6 == [None, None, False, 11, "B", False], rows6
        nseg = len(q.segments())
        for i in range(7, 10):
            assert _add(q, i, pabc) == i  # a new schema: a new segment
        assert len(q.segments()) == nseg + 1 and q.segments()[-1][0] == 7
        items = q.peek(1, 6, rows6)
        seq, ts, clk, schema, rows = items[0]
        assert seq == 7 and schema == pabc
        assert rows is not rows6 and len(rows) == 9
        assert rows == [7.5, "N", True, 21, "M", False, 1.75, "T", False], rows
        assert len(rows6) == 6 and rows6[3] == 11  # the caller's list was left alone
        # back to the old schema: the caller's list again
        items = q.peek(1, 4, rows6)
        assert items[0][0] == 5 and items[0][3] == PAB and items[0][4] is rows6
        assert rows6 == [5.5, "N", True, 15, "M", False]
        assert q.dropped == 0
        q.close()

        # After a reboot with the new params, the old segment's schema is read from flash.
        q2 = FlashQueue(d, params=pabc)
        rows9 = [None] * 9
        after = 0
        seen = []
        while True:
            items = q2.peek(1, after, rows9)
            if not items:
                break
            seq, ts, clk, schema, rows = items[0]
            seen.append(seq)
            if seq <= 6:
                assert schema == PAB and len(rows) == 6 and rows is not rows9
                if seq < 6:
                    assert rows == [seq + 0.5, "N", True, seq * 3, "M", False], (seq, rows)
                else:
                    assert rows == [None, None, False, 11, "B", False], rows
            else:
                assert schema == pabc and rows is rows9
                assert rows == [seq + 0.5, "N", True, seq * 3, "M", False, seq * 0.25, "T", False], rows
            after = seq
        assert seen == list(range(1, 10)), seen
        assert q2.dropped == 0
        q2.close()
    finally:
        rmtree(d)
