import struct
from decode import decode, encode, register_count
from fakes import raises

# 35.2f = 0x420CCCCD, -1.5f = 0xBFC00000
_WIRE = {
    "ABCD": ([0x420C, 0xCCCD], [0xBFC0, 0x0000]),
    "CDAB": ([0xCCCD, 0x420C], [0x0000, 0xBFC0]),
    "BADC": ([0x0C42, 0xCDCC], [0xC0BF, 0x0000]),
    "DCBA": ([0xCDCC, 0x0C42], [0x0000, 0xC0BF]),
}


def _f32(x):
    return struct.unpack(">f", struct.pack(">f", x))[0]


def test_float32_all_orders():
    for order in _WIRE:
        a, b = _WIRE[order]
        assert decode(a, "float32", order) == _f32(35.2), order
        assert decode(b, "float32", order) == -1.5, order
        assert encode(35.2, "float32", order) == a, order
        assert encode(-1.5, "float32", order) == b, order


def test_decode_with_offset():
    regs = [7, 0x420C, 0xCCCD, 1]
    assert decode(regs, "float32", "ABCD", 1) == _f32(35.2)
    assert decode(regs, "uint16", "ABCD", 3) == 1


def test_int16_uint16():
    assert decode([0xFFFE], "int16") == -2
    assert decode([0xFFFE], "uint16") == 65534
    assert decode([0x0100], "uint16", "BADC") == 1
    assert decode([0xFEFF], "int16", "DCBA") == -2
    assert decode([0x0100], "uint16", "CDAB") == 256  # word swap means nothing for one register


def test_int32_uint32_orders():
    v = 0x12345678
    assert decode([0x1234, 0x5678], "uint32", "ABCD") == v
    assert decode([0x5678, 0x1234], "uint32", "CDAB") == v
    assert decode([0x3412, 0x7856], "uint32", "BADC") == v
    assert decode([0x7856, 0x3412], "uint32", "DCBA") == v
    assert decode([0xFFFF, 0xFFFD], "int32", "ABCD") == -3
    assert decode([0xFFFD, 0xFFFF], "int32", "CDAB") == -3
    assert decode([0xFFFF, 0xFFFD], "uint32", "ABCD") == 0xFFFFFFFD
    for order in ("ABCD", "CDAB", "BADC", "DCBA"):
        assert decode(encode(-123456, "int32", order), "int32", order) == -123456


def test_decode_errors_and_counts():
    raises(ValueError, decode, [1, 2], "float64")
    raises(ValueError, decode, [1, 2], "float32", "ACBD")
    raises(ValueError, decode, [1], "float32")
    assert register_count("int16") == 1 and register_count("uint32") == 2
