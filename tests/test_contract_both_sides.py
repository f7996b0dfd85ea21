"""The wire contract tested from both sides: what the firmware builds, the gateway accepts and reads back
exactly; and the shared example payloads that are valid parse the same way the firmware would write them."""

import json
import math
import struct
import sys
from pathlib import Path

import pytest

FIRMWARE = str(Path(__file__).resolve().parents[1] / "firmware")
sys.path.insert(0, FIRMWARE)
sys.path.insert(1, str(Path(FIRMWARE) / "host"))  # record_tools: a host-side helper, never on a device
import record as fw_record  # noqa: E402  (firmware module, run here under CPython)
import record_tools as fw_tools  # noqa: E402

from edgemon import contract  # noqa: E402

EXAMPLES = json.loads((Path(__file__).parent / "contract_examples.json").read_text())


def _f32(x: float) -> float:
    return struct.unpack(">f", struct.pack(">f", x))[0]


@pytest.mark.parametrize("raw", [35.2, 0.1, 1234.567, 1e-7, 499.99, -1.5, 7.0, 3.4e38])
def test_float32_values_from_firmware_arrive_as_the_analyzer_meant_them(raw):
    value = _f32(raw)  # what the analyzer's register holds
    payload = fw_tools.build_record(1764000000000, 42, "ntp", [("w01018", value, "N")], f32_params={"w01018"})
    (rec,) = contract.parse_data(payload)
    got = rec.readings["w01018"].value
    assert _f32(got) == value, "the float32 the analyzer sent must survive the JSON trip"
    assert len(repr(got)) <= 14, f"no float noise in the written value: {got!r}"
    assert (rec.ts, rec.seq, rec.clk, rec.readings["w01018"].flag) == (1764000000000, 42, "ntp", "N")


@pytest.mark.parametrize("flag", list("NFMSDCTB"))
def test_every_flag_and_null_value_round_trips(flag):
    payload = fw_tools.build_record(1764000000001, 7, "rtc", {"w21003": (None, flag), "w01001": (7.25, flag)})
    (rec,) = contract.parse_data(payload)
    assert rec.readings["w21003"].value is None and rec.readings["w21003"].flag == flag
    assert rec.readings["w01001"].value == 7.25


def test_firmware_status_is_accepted_by_the_gateway():
    st = contract.parse_status(fw_record.build_status(120, 60000, 68000, 3, clk="ntp", rssi=-61))
    assert (st.state, st.fw, st.up, st.heap, st.rssi, st.queue, st.clk) == (
        "online", fw_record.FW_VERSION, 120, 60000, -61, 3, "ntp")
    assert contract.parse_status(fw_tools.OFFLINE).state == "offline"


def test_signature_hook_matches_the_gateways_split_rule():
    payload = fw_tools.build_record(1764000000000, 1, "ntp", [("w01018", 1.0, "N")])
    signed = fw_record.append_member(payload, "sig", '"' + "ab" * 32 + '"')
    body, sig = contract.split_signature(signed)
    assert body == payload and sig == "ab" * 32


@pytest.mark.parametrize("ex", [e for e in EXAMPLES if e["kind"] == "data" and e["valid"] and "payload" in e],
                         ids=lambda e: e["name"])
def test_valid_examples_rebuilt_by_firmware_parse_identically(ex):
    """Rebuild each valid example record with the firmware's builder and compare what the gateway reads."""
    for rec in contract.parse_data(ex["payload"].encode()):
        rebuilt = fw_tools.build_record(rec.ts, rec.seq, rec.clk or "none",
                                         {p: (r.value, r.flag) for p, r in rec.readings.items()})
        (again,) = contract.parse_data(rebuilt)
        assert (again.ts, again.seq) == (rec.ts, rec.seq)
        for p, r in rec.readings.items():
            a = again.readings[p]
            assert a.flag == r.flag
            assert (a.value is None and r.value is None) or math.isclose(a.value, r.value, rel_tol=0, abs_tol=0)


def _fw_signer(key_hex: str):
    from hmac_sha256 import HmacSha256  # firmware module, HMAC written on hashlib.sha256

    return HmacSha256(bytes.fromhex(key_hex))


def test_firmware_signed_record_verifies_with_cpython_hmac():
    import hashlib
    import hmac

    key = "00112233445566778899aabbccddeeff" * 2
    rec = fw_tools.build_record_rows(1764000000000, 9, "ntp", ["w01018", "w21003"],
                                      [(_f32(35.2), "N", True), (None, "B", False)])
    signed = fw_record.sign(rec, _fw_signer(key))
    body, sig = contract.split_signature(signed)
    assert body == rec
    assert sig == hmac.new(bytes.fromhex(key), body, hashlib.sha256).hexdigest()
    (parsed,) = contract.parse_data(signed)
    assert parsed.seq == 9 and parsed.readings["w01018"].value == 35.2


def test_firmware_signed_batch_verifies_and_parses():
    import hashlib
    import hmac

    key = "ab" * 16
    recs = [fw_tools.build_record_rows(1764000000000 + 10000 * i, i, "rtc", ["w01018"], [(float(i), "N", True)])
            for i in range(1, 4)]
    signed = fw_record.sign(fw_tools.build_batch(recs), _fw_signer(key))
    body, sig = contract.split_signature(signed)
    assert sig == hmac.new(bytes.fromhex(key), body, hashlib.sha256).hexdigest()
    assert [r.seq for r in contract.parse_data(signed)] == [1, 2, 3]
    tampered = signed.replace(b'"v":2', b'"v":3')
    assert hmac.new(bytes.fromhex(key), contract.split_signature(tampered)[0], hashlib.sha256).hexdigest() != sig


def test_firmware_status_and_will_carry_the_connection_the_gateway_matches():
    from edgemon.keys import Verifier
    from edgemon.statustrust import StatusTrust

    key = "5a" * 32
    mac = _fw_signer(key)
    verifier = Verifier({"s/n": bytes.fromhex(key)}, require_all=True)
    trust = StatusTrust()
    first = [3, 1]
    payloads = [fw_record.sign(fw_record.build_status(1, 2, 3, 0, cn=first), mac),
                fw_record.sign(fw_record.offline(first), mac),  # the will signed at connect time
                fw_record.sign(fw_record.build_status(1, 2, 3, 0, cn=[3, 2]), mac)]
    for payload in payloads:
        verifier.check("s", "n", payload)
        st = contract.parse_status(payload)
        entry = trust.admit("s", "n", st)
        trust.apply(entry)
    assert trust.nodes == {"s/n": [3, 2, True]}
    with pytest.raises(contract.ContractError, match="older than 3.2"):
        trust.admit("s", "n", contract.parse_status(payloads[1]))  # the first connection's will, replayed


def test_firmware_queue_overflow_event_parses():
    payload = fw_record.build_event(1764000000000, "queue_overflow", '{"dropped":%d,"total":%d,"lost":%d}' % (5, 7, 9))
    ev = contract.parse_event(payload)
    assert (ev.ts, ev.kind, ev.detail) == (1764000000000, "queue_overflow", {"dropped": 5, "total": 7, "lost": 9})
    boot = contract.parse_event(fw_record.build_event(1764000000000, "boot", '{"fw":"0.3.0","seq":1,"queue":0,"repaired_bytes":0}'))
    assert boot.detail["fw"] == "0.3.0"


def test_the_flag_letters_are_the_same_on_both_sides():
    """HJ 212 data flags: one definition a side, `contract.FLAGS` on the gateway and `compat.FLAGS`
    on the node (the record codec's 3-bit code is the index); no other firmware module writes its own."""
    import ast
    import compat as fw_compat

    gateway = "".join(contract.FLAGS)
    assert len(set(gateway)) == len(gateway) == 8 and gateway[0] == "N"
    assert fw_compat.FLAGS == gateway, f"firmware/compat.py FLAGS {fw_compat.FLAGS!r} != gateway {gateway!r}"
    defined = []  # (An identity check would not do: CPython interns equal string literals.)
    for path in sorted(Path(FIRMWARE).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            if any(isinstance(t, ast.Name) and t.id == "FLAGS" for t in targets):
                defined.append(path.name)
    assert defined == ["compat.py"], f"FLAGS assigned in {defined}: import it from compat.py instead"
