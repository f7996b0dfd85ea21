"""Line protocol: exact strings, escaping, float formatting, idempotence."""

import pytest

from edgemon import lineproto
from edgemon.contract import ContractError, Reading, Record, Status, parse_data, parse_status
from edgemon.lineproto import (
    escape_key,
    escape_measurement,
    escape_string_field,
    format_float,
    ingest_line,
    line,
    node_line,
    reading_lines,
)

TS = 1764000000000


def test_reading_lines_exact():
    record = Record(ts=TS, seq=1, clk="ntp", readings={"w21003": Reading(1.2, "N"), "w01018": Reading(35.0, "M")})
    assert reading_lines("qd", "n01", record) == [
        'reading,node=n01,param=w01018,site=qd value=35.0,flag="M" 1764000000000',
        'reading,node=n01,param=w21003,site=qd value=1.2,flag="N" 1764000000000',
    ]


def test_integer_value_is_written_as_float():
    [record] = parse_data(b'{"ts":1764000000000,"seq":1,"readings":{"w01001":{"v":7,"f":"N"}}}')
    [text] = reading_lines("s", "n", record)
    assert " value=7.0," in text
    assert "7i" not in text


def test_null_value_leaves_value_out():
    record = Record(ts=TS, seq=1, clk=None, readings={"w01018": Reading(None, "B")})
    assert reading_lines("s", "n", record) == ['reading,node=n,param=w01018,site=s flag="B" 1764000000000']


def test_same_record_gives_same_lines():
    payload = b'{"ts":1764000000000,"seq":9,"readings":{"w21011":{"v":0.35,"f":"N"},"w01018":{"v":null,"f":"D"}}}'
    first = reading_lines("s", "n", parse_data(payload)[0])
    again = reading_lines("s", "n", parse_data(payload)[0])
    assert first == again
    # member order in the payload does not change the points either
    reordered = b'{"readings":{"w01018":{"f":"D","v":null},"w21011":{"f":"N","v":0.35}},"seq":9,"ts":1764000000000}'
    assert reading_lines("s", "n", parse_data(reordered)[0]) == first


@pytest.mark.parametrize(
    "value, text",
    [(35, "35.0"), (35.0, "35.0"), (0.1, "0.1"), (-0.5, "-0.5"), (1e16, "1e+16"), (1.5e-7, "1.5e-07"),
     (123456.789, "123456.789"), (0, "0.0")],
)
def test_format_float(value, text):
    assert format_float(value) == text


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_format_float_refuses_non_finite(bad):
    with pytest.raises(ValueError):
        format_float(bad)


def test_escaping():
    assert escape_measurement("my meas,x=1") == "my\\ meas\\,x=1"
    assert escape_key("a b,c=d") == "a\\ b\\,c\\=d"
    assert escape_string_field('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
    assert line("m x", {"t k": "v,1", "a": "b=c"}, {"f f": 'q"s', "n": 2}, 5) == (
        'm\\ x,a=b\\=c,t\\ k=v\\,1 f\\ f="q\\"s",n=2.0 5'
    )


@pytest.mark.parametrize("bad", ["", "a\nb"])
def test_names_refused(bad):
    with pytest.raises(ValueError):
        escape_key(bad)


def test_line_needs_a_field():
    with pytest.raises(ValueError):
        line("m", {}, {}, 1)


def test_node_line_online():
    status = parse_status(b'{"state":"online","fw":"1.2.0","up":3600,"heap":81234,"rssi":-67,"queue":3,"clk":"ntp"}')
    assert node_line("qd", "n01", status, 1764000000123) == (
        'node,node=n01,site=qd online=true,fw="1.2.0",heap=81234.0,rssi=-67.0,queue=3.0,up=3600.0 1764000000123'
    )


def test_node_line_last_will_and_clock_offset():
    assert node_line("qd", "n01", Status(state="offline"), 1764000000123) == (
        "node,node=n01,site=qd online=false 1764000000123"
    )
    assert node_line("qd", "n01", Status(state="online"), 7, clock_offset_ms=-12) == (
        "node,node=n01,site=qd online=true,clock_offset_ms=-12.0 7"
    )


def test_ingest_line():
    assert ingest_line("s", "n", lag_ms_last=120, lag_ms_max=900, records=5, time_ms=9) == (
        "ingest,node=n,site=s lag_ms_last=120.0,lag_ms_max=900.0,records=5.0 9"
    )


def test_string_fields_cannot_smuggle_points_and_status_strings_are_checked():
    line = lineproto.node_line("s1", "n1", parse_status(b'{"state":"online","fw":"1.0"}'), 1764000000000)
    assert "\n" not in line
    assert lineproto.escape_string_field('a"b\\c\nreading,site=x value=1\r') == '"a\\"b\\\\c\\nreading,site=x value=1\\r"'
    with pytest.raises(ContractError, match="fw: expected a short printable string"):
        parse_status(b'{"state":"online","fw":"x\\nreading,node=n1,param=w01018,site=k value=999.0 1"}')
    with pytest.raises(ContractError, match="state: expected a short printable string"):
        parse_status(b'{"state":"online\\r"}')
