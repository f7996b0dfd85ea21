"""Pure register decoding: 16-bit Modbus registers <-> int16/uint16/int32/uint32/float32/float64.
Orders name the byte layout of a 32-bit pair: ABCD big-endian, CDAB word-swapped, BADC byte-swapped, DCBA reversed."""
import struct

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
TYPES = ("float32", "float64", "int16", "uint16", "int32", "uint32")
_FMT = {"float32": ">f", "float64": ">d", "int32": ">i", "uint32": ">I", "int16": ">h", "uint16": ">H"}
_NREGS = {"float32": 2, "float64": 4, "int32": 2, "uint32": 2, "int16": 1, "uint16": 1}
# One scratch buffer per size: decoding allocates nothing but the result.
_BUFS = {1: bytearray(2), 2: bytearray(4), 4: bytearray(8)}


def register_count(typ):
    n = _NREGS.get(typ)
    if n is None:
        raise ValueError("unknown type " + str(typ))
    return n


def _swaps(order):
    # The same rule for 1, 2 and 4 registers: C/D first = least significant word first (word swap);
    # B/D first = the two bytes inside each register swapped.
    if order == "ABCD":
        return False, False
    if order == "CDAB":
        return True, False
    if order == "BADC":
        return False, True
    if order == "DCBA":
        return True, True
    raise ValueError("unknown order " + str(order))


def decode(regs, typ, order="ABCD", start=0):
    """Decode the value of type typ starting at regs[start]."""
    fmt = _FMT.get(typ)
    if fmt is None:
        raise ValueError("unknown type " + str(typ))
    word_swap, byte_swap = _swaps(order)
    n = _NREGS[typ]
    if len(regs) < start + n:
        raise ValueError("not enough registers")
    buf = _BUFS[n]
    for i in range(n):
        r = regs[start + (n - 1 - i if word_swap else i)]
        hi = (r >> 8) & 0xFF
        lo = r & 0xFF
        if byte_swap:
            hi, lo = lo, hi
        buf[2 * i] = hi
        buf[2 * i + 1] = lo
    return struct.unpack(fmt, buf)[0]


def bit_field(reg, shift, width=1):
    """Bits shift..shift+width-1 of a register as an unsigned int (a status bit when width is 1)."""
    return (reg >> shift) & ((1 << width) - 1)
