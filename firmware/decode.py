"""Pure register decoding: 16-bit Modbus registers -> float32/int16/uint16/int32/uint32.
Word orders: ABCD big-endian, CDAB word-swapped, BADC byte-swapped, DCBA fully reversed."""
import struct

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
TYPES = ("float32", "int16", "uint16", "int32", "uint32")
_FMT = {"float32": ">f", "int32": ">i", "uint32": ">I", "int16": ">h", "uint16": ">H"}


def register_count(typ):
    if typ == "int16" or typ == "uint16":
        return 1
    if typ in _FMT:
        return 2
    raise ValueError("unknown type " + str(typ))


def _to_abcd(regs, start, n, order, buf):
    # Put the wire bytes into canonical big-endian ABCD order in buf (len 2*n).
    if n == 1:
        r = regs[start]
        hi = (r >> 8) & 0xFF
        lo = r & 0xFF
        if order == "ABCD" or order == "CDAB":
            buf[0] = hi
            buf[1] = lo
        else:  # BADC/DCBA swap the bytes inside the word
            buf[0] = lo
            buf[1] = hi
        return
    r0 = regs[start]
    r1 = regs[start + 1]
    a = (r0 >> 8) & 0xFF
    b = r0 & 0xFF
    c = (r1 >> 8) & 0xFF
    d = r1 & 0xFF
    # Registers arrive as bytes [a b][c d]; the name says which value byte each position holds.
    if order == "ABCD":
        buf[0], buf[1], buf[2], buf[3] = a, b, c, d
    elif order == "CDAB":
        buf[0], buf[1], buf[2], buf[3] = c, d, a, b
    elif order == "BADC":
        buf[0], buf[1], buf[2], buf[3] = b, a, d, c
    elif order == "DCBA":
        buf[0], buf[1], buf[2], buf[3] = d, c, b, a
    else:
        raise ValueError("unknown order " + str(order))


_BUF2 = bytearray(2)
_BUF4 = bytearray(4)


def decode(regs, typ, order="ABCD", start=0):
    """Decode the value of type typ starting at regs[start]."""
    fmt = _FMT.get(typ)
    if fmt is None:
        raise ValueError("unknown type " + str(typ))
    if order not in ORDERS:
        raise ValueError("unknown order " + str(order))
    n = register_count(typ)
    if len(regs) < start + n:
        raise ValueError("not enough registers")
    buf = _BUF2 if n == 1 else _BUF4  # module-level scratch buffers: no allocation per value
    _to_abcd(regs, start, n, order, buf)
    return struct.unpack(fmt, buf)[0]


def encode(value, typ, order="ABCD"):
    """Inverse of decode (value -> list of registers); used by tests and simulators."""
    fmt = _FMT.get(typ)
    if fmt is None:
        raise ValueError("unknown type " + str(typ))
    raw = struct.pack(fmt, value)
    if len(raw) == 2:
        if order in ("BADC", "DCBA"):
            return [(raw[1] << 8) | raw[0]]
        return [(raw[0] << 8) | raw[1]]
    a, b, c, d = raw[0], raw[1], raw[2], raw[3]
    if order == "ABCD":
        w = (a, b, c, d)
    elif order == "CDAB":
        w = (c, d, a, b)
    elif order == "BADC":
        w = (b, a, d, c)
    elif order == "DCBA":
        w = (d, c, b, a)
    else:
        raise ValueError("unknown order " + str(order))
    return [(w[0] << 8) | w[1], (w[2] << 8) | w[3]]


def decode_float32(regs, order="ABCD", start=0):
    return decode(regs, "float32", order, start)
