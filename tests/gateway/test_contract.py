"""The v1 contract from the gateway's side, on the shared examples and on the edge cases."""

import base64
import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgemon import lineproto
from edgemon.contract import (
    ContractError,
    Reading,
    Record,
    Topic,
    parse_data,
    parse_status,
    parse_topic,
    split_signature,
)

EXAMPLES = json.loads((Path(__file__).parent.parent / "contract_examples.json").read_text("utf-8"))
TS = 1764000000000
SIG = "3f" * 32


def _payload(example) -> bytes:
    if example.get("payload_b64") is not None:
        return base64.b64decode(example["payload_b64"])
    return example["payload"].encode("utf-8")


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["name"] for e in EXAMPLES])
def test_shared_example(example):
    parse = parse_status if example["kind"] == "status" else parse_data
    if example["valid"]:
        result = parse(_payload(example))
        if example["kind"] == "data":
            assert len(result) == example["records"]
            assert sum(len(r.readings) for r in result) == example["readings"]
    else:
        with pytest.raises(ContractError) as info:
            parse(_payload(example))
        assert example["reason_contains"] in info.value.reason
        assert str(info.value) == info.value.reason


def test_examples_cover_both_outcomes():
    names = [e["name"] for e in EXAMPLES]
    assert len(names) == len(set(names))
    assert any(e["valid"] for e in EXAMPLES) and any(not e["valid"] for e in EXAMPLES)


# --- records -------------------------------------------------------------------------------


def test_single_record_values():
    payload = b'{"ts":1764000000000,"seq":1234,"clk":"ntp","readings":{"w01018":{"v":35.2,"f":"N"},"w21003":{"v":1,"f":"M"}}}'
    assert parse_data(payload) == [
        Record(ts=TS, seq=1234, clk="ntp", readings={"w01018": Reading(35.2, "N"), "w21003": Reading(1.0, "M")})
    ]
    value = parse_data(payload)[0].readings["w21003"].value
    assert type(value) is float


def test_null_value_and_missing_clk():
    [record] = parse_data(b'{"ts":1764000000000,"seq":0,"readings":{"w01018":{"v":null,"f":"B"}}}')
    assert record.clk is None
    assert record.readings == {"w01018": Reading(None, "B")}


def test_batch_keeps_order():
    payload = (
        '{"batch":[{"ts":%d,"seq":10,"readings":{"w01018":{"v":1.0,"f":"N"}}},'
        '{"ts":%d,"seq":11,"readings":{"w01018":{"v":2.0,"f":"N"}}}],"sig":"%s"}' % (TS, TS + 1000, SIG)
    ).encode()
    records = parse_data(payload)
    assert [(r.ts, r.seq, r.readings["w01018"].value) for r in records] == [(TS, 10, 1.0), (TS + 1000, 11, 2.0)]


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"\xff\xfe", "payload is not UTF-8 (invalid byte at offset 0)"),
        (b"{", "payload is not JSON"),
        (b"null", "payload: expected a JSON object (a record or a batch), got null"),
        (b'{"ts":1764000000,"seq":1,"readings":{"w01018":{"v":1,"f":"N"}}}',
         "ts: 1764000000 looks like seconds; expected milliseconds since the Unix epoch"),
        (b'{"ts":1764000000000.0,"seq":1,"readings":{"w01018":{"v":1,"f":"N"}}}',
         "ts: 1764000000000.0 is not an integer"),
        (b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1,"f":"X"}}}',
         "readings.w01018.f: unknown flag 'X' (expected one of N F M S D C T B)"),
        (b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":NaN,"f":"N"}}}',
         "readings.w01018.v: NaN is not a finite number (use null for no value)"),
        (b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1e999,"f":"N"}}}',
         "readings.w01018.v: inf is out of range for a number"),
        (b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1,"f":"N"}},"sig":"ab"}',
         "sig: expected 64 hex characters (HMAC-SHA256), got 2 characters"),
        (b'{"batch":[{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1,"f":"N"}},"sig":"%s"}]}' % SIG.encode(),
         "batch[0].sig: records in a batch carry no sig (the batch is signed as a whole)"),
    ],
)
def test_rejection_reason_text(payload, reason):
    with pytest.raises(ContractError) as info:
        parse_data(payload)
    assert info.value.reason.startswith(reason)


def test_accepts_bytearray_and_memoryview():
    payload = b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1,"f":"N"}}}'
    assert parse_data(bytearray(payload)) == parse_data(memoryview(payload)) == parse_data(payload)


# --- signature -----------------------------------------------------------------------------


def test_split_signature_single_record():
    body = b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":35.2,"f":"N"}}'
    signed, sig = split_signature(body + b',"sig":"' + SIG.encode() + b'"}')
    assert signed == body + b"}"
    assert sig == SIG


def test_split_signature_batch_and_trailing_whitespace():
    body = b'{"batch":[{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1,"f":"N"}}}]'
    signed, sig = split_signature(body + b',"sig":"' + SIG.upper().encode() + b'" }\n')
    assert signed == body + b" }\n"
    assert sig == SIG.upper()


@pytest.mark.parametrize(
    "payload",
    [
        b'{"ts":1,"seq":1}',
        b'{"sig":"%s"}' % SIG.encode(),  # no leading comma: not the DESIGN form
        b'{"ts":1,"sig":"%s","seq":1}' % SIG.encode(),  # not the last member
        b'{"ts":1, "sig":"%s"}' % SIG.encode(),  # a space before "sig"
        b'{"ts":1,"sig":"abc"}',
        b'{"a":{"b":1,"sig":"%s"}}' % SIG.encode(),  # nested, not top-level
        b'{"ts":1,"sig":"%s"}x' % SIG.encode(),
    ],
)
def test_split_signature_without_a_final_sig(payload):
    assert split_signature(payload) == (payload, None)


def test_split_signature_matches_an_hmac_made_the_design_way():
    import hashlib
    import hmac

    key = b"node-key"
    body = b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":35.2,"f":"N"}}}'
    mac = hmac.new(key, body, hashlib.sha256).hexdigest()
    payload = body[:-1] + b',"sig":"' + mac.encode() + b'"}'
    signed, sig = split_signature(payload)
    assert hmac.compare_digest(hmac.new(key, signed, hashlib.sha256).hexdigest(), sig)
    assert len(parse_data(payload)) == 1


# --- topics --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic, expected",
    [
        ("edge/v1/qd-laixi/node_01/data", Topic("qd-laixi", "node_01", "data")),
        ("edge/v1/S/N/status", Topic("S", "N", "status")),
        ("edge/v1/S/N/event", Topic("S", "N", "event")),
        ("edge/v1/S/N/cmd", Topic("S", "N", "cmd")),
        ("edge/v1/S/N/cmd/ack", Topic("S", "N", "cmd/ack")),
        ("edge/v1/" + "a" * 64 + "/N/data", Topic("a" * 64, "N", "data")),
    ],
)
def test_parse_topic(topic, expected):
    assert parse_topic(topic) == expected


@pytest.mark.parametrize(
    "topic, reason",
    [
        ("edge/v1/S/N", "expected edge/v1/{site}/{node}/{data|status|event|cmd|cmd/ack}"),
        ("other/v1/S/N/data", "expected edge/v1/"),
        ("edge/v2/S/N/data", "unsupported contract version 'v2'"),
        ("edge/v1/bad site/N/data", "site 'bad site' is not an identifier"),
        ("edge/v1/S/n.1/data", "node 'n.1' is not an identifier"),
        ("edge/v1//N/data", "site '' is not an identifier"),
        ("edge/v1/" + "a" * 65 + "/N/data", "is not an identifier"),
        ("edge/v1/S/N/telemetry", "unknown kind 'telemetry'"),
        ("edge/v1/S/N/cmd/nack", "unknown kind 'cmd/nack'"),
        ("edge/v1/S/N/data/", "unknown kind 'data/'"),
    ],
)
def test_parse_topic_rejects(topic, reason):
    with pytest.raises(ContractError) as info:
        parse_topic(topic)
    assert reason in info.value.reason
    assert repr(topic) in info.value.reason


# --- status --------------------------------------------------------------------------------


def test_status_full():
    status = parse_status(b'{"state":"online","fw":"1.2.0","up":3600,"heap":81234,"rssi":-67,"queue":0,"clk":"ntp","board":"x"}')
    assert (status.state, status.fw, status.up, status.heap, status.rssi, status.queue, status.clk) == (
        "online", "1.2.0", 3600.0, 81234.0, -67.0, 0.0, "ntp")
    assert status.extra == {"board": "x"}
    assert status.online


def test_status_last_will():
    status = parse_status(b'{"state":"offline"}')
    assert status.state == "offline" and not status.online
    assert status.fw is None and status.heap is None and status.extra == {}


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"offline", "payload is not JSON"),
        (b"[]", "expected a JSON object"),
        (b"{}", "state: missing"),
        (b'{"state":1}', "state: expected a string"),
        (b'{"state":"online","fw":1}', "fw: expected a string"),
        (b'{"state":"online","rssi":NaN}', "rssi: expected a finite number, got NaN"),
        (b'{"state":"online","clk":"gps"}', "clk: unknown clock 'gps'"),
    ],
)
def test_status_rejects(payload, reason):
    with pytest.raises(ContractError) as info:
        parse_status(payload)
    assert reason in info.value.reason


def test_status_connection_id():
    assert parse_status(b'{"state":"offline","cn":[7,2]}').cn == (7, 2)
    assert parse_status(b'{"state":"online"}').cn is None
    for bad in (b'[7]', b'"7.2"', b'[7,-1]', b'[7,2.0]', b'[true,1]', b'[1,2,3]'):
        with pytest.raises(ContractError, match="cn: expected \\[boot, connection\\]"):
            parse_status(b'{"state":"offline","cn":' + bad + b"}")
    with pytest.raises(ContractError, match="sig: expected 64 hex"):
        parse_status(b'{"state":"offline","sig":"00"}')


@pytest.mark.parametrize("seq, ok", [(0, True), (2**32 - 1, True), (2**32, False), (2**70, False)])
def test_seq_is_bounded_by_the_nodes_32_bit_counter(seq, ok):
    payload = b'{"ts":1764000000000,"seq":%d,"readings":{"w01018":{"v":1,"f":"N"}}}' % seq
    if ok:
        assert parse_data(payload)[0].seq == seq
    else:
        with pytest.raises(ContractError, match=r"seq: \d+ is out of range \(0 <= seq <= 4294967295"):
            parse_data(payload)


# --- events --------------------------------------------------------------------------------


def test_event_parses_and_rejects():
    from edgemon.contract import parse_event

    ev = parse_event(b'{"ts":1764000000000,"kind":"analyzer_fault","detail":{"analyzer":"cod","code":4}}')
    assert (ev.kind, ev.detail) == ("analyzer_fault", {"analyzer": "cod", "code": 4})
    assert parse_event(b'{"ts":1764000000000,"kind":"boot"}').detail is None
    for payload, reason in [
        (b'{"kind":"boot"}', "ts: missing"),
        (b'{"ts":1764000000000}', "kind: missing"),
        (b'{"ts":1764000000000,"kind":"a b"}', "kind: expected an identifier"),
        (b'{"ts":1764000000000,"kind":"queue_overflow","detail":7}', "detail: a queue_overflow event carries an object"),
        (b'{"ts":1764000000000,"kind":"queue_overflow","detail":{"dropped":-1}}', "detail.dropped: expected a record count"),
        (b'{"ts":1764000000000,"kind":"queue_overflow","detail":{"dropped":1,"lost":1e3}}', "detail.lost: expected"),
        (b'{"ts":1764000000000,"kind":"boot","detail":NaN}', "NaN is not a JSON value"),
        (b'{"ts":1764000000000,"kind":"boot","detail":"' + b"x" * 20000 + b'"}', "an event may have"),
    ]:
        with pytest.raises(ContractError) as info:
            parse_event(payload)
        assert reason in info.value.reason, (payload[:60], info.value.reason)


def test_payload_must_be_bytes():
    with pytest.raises(TypeError):
        parse_data('{"ts":1}')  # type: ignore[arg-type]


# --- fuzz: nothing but ContractError escapes; what is accepted becomes valid line protocol ---

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
reading = st.fixed_dictionaries({"v": st.one_of(st.none(), st.floats(), st.integers(), st.text(max_size=3)),
                                 "f": st.sampled_from(["N", "M", "X", ""])})
record_like = st.fixed_dictionaries({
    "ts": st.one_of(st.integers(TS - 10**12, TS + 10**12), st.floats(), st.text(max_size=3)),
    "seq": st.one_of(st.integers(-5, 10**20), st.none()),
    "readings": st.dictionaries(st.sampled_from(["w01018", "w21003", "x", "W01018"]), reading, max_size=3),
}, optional={"clk": st.sampled_from(["ntp", "rtc", "none", "gps"]), "extra": json_values})


def _check_accepted(records):
    for r in records:
        for line in lineproto.reading_lines("s", "n", r):
            m = re.fullmatch(r'reading,node=n,param=[a-z]\d{5},site=s (value=([^,]+),)?flag="[NFMSDCTB]" (\d+)', line)
            assert m, line
            if m.group(2):
                assert "." in m.group(2) or "e" in m.group(2)  # always a float
                assert math.isfinite(float(m.group(2)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    record_like.map(lambda v: json.dumps(v).encode()),
    st.lists(record_like, max_size=3).map(lambda b: json.dumps({"batch": b}).encode()),
    st.text(max_size=200).map(lambda t: t.encode("utf-16")),
))
def test_fuzz_parser_never_crashes(payload):
    for parse in (parse_data, parse_status):
        try:
            out = parse(payload)
        except ContractError as exc:
            assert exc.reason and len(exc.reason) < 400
            continue
        if parse is parse_data:
            _check_accepted(out)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["deep", "long_string", "huge_number", "nan", "megabyte"]), st.integers(1, 5))
def test_fuzz_hostile_shapes(kind, n):
    payload = {
        "deep": b'{"readings":' * (5000 * n) + b"1" + b"}" * (5000 * n),
        "long_string": b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1,"f":"' + b"N" * (100_000 * n) + b'"}}}',
        "huge_number": b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1' + b"0" * (1000 * n) + b',"f":"N"}}}',
        "nan": b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":NaN,"f":"N"}},"x":-Infinity}',
        "megabyte": b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1,"f":"N"}},"pad":"' + b"x" * (1 << 20) + b'"}',
    }[kind]
    try:
        out = parse_data(payload)
    except ContractError:
        return
    assert kind == "megabyte"  # valid JSON, extra members are ignored; the gateway caps size before parsing
    _check_accepted(out)
