import struct
from decode import decode, register_count, bit_field
from regencode import encode
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
    raises(ValueError, decode, [1, 2, 3], "float64")  # needs 4 registers
    raises(ValueError, decode, [1, 2], "float16")
    raises(ValueError, decode, [1, 2], "float32", "ACBD")
    raises(ValueError, decode, [1], "float32")
    assert register_count("int16") == 1 and register_count("uint32") == 2


def test_float64_all_orders():
    # 123456.789 = 0x40FE240C9FBE76C9; the order letters describe each 32-bit half, the halves swap with the words.
    wire = {"ABCD": [0x40FE, 0x240C, 0x9FBE, 0x76C9], "CDAB": [0x76C9, 0x9FBE, 0x240C, 0x40FE],
            "BADC": [0xFE40, 0x0C24, 0xBE9F, 0xC976], "DCBA": [0xC976, 0xBE9F, 0x0C24, 0xFE40]}
    for order in wire:
        assert decode(wire[order], "float64", order) == 123456.789, order
        assert encode(123456.789, "float64", order) == wire[order], order
    assert decode([0, 0] + wire["ABCD"], "float64", "ABCD", 2) == 123456.789
    assert register_count("float64") == 4


def test_bit_field():
    assert bit_field(0x0014, 2) == 1 and bit_field(0x0014, 3) == 0 and bit_field(0x0014, 4) == 1
    assert bit_field(0xABCD, 4, 8) == 0xBC and bit_field(0x8000, 15) == 1


def test_round_trip_every_type_and_order():
    for typ, vals in (("int16", (-32768, -1, 0, 32767)), ("uint16", (0, 1, 65535)),
                      ("int32", (-2147483648, -5, 2147483647)), ("uint32", (0, 4294967295)),
                      ("float32", (0.0, -1.5, 1024.0)), ("float64", (-0.1, 1e300))):
        for order in ("ABCD", "CDAB", "BADC", "DCBA"):
            for v in vals:
                regs = encode(v, typ, order)
                assert len(regs) == register_count(typ) and decode(regs, typ, order) == v, (typ, order, v)
