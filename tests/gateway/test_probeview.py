"""probeview: the registers of a probe read back as the firmware decodes them, under every type and
order (checked against the firmware's own encoder), the rows a probe prints, and limits as text."""

import sys
from pathlib import Path

from edgemon.alarms.rules.base import Limit
from edgemon.probeview import ORDERS, TYPES, all_orders, decode, limit_text, rows

FW = Path(__file__).resolve().parents[2] / "firmware"
sys.path[:0] = [str(FW), str(FW / "host")]


def test_every_type_and_order_decodes_as_the_firmware_encodes():
    from regencode import encode  # the firmware side's inverse of its decode

    for typ in TYPES:
        for order in ORDERS:
            v = -1234.5 if typ.startswith("float") else (-1234 if typ.startswith("int") else 54321)
            assert decode(encode(v, typ, order), typ, order) == v, (typ, order)
    seen = all_orders(encode(35.2, "float32", "CDAB"))
    assert abs(seen["float32 CDAB"] - 35.2) < 1e-5 and abs(seen["float32 ABCD"] - 35.2) > 1
    assert "float64 ABCD" not in seen  # two registers cannot be a float64


def test_rows_locate_each_value_in_its_block():
    result = {"cod": {"unit": 1, "blocks": [[3, 0, "420CCCCD0001", [0, 0, -1, 2]], [1, 10, "10", [1, 0]]],
                      "values": {"w01018": [35.2, "N", "float32", "ABCD"], "w00000": [1, "N", "bit", 0]}}}
    got = rows(result, {"w01018": "mg/L"}, {"w01018": "<= 40"})
    assert got[0]["raw"] == "420C CCCD" and got[0]["regs"] == [0x420C, 0xCCCD] and got[0]["limit"] == "<= 40"
    assert got[0]["unit"] == "mg/L" and got[1]["raw"] == "1" and got[1]["regs"] == []
    dead = rows({"x": {"unit": 2, "blocks": [[3, 0, "no answer (flag B or D)", [0, 0]]],
                       "values": {"w01018": [None, "B", "float32", "ABCD"]}}}, {}, {})
    assert dead[0]["raw"] == "no answer (flag B or D)" and dead[0]["value"] is None


def test_limits_as_text():
    assert limit_text(Limit(max=40)) == "<= 40" and limit_text(Limit(min=6, max=9)) == "6-9"
    assert limit_text(Limit(min=2)) == ">= 2" and limit_text(None) == ""
    assert limit_text(Limit(max=8, cold_max=15)) == "<= 8 (cold: <= 15)"
