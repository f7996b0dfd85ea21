"""The flash queue: append before publish, ack after PUBACK, torn tails, overflow, seq across reboots."""
import os
from flashqueue import FlashQueue, frame
from reccodec import State, encode, decode
from record_tools import build_record_rows
from fakes import make_tmpdir, rmtree

P = ["w01018", "w21003", "w01001"]
F32 = [True, True, False]


def _add(q, i, ts=None, flags=None):
    return q.append(1764000000000 + 60000 * i if ts is None else ts, "ntp", P,
                    [35.25 + i, None if i % 5 == 0 else 1.5, 7 + i], flags or ["N", "B" if i % 5 == 0 else "N", "N"], F32)


def _json(item):
    seq, ts, clk, schema, rows = item
    return build_record_rows(ts, seq, clk, schema, rows)


def _seg_files(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".q"))


def test_codec_round_trip_kinds_and_deltas():
    st = State()
    b1 = encode(st, 7, 1764000000000, "ntp", [35.2, None, 7, 0.1 + 0.2, -5], list("NBNTM"),
                [True, False, False, False, False])
    b2 = encode(st, 8, 1764000060000, "rtc", [35.5, None, 8, 0.5, -5], list("NBNTM"),
                [True, False, False, False, False])
    assert len(b2) < len(b1)  # tags repeat: one head byte instead of five tag bytes
    rd = State()
    seq, ts, clk, rows = decode(rd, b1, 5)
    assert (seq, ts, clk) == (7, 1764000000000, "ntp")
    assert rows[0][1:] == ("N", True) and abs(rows[0][0] - 35.2) < 1e-5
    assert rows[1] == (None, "B", False) and rows[2] == (7, "N", False)
    assert rows[3] == (0.1 + 0.2, "T", False) and rows[4] == (-5, "M", False)
    seq, ts, clk, rows = decode(rd, b2, 5)
    assert (seq, ts, clk, rows[2]) == (8, 1764000060000, "rtc", (8, "N", False))


def test_codec_ten_float32_params_fit_the_2mb_goal():
    st = State()
    encode(st, 1, 1764000000000, "ntp", [1.0] * 10, ["N"] * 10, [True] * 10)
    body = encode(st, 2, 1764000060000, "ntp", [2.5] * 10, ["N"] * 10, [True] * 10)
    n = len(frame(body))
    assert n <= 48, n  # 2 MB / (30 days * 1440) = 48.5 bytes per record


def test_append_then_peek_and_ack():
    d = make_tmpdir()
    try:
        q = FlashQueue(d)
        assert [_add(q, i) for i in range(1, 6)] == [1, 2, 3, 4, 5]
        assert len(q) == 5
        got = q.peek(3)
        assert [g[0] for g in got] == [1, 2, 3]
        assert _json(got[0]) == (b'{"ts":1764000060000,"seq":1,"clk":"ntp","readings":{"w01018":{"v":36.25,"f":"N"},'
                                 b'"w21003":{"v":1.5,"f":"N"},"w01001":{"v":8,"f":"N"}}}')
        assert [g[0] for g in q.peek(10)] == [1, 2, 3, 4, 5]  # peek does not consume
        q.ack(3)
        assert len(q) == 2 and [g[0] for g in q.peek(10)] == [4, 5]
        assert _add(q, 6) == 6
        assert [g[0] for g in q.peek(10)] == [4, 5, 6]  # appends behind the cursor are seen
        q.ack(6)
        assert len(q) == 0 and q.peek(10) == []
    finally:
        rmtree(d)


def test_reboot_keeps_seq_pending_and_identical_bytes():
    d = make_tmpdir()
    try:
        q = FlashQueue(d, seg_bytes=200)  # several segments
        for i in range(1, 21):
            _add(q, i)
        before = [_json(x) for x in q.peek(20)]
        q.ack(4)
        q2 = FlashQueue(d, seg_bytes=200)  # "reboot"
        assert q2.last_seq == 20 and len(q2) == 16
        assert [_json(x) for x in q2.peek(20)] == before[4:]
        assert _add(q2, 21) == 21
        q2.ack(21)
        assert len(_seg_files(d)) == 1  # everything sent: only the open segment stays
        q3 = FlashQueue(d, seg_bytes=200)
        assert q3.last_seq == 21 and len(q3) == 0 and _add(q3, 22) == 22
    finally:
        rmtree(d)


def test_seq_survives_when_all_segments_are_gone():
    d = make_tmpdir()
    try:
        q = FlashQueue(d)
        for i in range(1, 4):
            _add(q, i)
        q.ack(3)
        for n in _seg_files(d):
            os.remove(d + "/" + n)  # e.g. a technician cleared the queue
        assert FlashQueue(d).last_seq == 3  # the ack pointer still carries seq
    finally:
        rmtree(d)


def test_torn_tail_at_every_byte_loses_only_the_record_being_written():
    d = make_tmpdir()
    try:
        q = FlashQueue(d)
        for i in range(1, 4):
            _add(q, i)
        (name,) = _seg_files(d)
        path = d + "/" + name
        good = open(path, "rb").read()
        expect = [_json(x) for x in q.peek(3)]
        _add(q, 4)
        full = open(path, "rb").read()
        for cut in range(len(good), len(full)):  # power lost after `cut` bytes of record 4
            with open(path, "wb") as f:
                f.write(full[:cut])
            r = FlashQueue(d)
            assert r.last_seq == 3, cut
            assert [_json(x) for x in r.peek(9)] == expect
            assert open(path, "rb").read() == good  # tail cut back to the last whole record
            assert r.repaired == cut - len(good)
            assert _add(r, 5) == 4  # the torn record's seq was never published: reused
    finally:
        rmtree(d)


def test_garbage_tail_and_torn_new_segment_and_repair_leftover():
    d = make_tmpdir()
    try:
        q = FlashQueue(d, seg_bytes=120)
        for i in range(1, 8):
            _add(q, i)
        names = _seg_files(d)
        assert len(names) >= 2
        with open(d + "/" + names[-1], "ab") as f:
            f.write(b"\x05\xff\x00\x13\x37\x00\x00")  # complete-looking frame, wrong CRC
        with open(d + "/" + names[-1] + ".tmp", "wb") as f:
            f.write(b"half a repair")
        with open(d + "/%08x.q" % 99, "wb") as f:
            f.write(b"\x06w01")  # new segment torn inside its schema frame
        r = FlashQueue(d, seg_bytes=120)
        assert r.last_seq == 7 and len(r) == 7
        assert [x[0] for x in r.peek(20)] == [1, 2, 3, 4, 5, 6, 7]
        assert _seg_files(d) == names and not [n for n in os.listdir(d) if n.endswith(".q.tmp")]
    finally:
        rmtree(d)


def test_torn_ack_pointer():
    d = make_tmpdir()
    try:
        q = FlashQueue(d)
        for i in range(1, 6):
            _add(q, i)
        q.ack(2)
        with open(d + "/ack.tmp", "w") as f:
            f.write("4")  # cut before its newline: incomplete, ignored
        assert FlashQueue(d).acked == 2
        with open(d + "/ack.tmp", "w") as f:
            f.write("4\n")  # cut between write and rename: complete, newer
        assert FlashQueue(d).acked == 4
    finally:
        rmtree(d)


def test_overflow_drops_oldest_segment_and_counts():
    d = make_tmpdir()
    try:
        q = FlashQueue(d, max_bytes=600, seg_bytes=200)
        for i in range(1, 61):
            _add(q, i)
        assert q.bytes_used() <= 600
        assert q.dropped > 0 and q.dropped + len(q) == 60  # every record is either pending or counted
        got = [x[0] for x in q.peek(100)]
        assert got == list(range(61 - len(q), 61))  # the newest survive, contiguous
        q2 = FlashQueue(d, max_bytes=600, seg_bytes=200)
        assert q2.acked == 60 - len(q) and q2.last_seq == 60
    finally:
        rmtree(d)


def test_corrupt_sealed_segment_is_skipped_and_counted():
    d = make_tmpdir()
    try:
        q = FlashQueue(d, seg_bytes=150)
        for i in range(1, 16):
            _add(q, i)
        names = _seg_files(d)
        first2 = int(names[1][:8], 16)
        p = d + "/" + names[0]
        b = bytearray(open(p, "rb").read())
        b[-3] ^= 0x55  # flash damage inside the last record of a sealed segment
        with open(p, "wb") as f:
            f.write(b)
        r = FlashQueue(d, seg_bytes=150)
        got = [x[0] for x in r.peek(100)]
        assert got == [s for s in range(1, 16) if s != first2 - 1]
        assert r.dropped == 1
        r.peek(100)
        assert r.dropped == 1  # counted once however often it is read
    finally:
        rmtree(d)


def test_schema_change_starts_a_new_segment():
    d = make_tmpdir()
    try:
        q = FlashQueue(d)
        _add(q, 1)
        q.append(1764000000000, "rtc", ["w01018"], [1.5], ["C"], [True])
        got = q.peek(5)
        assert [x[3] for x in got] == [P, ["w01018"]]
        assert _json(got[1]) == b'{"ts":1764000000000,"seq":2,"clk":"rtc","readings":{"w01018":{"v":1.5,"f":"C"}}}'
        assert len(_seg_files(d)) == 2
    finally:
        rmtree(d)


def test_failed_first_write_of_a_new_segment_seals_it():
    """Flash full while writing the first record of a fresh segment: the next record must not be
    appended behind the torn bytes (replay would stop there), it starts a new segment."""
    import flashqueue as fq
    d = make_tmpdir()
    real_open = open

    def failing_open(path, mode="r"):
        if mode == "ab":
            f = real_open(path, "ab")
            f.write(b"\x09\x01")  # the start of a frame, then the flash is full
            f.close()
            raise OSError(28)
        return real_open(path, mode)

    try:
        q = FlashQueue(d)
        _add(q, 1)
        p2 = ["w01018", "w00000"]  # a new schema: a fresh segment
        fq.open = failing_open
        try:
            q.append(1764000120000, "ntp", p2, [1.0, 2.0], ["N", "N"], [True, True])
            assert False, "the write should have failed"
        except OSError:
            pass
        finally:
            fq.open = real_open
        assert q.append(1764000180000, "ntp", p2, [3.0, 4.0], ["N", "N"], [True, True]) == 2
        got = q.peek(10)
        assert [g[0] for g in got] == [1, 2], [g[0] for g in got]
        assert got[1][3] == p2 and [r[0] for r in got[1][4]] == [3.0, 4.0]
        files = _seg_files(d)
        assert files == ["00000001.q", "00000002.q"], files  # the record-less sealed file was rewritten
        assert q.bytes_used() == sum(os.stat(d + "/" + n)[6] for n in files)
        q.ack(2)
        assert len(q) == 0 and q.peek(10) == []
    finally:
        rmtree(d)


def test_losses_are_counted_on_flash_until_told():
    d = make_tmpdir()
    try:
        q = FlashQueue(d, max_bytes=600, seg_bytes=200)
        for i in range(1, 61):
            _add(q, i)
        lost = q.dropped
        assert lost > 0
        assert FlashQueue(d, max_bytes=600, seg_bytes=200).dropped == lost  # over a reboot
        # A cut between writing lost.tmp and its rename: the complete tmp is the newer count.
        with open(d + "/lost.tmp", "w") as f:
            f.write("%d\n" % (lost + 5))
        q = FlashQueue(d, max_bytes=600, seg_bytes=200)
        assert q.dropped == lost + 5 and "lost.tmp" in os.listdir(d)  # recovery keeps pointer tmps
        q.lost_told()
        assert FlashQueue(d, max_bytes=600, seg_bytes=200).dropped == 0
        # A torn told.tmp (no newline) is ignored: the count told before stands.
        with open(d + "/told.tmp", "w") as f:
            f.write("99")
        q = FlashQueue(d, max_bytes=600, seg_bytes=200)
        assert q.dropped == 0
        for i in range(61, 121):
            _add(q, i)
        more = q.dropped
        assert more > 0
        assert FlashQueue(d, max_bytes=600, seg_bytes=200).dropped == more  # only the new losses
    finally:
        rmtree(d)


def test_a_cut_while_dropping_a_segment_over_counts_never_under_counts():
    # Power fails after the loss is on flash but before the ack pointer moves and the segment goes
    # (the write order of _enforce_bound): at the next boot the records are still there and counted
    # as lost; the next overflow counts them again. Every record is pending or counted, never neither.
    d = make_tmpdir()
    try:
        q = FlashQueue(d, max_bytes=600, seg_bytes=200)
        n = 0
        cut = [False]

        def dying_store(v):
            cut[0] = True
            raise OSError("power cut")
        while not cut[0]:
            n += 1
            q._ack.store = dying_store  # the ack write of the first overflow dies
            try:
                _add(q, n)
            except OSError:
                break
        assert cut[0] and q.dropped > 0
        q = FlashQueue(d, max_bytes=600, seg_bytes=200)  # the reboot
        stored = n - 1  # the record being appended at the cut was never stored
        assert q.last_seq == stored and q.dropped > 0 and q.dropped + len(q) > stored  # counted twice
        for i in range(n, n + 60):
            _add(q, i)
        assert q.dropped + len(q) >= stored + 60
    finally:
        rmtree(d)
