"""Startup only: a FlashQueue's recovery from what is on flash (find the segments, cut a torn tail,
drop what is acknowledged), and seq carried over from firmware 0.1. Imported for the call through
compat.call_once and unloaded after."""
import os


def adopt_legacy_seq(q, state_dir):
    # Firmware 0.1 kept seq in <state_dir>/seq: continue from it so the gateway sees no reset.
    try:
        with open(state_dir + "/seq") as f:
            t = f.read().strip()
    except OSError:
        return
    seq = int(t) if t.isdigit() else 0
    if q.last_seq == 0 and not q._seg_seq and seq > 0:  # empty queue: the next record gets seq + 1
        q._ack.store(seq)  # (kept in the ack pointer)
        q.last_seq = seq


def recover_queue(self, _SegReader, schema_list, _size, _SUFFIX):
    """FlashQueue.__init__'s recovery: find the segments, cut a torn tail, drop what is acknowledged.
    flashqueue.py hands over its segment reader, schema_list, _size and the segment suffix (its
    names, so no new ones are interned): this module imports nothing back from it (no cycle)."""
    from pointer import Pointer
    # Losses not yet reported by an event (before this boot): reported again, never forgotten.
    untold = Pointer(self.dir + "/lost").value - Pointer(self.dir + "/told").value
    self.dropped = self._untold = untold if untold > 0 else 0
    # One name at a time (os.ilistdir), not a list of them all: with a backlog there are dozens,
    # and a list that long needs a contiguous block a fragmented boot heap may not have.
    for name in _names(self.dir):
        if name.endswith(_SUFFIX + ".tmp"):
            os.remove(self.dir + "/" + name)  # an interrupted tail repair; the original is intact
        elif name.endswith(_SUFFIX) and len(name) == 8 + len(_SUFFIX):
            self._add_seg(int(name[:8], 16), _size(self.dir + "/" + name))
    _sort_segs(self._seg_seq, self._seg_len)
    self.last_seq = self._ack.value
    known = self._tail_schema  # the node's params, when it passed them
    self._tail_schema = None
    while self._seg_seq:
        first = self._seg_seq[-1]
        st, schema, good, size = _scan(self, first, known, _SegReader, schema_list)
        if schema is None or st.seq == 0:
            os.remove(self._path(first))  # torn before its first record was complete
            self._pop_seg(-1)
            continue
        if good < size:
            _truncate(self, first, good)
            self.repaired += size - good
        self._seg_len[-1] = good
        self._tail = st
        self._tail_schema = schema
        if st.seq > self.last_seq:
            self.last_seq = st.seq
        break
    # Segments wholly acknowledged before the cut may still be there.
    self._drop_acked()
    if self.log and self.repaired:
        self.log("queue: cut %d torn byte(s) from the newest segment" % self.repaired)


def _sort_segs(seqs, lens):
    # Oldest first, in place (insertion sort: a few dozen entries, and no new arrays).
    for i in range(1, len(seqs)):
        j = i
        while j and seqs[j - 1] > seqs[j]:
            seqs[j - 1], seqs[j] = seqs[j], seqs[j - 1]
            lens[j - 1], lens[j] = lens[j], lens[j - 1]
            j -= 1


def _names(path):
    if hasattr(os, "ilistdir"):
        for e in os.ilistdir(path):
            yield e[0]
    else:  # CPython
        for name in os.listdir(path):
            yield name


def _scan(self, first, known, _SegReader, schema_list):
    """Read a whole segment: (state after the last good record, schema, good bytes, file bytes).
    Records are checked, not kept: decode() builds no rows for them."""
    from reccodec import State, decode
    path = self._path(first)
    st = State()
    schema = None
    r = _SegReader(path, 0, self)
    try:
        try:
            b = r.frame()
            if b is not None:
                schema = schema_list(b, known)
                n = len(schema)
                while True:
                    b = r.frame()
                    if b is None:
                        break
                    decode(st, b, n, False)
                    if st.seq < first:
                        raise ValueError("seq below segment start")
        except (ValueError, IndexError):
            pass
        # decode() only updates st on success, so st is the last good record's state.
        return st, schema, r.good, r.size
    finally:
        r.close()


def _truncate(self, first, good):
    # MicroPython has no truncate(): copy the good prefix, then rename over (atomic on LittleFS).
    path = self._path(first)
    tmp = path + ".tmp"
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        left = good
        while left > 0:
            chunk = src.read(512 if left > 512 else left)
            if not chunk:
                break
            dst.write(chunk)
            left -= len(chunk)
    os.rename(tmp, path)
