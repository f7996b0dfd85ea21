"""A value as Modbus registers: the inverse of decode.decode, in the same types and word/byte
orders. For test fakes and simulators; the node never loads it."""
import struct
from decode import _FMT, _swaps


def encode(value, typ, order="ABCD"):
    """value -> list of 16-bit registers, laid out as decode(regs, typ, order) reads them."""
    fmt = _FMT.get(typ)
    if fmt is None:
        raise ValueError("unknown type " + str(typ))
    word_swap, byte_swap = _swaps(order)
    raw = struct.pack(fmt, value)
    n = len(raw) // 2
    out = [0] * n
    for i in range(n):
        hi = raw[2 * i]
        lo = raw[2 * i + 1]
        if byte_swap:
            hi, lo = lo, hi
        out[n - 1 - i if word_swap else i] = (hi << 8) | lo
    return out
