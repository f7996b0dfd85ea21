"""Compact binary form of a record for the flash queue (about 4.8 bytes per float32 reading).
Fields are deltas from the previous record of the same segment, so a segment is read in order."""
import struct
from compat import const, FLAGS  # a flag's index there is its 3-bit code in the stored tags

CLKS = ("none", "rtc", "ntp")
_K_NULL = const(0)
_K_F32 = const(1)
_K_F64 = const(2)
_K_INT = const(3)
_SAME_TAGS = const(4)  # head-byte bit: the per-reading tags repeat those of the previous record
_ABSENT = const(0x20)  # tag bit: this parameter was not sampled in this record (its analyzer was not due)
# decode() into a flat list: reading i's value, flag and is_f32 at _ROW_N * i + these (record.py reads them)
_ROW_VALUE = const(0)
_ROW_FLAG = const(1)
_ROW_F32 = const(2)
_ROW_N = const(3)


def put_uvarint(buf, n):
    while n > 0x7F:
        buf.append((n & 0x7F) | 0x80)
        n >>= 7
    buf.append(n)


def get_uvarint(b, pos):
    n = 0
    shift = 0
    while True:
        x = b[pos]
        pos += 1
        n |= (x & 0x7F) << shift
        if not x & 0x80:
            return n, pos
        shift += 7


def _zz(n):
    return n * 2 if n >= 0 else -n * 2 - 1


def _unzz(n):
    return n >> 1 if not n & 1 else -((n + 1) >> 1)


class State:
    """What a record is delta-coded against: the previous record of the segment."""

    def __init__(self):
        self.seq = 0
        self.ts = 0
        self.tags = None  # bytes, one tag per reading


def kind_of(v, f32):
    if v is None or v != v or v in (float("inf"), float("-inf")):
        return _K_NULL  # the wire says null for these anyway
    if type(v) is int:
        return _K_INT if -0x80000000 <= v <= 0x7FFFFFFF else _K_F64
    return _K_F32 if f32 and -3.4e38 < v < 3.4e38 else _K_F64


def encode(st, seq, ts, clk, values, flags, f32s):
    """Body bytes of one record; values/flags/f32s are lists in schema order (flag None: the
    parameter was not sampled this time, stored as a tag only). Updates st."""
    tags = bytearray(len(values))
    kinds = tags  # reuse: kind is bits 3-4 of the tag
    for i in range(len(values)):
        f = flags[i]
        tags[i] = _ABSENT if f is None else FLAGS.index(f) | (kind_of(values[i], f32s[i]) << 3)
    out = bytearray()
    put_uvarint(out, seq - st.seq)
    put_uvarint(out, _zz(ts - st.ts))
    tags = bytes(tags)
    same = st.tags == tags
    out.append(CLKS.index(clk) | (_SAME_TAGS if same else 0))
    if not same:
        out.extend(tags)
    for i in range(len(values)):
        k = kinds[i] >> 3
        v = values[i]
        if k == _K_F32:
            out.extend(struct.pack("<f", v))
        elif k == _K_F64:
            out.extend(struct.pack("<d", v))
        elif k == _K_INT:
            put_uvarint(out, _zz(v))
    st.seq = seq
    st.ts = ts
    st.tags = tags
    return out


def decode(st, body, n, rows=True):
    """(seq, ts, clk, rows) from a body with n readings; updates st. rows=True: a new list of
    (value, flag, is_f32) per reading (flag None: not sampled in this record). rows=a list of 3n
    entries: filled in place, flat, value/flag/is_f32 of reading i at 3i (the node decodes every
    record into one such list). rows=False: the body is checked the same way but no rows are built
    (recovery scans a segment without filling the heap).
    Raises ValueError/IndexError on a body that does not parse (the CRC makes that rare)."""
    d, pos = get_uvarint(body, 0)
    seq = st.seq + d
    d, pos = get_uvarint(body, pos)
    ts = st.ts + _unzz(d)
    head = body[pos]
    pos += 1
    if head & 3 > 2:
        raise ValueError("bad clk")
    if head & _SAME_TAGS:
        if st.tags is None:
            raise ValueError("tags repeat with no previous record")
        tags = st.tags
    else:
        tags = bytes(body[pos:pos + n])
        pos += n
    flat = rows is not True and rows
    out = rows if flat else ([None] * n if rows else None)  # one allocation, not a list grown append by append
    for i in range(n):
        t = tags[i]
        if t & _ABSENT:
            v = f = None
            k = _K_NULL
        else:
            k = t >> 3
            f = FLAGS[t & 7]
            if k == _K_F32:
                if pos + 4 > len(body):
                    raise IndexError  # cut short (CPython's struct.error is no IndexError)
                v = struct.unpack_from("<f", body, pos)[0] if rows else None
                pos += 4
            elif k == _K_F64:
                if pos + 8 > len(body):
                    raise IndexError
                v = struct.unpack_from("<d", body, pos)[0] if rows else None
                pos += 8
            elif k == _K_INT:
                d, pos = get_uvarint(body, pos)
                v = _unzz(d)
            else:
                v = None
        if flat:
            j = _ROW_N * i
            out[j + _ROW_VALUE] = v
            out[j + _ROW_FLAG] = f
            out[j + _ROW_F32] = k == _K_F32
        elif rows:
            out[i] = (v, f, k == _K_F32)
    if pos != len(body):
        raise ValueError("trailing bytes")
    st.seq = seq
    st.ts = ts
    st.tags = tags
    return seq, ts, CLKS[head & 3], out
