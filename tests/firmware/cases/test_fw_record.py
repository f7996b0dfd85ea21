import json
import struct
from record import build_status, format_number, append_member, offline
from record_tools import OFFLINE, build_record


def _f32(x):
    return struct.unpack(">f", struct.pack(">f", x))[0]


def _keys_in_order(text, keys):
    pos = -1
    for k in keys:
        p = text.find('"%s":' % k)
        assert p > pos, (k, text)
        pos = p


def test_record_exact_bytes():
    r = build_record(1764000000000, 1234, "ntp",
                     [("w01018", _f32(35.2), "N"), ("w21003", None, "B")], {"w01018": True})
    assert r == (b'{"ts":1764000000000,"seq":1234,"clk":"ntp","readings":'
                 b'{"w01018":{"v":35.2,"f":"N"},"w21003":{"v":null,"f":"B"}}}')


def test_record_parses_back():
    r = build_record(1764000000123, 7, "ntp",
                     [("w01018", _f32(-1.5), "M"), ("w01001", 7, "N"), ("w00000", 0.1 + 0.2, "T")],
                     {"w01018": True})
    text = r.decode()
    d = json.loads(text)
    assert sorted(d.keys()) == ["clk", "readings", "seq", "ts"]
    _keys_in_order(text, ("ts", "seq", "clk", "readings"))
    _keys_in_order(text, ("w01018", "w01001", "w00000"))
    assert d["ts"] == 1764000000123 and d["seq"] == 7 and d["clk"] == "ntp"
    assert d["readings"]["w01018"] == {"v": -1.5, "f": "M"}
    assert d["readings"]["w01001"] == {"v": 7, "f": "N"}
    assert d["readings"]["w00000"]["v"] == 0.1 + 0.2  # doubles round-trip exactly


def test_dict_readings_sorted():
    r = build_record(1, 2, "none", {"w21003": (1.25, "N"), "w01018": (None, "D")})
    assert r == b'{"ts":1,"seq":2,"clk":"none","readings":{"w01018":{"v":null,"f":"D"},"w21003":{"v":1.25,"f":"N"}}}'


def test_float32_formatting_never_changes_the_float32():
    for x in (35.2, -1.5, 0.1, 123.456, 1e-5, 3.4e38, 1.17549435e-38, 16777217.0, 499.99, 0.0):
        f = _f32(x)
        s = format_number(f, True)
        assert _f32(float(s)) == f, (x, s)
        assert len(s) <= 15
    assert format_number(_f32(35.2), True) == "35.2"
    assert format_number(_f32(35.2) * 0.1, True) == "3.52"


def test_number_formatting_edge_cases():
    assert format_number(None) == "null"
    assert format_number(float("nan"), True) == "null"
    assert format_number(float("inf")) == "null"
    assert format_number(-7) == "-7"
    assert format_number(12.300000000000001) == "12.3"
    assert float(format_number(0.1 + 0.2)) == 0.1 + 0.2
    assert json.loads(format_number(1e22)) == 1e22
    assert json.loads(format_number(-2.5e-7)) == -2.5e-7
    assert json.loads(format_number(3.3e38 * 1000, True)) == 3.3e41  # scaled beyond float32


def test_status_shape():
    s = build_status(42, 90000, 23456, 3, "ntp")
    text = s.decode()
    d = json.loads(text)
    _keys_in_order(text, ("state", "fw", "up", "heap", "heap_peak", "rssi", "queue", "clk"))
    assert d["state"] == "online" and d["fw"] == "0.4.0" and d["up"] == 42
    assert d["heap"] == 90000 and d["heap_peak"] == 23456 and d["rssi"] is None
    assert d["queue"] == 3 and d["clk"] == "ntp" and d["dropped"] == 0 and "cn" not in d
    assert json.loads(OFFLINE) == {"state": "offline"}


def test_status_and_offline_carry_the_connection_id():
    d = json.loads(build_status(1, 2, 3, 0, "rtc", cn=[7, 12]).decode())
    assert d["cn"] == [7, 12] and d["clk"] == "rtc"
    assert offline([7, 12]) == b'{"state":"offline","cn":[7,12]}'


def test_signature_hook_appends_last_member():
    r = build_record(1, 1, "ntp", [("w01018", 1.5, "N")])
    signed = append_member(r, "sig", '"' + "ab" * 32 + '"')
    assert signed.endswith(b',"sig":"' + b"ab" * 32 + b'"}')
    assert signed[:len(signed) - len(',"sig":"' + "ab" * 32 + '"}')] + b"}" == r
    assert json.loads(signed)["sig"] == "ab" * 32
