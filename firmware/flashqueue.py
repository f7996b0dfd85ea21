"""Crash-safe store-and-forward queue on flash: every record is appended here before it is
published and leaves only once acknowledged. Survives power cuts at any instant without fsync.
Over 400 lines on purpose: every part of it (frames, segment reader, append, replay, ack) is in the
poll loop's heap, and a module of its own costs live heap on the device (sockio.py's five small
functions: ~500 B); the startup-only part, recovery, is queuerecover.py, unloaded after boot."""
# On-flash layout, in dir/:
#   <first seq, 8 hex>.q   append-only segment: frame* where frame = uvarint(len) body crc16(le);
#                          the first frame is the schema (parameter codes, comma-separated), the
#                          rest are records (reccodec), each delta-coded against the previous one.
#   ack                    highest seq the broker acknowledged (pointer.py: tmp + rename).
#   lost, told             records dropped (overflow, damage) since the queue began, and how many of
#                          them an event has reported (pointer.py; both only grow, so a torn write
#                          leaves the older value): a reboot before the broker is reachable cannot
#                          make a loss silent.
# A power cut can only tear the tail of the newest segment (the record being written, never yet
# published): recovery keeps the longest valid prefix. seq needs no file of its own: it is the
# last stored record's seq (or the ack pointer once everything has been sent and deleted).
import os
from array import array
try:
    from binascii import crc32
except ImportError:  # port built without it: bitwise CRC-32, slower but the same numbers
    def crc32(b, c=0):
        c ^= 0xFFFFFFFF
        for x in b:
            c ^= x
            for _ in range(8):
                c = (c >> 1) ^ (0xEDB88320 & -(c & 1))
        return c ^ 0xFFFFFFFF
from reccodec import State, encode, decode, put_uvarint, get_uvarint
from pointer import Pointer
from compat import call_once, const

_SUFFIX = ".q"
_ST_SIZE = const(6)  # os.stat(): st_size
# The replay cursor self._rd: [segment first seq, file offset of the next frame, State before it, schema]
_RD_FIRST = const(0)
_RD_OFF = const(1)
_RD_STATE = const(2)
_RD_SCHEMA = const(3)


def _crc16(b):
    return crc32(b) & 0xFFFF


def frame(body):
    out = bytearray()
    put_uvarint(out, len(body))
    out.extend(body)
    c = _crc16(body)
    out.append(c & 0xFF)
    out.append(c >> 8)
    return out


def _write_schema(f, params):
    """The schema frame (the codes joined by ","), written piece by piece with a running CRC: no
    block the size of the whole list is needed (a segment may start in a fragmented heap, where a
    140-byte join failed and cost the record being stored). Codes are ASCII (config.py)."""
    n = len(params) - 1
    for p in params:
        n += len(p)
    head = bytearray()
    put_uvarint(head, n)
    f.write(head)
    c = 0
    sep = b""
    for p in params:
        piece = sep + p.encode()
        c = crc32(piece, c)
        f.write(piece)
        sep = b","
    f.write(bytes((c & 0xFF, (c >> 8) & 0xFF)))


def _size(path):
    try:
        return os.stat(path)[_ST_SIZE]
    except OSError:
        return -1


class _SegReader:
    """Sequential frame reader over one segment file; frame() -> body (a memoryview into the
    reader's one buffer, valid until the next call), or None at a clean end, or raises ValueError
    at a torn / corrupt frame (self.good = offset after the last good one)."""

    def __init__(self, path, offset, q):
        self.f = open(path, "rb")
        self.size = _size(path)
        if offset:
            self.f.seek(offset)
        self.good = offset
        self.q = q  # its _buf: one buffer per queue, grown to the longest frame, reused by every reader
        self.mv = memoryview(q._buf)

    def frame(self):
        if self.good >= self.size:
            return None
        mv = self.mv
        got = self.f.readinto(mv[:3])  # a uvarint length below 2**21 fits in 3 bytes
        try:
            n, used = get_uvarint(mv[:got], 0)
        except IndexError:
            raise ValueError("torn length")
        if n > 4096:
            raise ValueError("implausible frame length %d" % n)
        end = used + n + 2
        if end > len(mv):
            buf = bytearray(end + 32)
            buf[:got] = mv[:got]
            self.q._buf = buf
            self.mv = mv = memoryview(buf)
        if end > got:
            got += self.f.readinto(mv[got:end])
        elif end < got:  # tiny frame: give back what we over-read
            self.f.seek(self.good + end)
            got = end
        if got < end:
            raise ValueError("torn frame")
        body = mv[used:used + n]
        if _crc16(body) != mv[end - 2] | (mv[end - 1] << 8):
            raise ValueError("bad crc")
        self.good += end
        return body

    def close(self):
        self.f.close()


def schema_list(b, known):
    """The parameter codes of a schema frame: `known` itself (shared, no copy) when the frame spells
    it, else a new list allocated at its exact size (split() grows one to a 256-byte block)."""
    pos = 0
    for p in known or ():
        p = p.encode()
        end = pos + len(p)
        if b[pos:end] != p or (end < len(b) and b[end] != 44):  # 44: ","
            pos = -1
            break
        pos = end + 1
    if known is not None and pos == len(b) + 1:
        return known
    b = bytes(b)
    out = [None] * (b.count(b",") + 1)
    pos = 0
    for i in range(len(out)):
        end = b.find(b",", pos)
        if end < 0:
            end = len(b)
        out[i] = b[pos:end].decode()
        pos = end + 1
    return out


class FlashQueue:
    def __init__(self, dirpath, max_bytes=1572864, seg_bytes=32768, log=None, params=None):
        self.dir = dirpath.rstrip("/")
        self.max_bytes = max_bytes
        self.seg_bytes = seg_bytes
        self.log = log
        self.dropped = 0  # records lost to overflow or corruption since boot, plus those before it
        # that no event reported (status "dropped"; recovery reads them from the lost file)
        self._untold = 0
        self.repaired = 0  # torn bytes cut from the tail at recovery
        self._ack = Pointer(self.dir + "/ack")
        # The segments, oldest first (the last one is open for appends): first seq and bytes of each,
        # in two arrays of uint32 (8 bytes a segment; a list of lists took ~120: 5.8 KB for a full queue).
        self._seg_seq = array("I")
        self._seg_len = array("I")
        self._tail = State()
        self._tail_schema = params  # the node's params: the stored schema, if it matches, shares this list
        self._rd = None  # replay cursor, see _seek
        self._bad = []  # segments whose unreadable records were already counted
        # The frame buffer every _SegReader of this queue reads into, sized for the longest record
        # of params (9 bytes a reading at most, plus the head): grown if a longer frame turns up.
        self._buf = bytearray(24 + 9 * len(params) if params else 128)
        # Back from flash: segments, torn tail cut, acknowledged segments dropped.
        # (Startup only, unloaded after. The segment reader and helpers are handed over: recovery
        # imports nothing back from this module, no import cycle.)
        call_once("queuerecover", "recover_queue", self, _SegReader, schema_list, _size, _SUFFIX)

    # ---- recovery ----

    def _path(self, first):
        return "%s/%08x%s" % (self.dir, first, _SUFFIX)

    # ---- size and counts ----

    def __len__(self):
        """Records stored and not yet acknowledged."""
        return self.last_seq - self._ack.value

    @property
    def acked(self):
        return self._ack.value

    def bytes_used(self):
        n = 0
        for b in self._seg_len:
            n += b
        return n

    def segments(self):
        """[(first seq, bytes), ...] of the segment files, oldest first (tests, diagnostics)."""
        return list(zip(self._seg_seq, self._seg_len))

    def _add_seg(self, first, nbytes):
        self._seg_seq.append(first)
        self._seg_len.append(nbytes)

    def _pop_seg(self, i):
        """Forget segment i (0: the oldest, -1: the newest); returns its first seq."""
        first = self._seg_seq[i]
        if i == 0:
            self._seg_seq = self._seg_seq[1:]
            self._seg_len = self._seg_len[1:]
        else:
            self._seg_seq = self._seg_seq[:-1]
            self._seg_len = self._seg_len[:-1]
        return first

    # ---- append (before publish) ----

    def append(self, ts, clk, params, values, flags, f32s):
        """Store one record; returns its seq. params/values/flags/f32s: lists in record order."""
        seq = self.last_seq + 1
        if not self._seg_seq or self._tail_schema != params:
            self._start_segment(seq, params)
        st = self._tail
        prev = (st.seq, st.ts, st.tags)
        fr = frame(encode(st, seq, ts, clk, values, flags, f32s))
        used = self._seg_len[-1]
        if (prev[0] or used >= self.seg_bytes) and used + len(fr) > self.seg_bytes:
            # Segment full (or sealed after a failed write, even one that held no record yet): it
            # stays within seg_bytes, so the bound on flash use is exact.
            self._start_segment(seq, params)
            st = self._tail
            prev = (0, 0, None)
            fr = frame(encode(st, seq, ts, clk, values, flags, f32s))
        try:
            with open(self._path(self._seg_seq[-1]), "ab") as f:  # closed at once: LittleFS commits on close
                f.write(fr)
        except Exception:
            # Not stored (flash full or failing). Part of the frame may be there: seal this
            # segment so nothing is appended behind the damage; replay stops at it cleanly.
            st.seq, st.ts, st.tags = prev
            self._seg_len[-1] = self.seg_bytes
            raise
        self._seg_len[-1] += len(fr)
        self.last_seq = seq
        return seq

    def _start_segment(self, seq, params):
        if self._seg_seq and self._seg_seq[-1] == seq:
            self._pop_seg(-1)  # the tail holds no record (sealed by a failed write): its file is rewritten
        self._enforce_bound()
        path = self._path(seq)
        with open(path, "wb") as f:
            _write_schema(f, params)
        self._add_seg(seq, _size(path))
        self._tail = State()
        if self._tail_schema != params:  # a new schema; the same one (segment full) keeps its list
            self._tail_schema = params[:]  # a copy of exactly its size (list() grows it append by append)

    def _enforce_bound(self):
        # Room for one more full segment, else the oldest goes (newest data matters most to
        # inspectors); what it held unsent is counted, reported, and skipped by the ack pointer.
        while self._seg_seq and self.bytes_used() + self.seg_bytes > self.max_bytes:
            last = self._seg_seq[1] - 1 if len(self._seg_seq) > 1 else self.last_seq
            if last > self._ack.value:
                self.lose(last - self._ack.value)  # on flash before the records go: over- not under-counted
                self._ack.store(last)
            self._remove_first()

    def _remove_first(self):
        first = self._pop_seg(0)
        if self._rd is not None and self._rd[_RD_FIRST] == first:
            self._rd = None
        try:
            os.remove(self._path(first))
        except OSError:
            pass

    def _drop_acked(self):
        while len(self._seg_seq) > 1 and self._seg_seq[1] - 1 <= self._ack.value:
            self._remove_first()

    # ---- replay (after publish) ----
    # The cursor is self._rd (the _RD_* offsets); no file stays open between calls, so appends
    # (other handle, committed on close) are seen.

    def _seek(self, want):
        """Place the cursor on the first stored record with seq >= want; False if none is stored."""
        self._rd = None
        idx = None
        for i in range(len(self._seg_seq)):
            if self._seg_seq[i] <= want:
                idx = i
        if idx is None:
            idx = 0  # want was dropped: the oldest stored record is next
        if idx >= len(self._seg_seq):
            return False
        first = self._seg_seq[idx]
        r = _SegReader(self._path(first), 0, self)
        try:
            b = r.frame()
            # Usually the open segment's schema: compared in place, then shared (one list of param
            # strings in the heap).
            schema = schema_list(b, self._tail_schema)
            st = State()
            n = len(schema)
            try:
                while True:
                    pos = r.good
                    seq, ts, tags = st.seq, st.ts, st.tags
                    b = r.frame()
                    if b is None:
                        break
                    decode(st, b, n)
                    if st.seq >= want:
                        st.seq, st.ts, st.tags = seq, ts, tags
                        r.good = pos
                        break
            except (ValueError, IndexError):
                pass  # stop at the last good frame; peek() finds the damage and skips it
            self._rd = [first, r.good, st, schema]
        finally:
            r.close()
        return True

    def peek(self, n, after=None, rows=True):
        """Up to n stored records after seq `after` (default: the ack pointer), oldest first, as
        (seq, ts, clk, schema, rows); rows as reccodec.decode (n=1 and a list of 3 entries per
        param: the record is decoded into that list, flat). Unreadable records are skipped
        and counted in dropped (never happens short of flash damage: only the tail can tear)."""
        if after is None:
            after = self._ack.value
        out = []
        want = after + 1
        r = None
        try:
            while len(out) < n and want <= self.last_seq:
                rd = self._rd
                if rd is None or rd[_RD_STATE].seq != want - 1:
                    if r is not None:
                        r.close()
                        r = None
                    if not self._seek(want):
                        break
                    rd = self._rd
                if r is None:
                    r = _SegReader(self._path(rd[_RD_FIRST]), rd[_RD_OFF], self)
                first, st, schema = rd[_RD_FIRST], rd[_RD_STATE], rd[_RD_SCHEMA]
                rec = None
                try:
                    b = r.frame()
                    if b is not None:
                        k = len(schema)
                        if rows is not True and rows and len(rows) != 3 * k:
                            rows = [None] * (3 * k)  # a segment from before a config change: its own size
                        rec = decode(st, b, k, rows)
                except (ValueError, IndexError):
                    pass
                rd[_RD_OFF] = r.good
                if rec is None:
                    nxt = self._next_first(first)
                    if nxt is None:
                        break  # end of the open tail
                    if st.seq < nxt - 1:
                        self._count_lost(first, nxt - 1 - max(st.seq, after))
                    r.close()
                    r = None
                    self._rd = None
                    want = nxt if want < nxt else want
                    continue
                seq, ts, clk, got = rec
                if seq >= want:
                    out.append((seq, ts, clk, schema, got))
                    want = seq + 1
        finally:
            if r is not None:
                r.close()
        return out

    def _next_first(self, first):
        for s in self._seg_seq:
            if s > first:
                return s
        return None

    def _count_lost(self, first, lost):
        if lost <= 0 or first in self._bad:
            return
        self._bad.append(first)
        self.lose(lost)
        if self.log:
            self.log("queue: %d record(s) unreadable in segment %08x, skipped" % (lost, first))

    def lose(self, n):
        """n records will never be sent: counted in dropped, and on flash until lost_told()."""
        self.dropped += n
        self._untold += n
        p = Pointer(self.dir + "/lost")  # rare: no Pointer kept in the heap for it
        p.store(p.value + n)

    def lost_told(self):
        """An event (PUBACKed) has reported every loss so far."""
        if self._untold:
            self._untold = 0
            Pointer(self.dir + "/told").store(Pointer(self.dir + "/lost").value)

    def ack(self, seq):
        """The broker has every record up to seq: persist that, delete segments wholly behind it."""
        if seq <= self._ack.value:
            return
        if seq > self.last_seq:
            seq = self.last_seq
        self._ack.store(seq)
        self._drop_acked()

    def continue_from(self, seq):
        """Empty queue only: the next record gets seq + 1 (kept in the ack pointer)."""
        if self.last_seq == 0 and not self._seg_seq and seq > 0:
            self._ack.store(seq)
            self.last_seq = seq

    def close(self):
        self._rd = None
