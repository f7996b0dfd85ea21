"""The gateway's pure parts and local files: the durable store, completeness, keys, config,
liveness, and a hypothesis fuzz of the payload parser (nothing but ContractError ever escapes,
and what is accepted becomes valid line protocol with float values).
(Over 400 lines: it mirrors several modules; issue #11's tests-mirror-the-code layout splits it.)"""

from __future__ import annotations

import json
import math
import os
import re

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgemon import lineproto
from edgemon.completeness import Completeness, NodeCompleteness
from edgemon.config import ConfigError, load
from edgemon.contract import ContractError, Record, Reading, parse_data, parse_status
from edgemon.gateway_cli import gateway as gateway_cli
from edgemon.keys import KeysError, Verifier, load_keys, signed_payload
from edgemon.liveness import Liveness
from edgemon.store import Position, Store

TS = 1764000000000


# --- store -----------------------------------------------------------------------------------


def test_store_round_trip_cursor_and_segments(tmp_path):
    s = Store(tmp_path, segment_bytes=100)
    ends = [s.append([f"frame {i}".encode() * 5]) for i in range(10)]
    assert len(s.segments()) > 3  # rotated
    bodies, pos = s.read(Position(1, 0), s.end, max_bytes=10**6)
    assert bodies == [f"frame {i}".encode() * 5 for i in range(10)] and pos == ends[-1]
    s.save_cursor(ends[4], {"completeness": {"a/b": [1, 2, 2, 0, [], 0]}})
    s.close()
    s2 = Store(tmp_path, segment_bytes=100)
    cursor, state = s2.load_cursor()
    assert cursor == ends[4] and state["completeness"]["a/b"][1] == 2
    rest, _ = s2.read(cursor, s2.end)
    assert rest == [f"frame {i}".encode() * 5 for i in range(5, 10)]
    assert s2.backlog_bytes(cursor) == sum(8 + len(b) for b in rest)
    assert s2.drop_before(cursor) >= 1 and min(s2.segments()) == cursor.segment


def test_store_cuts_a_torn_frame_after_a_crash(tmp_path):
    s = Store(tmp_path)
    s.append([b"one", b"two"])
    s.close()
    seg = tmp_path / f"{1:020d}.seg"
    with open(seg, "ab") as f:
        f.write(b"\x10\x00\x00\x00\xde\xad")  # a header cut short: the power went mid-write
    s2 = Store(tmp_path)
    bodies, _ = s2.read(Position(1, 0), s2.end)
    assert bodies == [b"one", b"two"]
    s2.append([b"three"])
    assert s2.read(Position(1, 0), s2.end)[0] == [b"one", b"two", b"three"]


_DISK_FULL_SCRIPT = """
import resource, signal, sys
from edgemon.store import Position, Store
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, like a full disk
s = Store(sys.argv[1])
s.append([b"before" * 100])
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
try:
    s.append([b"x" * 50_000])
    print("append did not fail")
except OSError:
    pass
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
s.append([b"x" * 50_000])  # the journal's retry of the same frame
s.append([b"after"])
bodies, _ = s.read(Position(1, 0), s.end)
print([len(b) for b in bodies])
s.close()
s2 = Store(sys.argv[1])
print([len(b) for b in s2.read(Position(1, 0), s2.end)[0]])
"""


def test_store_append_that_fails_part_way_leaves_no_torn_frame(tmp_path):
    """Disk full mid-write (a real EFBIG from RLIMIT_FSIZE, in a child process): the retry must not
    land behind a torn frame, or the next start would cut off every acknowledged frame after it."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _DISK_FULL_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["[600, 50000, 5]", "[600, 50000, 5]"], r.stdout + r.stderr


def test_string_fields_cannot_smuggle_points_and_status_strings_are_checked():
    line = lineproto.node_line("s1", "n1", parse_status(b'{"state":"online","fw":"1.0"}'), 1764000000000)
    assert "\n" not in line
    assert lineproto.escape_string_field('a"b\\c\nreading,site=x value=1\r') == '"a\\"b\\\\c\\nreading,site=x value=1\\r"'
    with pytest.raises(ContractError, match="fw: expected a short printable string"):
        parse_status(b'{"state":"online","fw":"x\\nreading,node=n1,param=w01018,site=k value=999.0 1"}')
    with pytest.raises(ContractError, match="state: expected a short printable string"):
        parse_status(b'{"state":"online\\r"}')


# --- completeness ----------------------------------------------------------------------------


def test_completeness_gaps_late_records_and_duplicates():
    nc = NodeCompleteness()
    for seq in (10, 11, 15, 12, 11, 20):
        nc.add(seq)
    assert (nc.expected, nc.received, nc.missing, nc.duplicates) == (11, 5, 6, 1)
    assert nc.gaps == [[13, 14], [16, 19]]
    for seq in (13, 14, 17):
        nc.add(seq)
    assert nc.gaps == [[16, 16], [18, 19]] and nc.missing == 3
    nc.add(8)  # older than anything seen: the range widens, 9 is missing
    assert (nc.first, nc.missing, nc.expected) == (8, 4, 13)


def test_completeness_one_wild_seq_is_an_incident_not_a_baseline():
    c = Completeness()
    c.add("s", "n", [1, 2, 3])
    c.add("s", "n", [4_000_000_000])
    c.add("s", "n", [4, 5])
    nc = c.nodes["s/n"]
    assert (nc.expected, nc.received, nc.missing, nc.last, nc.jumps) == (5, 5, 0, 5, 1)
    assert c.incidents == [("s/n", 4_000_000_000, 1, 3)]
    again = NodeCompleteness.from_json(json.loads(json.dumps(nc.to_json())))
    assert (again.expected, again.jumps, again.jump) == (5, 1, [4_000_000_000, 4_000_000_000, 1])
    line = c.lines(1764000000000)[0]
    assert "seq_jumps=1.0" in line and "last_seq=5.0" in line and "expected=5.0" in line


def test_completeness_a_counter_that_really_jumped_starts_a_new_range():
    from edgemon.completeness import MAX_JUMP, REBASE_AFTER

    nc = NodeCompleteness()
    for seq in range(1, 11):
        nc.add(seq)
    nc.add(7)  # a duplicate: still counted as before
    base = 10 + MAX_JUMP + 5
    for seq in range(base, base + REBASE_AFTER + 1):
        if seq == base + 3:
            continue  # one lost in the new range
        nc.add(seq)
    assert nc.rebased == 1 and nc.jump is None
    assert (nc.first, nc.last) == (base, base + REBASE_AFTER)
    assert (nc.expected, nc.received, nc.missing, nc.duplicates) == (10 + REBASE_AFTER + 1, 10 + REBASE_AFTER, 1, 1)
    assert nc.add(base + 3) is True and nc.missing == 0  # the late one from the new range


def test_completeness_node_reported_losses_count_once():
    nc = NodeCompleteness()
    assert nc.add_loss(5, 5, [1, 5, 5]) == 5
    assert nc.add_loss(5, 5, [1, 5, 5]) == 0  # the same event again
    assert nc.add_loss(8, 8, [2, 8, 8]) == 3  # its PUBACK was lost: the next one repeats the 5
    legacy = NodeCompleteness()  # firmware 0.2: no "lost", the events' dropped summed, repeats dropped
    assert legacy.add_loss(4, None, [1, 4, 4]) == 4 and legacy.add_loss(4, None, [1, 4, 4]) == 0
    assert legacy.add_loss(2, None, [2, 2, 6]) == 2 and legacy.lost == 6
    c = Completeness()
    c.add_loss("s", "n", 3, 3, [1, 3, 3])
    assert "last_seq" not in c.lines(1)[0] and "lost=3.0" in c.lines(1, only_dirty=False)[0]


def test_completeness_late_record_from_a_given_up_gap_is_received_not_a_duplicate(monkeypatch):
    from edgemon import completeness
    monkeypatch.setattr(completeness, "MAX_GAPS", 2)
    nc = NodeCompleteness()
    for seq in (1, 3, 5, 7):  # gaps [2], [4], [6]: the first is given up on
        nc.add(seq)
    assert nc.gaps == [[4, 4], [6, 6]] and nc.given_up == 1 and nc.missing == 3
    assert nc.add(2) is True  # the replay brings it after all
    assert (nc.received, nc.duplicates, nc.missing, nc.given_up) == (5, 0, 2, 0)
    assert nc.add(3) is False and nc.duplicates == 1  # a real duplicate: nothing left given up
    saved = NodeCompleteness.from_json(json.loads(json.dumps(nc.to_json())))
    assert saved.to_json() == nc.to_json()
    old = NodeCompleteness.from_json([1, 7, 4, 0, [[4, 4]], 1])  # state saved by the previous version
    assert old.given_up_hi is None and old.add(2) is False  # unknown range: counted as before


@given(st.lists(st.integers(0, 200), max_size=300))
def test_completeness_matches_a_set(seqs):
    c = Completeness()
    c.add("s", "n", seqs)
    c = Completeness(json.loads(json.dumps(c.to_json())))  # through its saved form
    nc = c.nodes.get("s/n")
    if not seqs:
        assert nc.expected == nc.received == nc.missing == 0
        return
    distinct = set(seqs)
    assert nc.received == len(distinct)
    assert nc.duplicates == len(seqs) - len(distinct)
    assert nc.expected == max(seqs) - min(seqs) + 1
    assert nc.missing == nc.expected - len(distinct)


# --- keys and signatures ---------------------------------------------------------------------


def test_wrong_key_diagnosis_is_rate_limited_per_topic():
    """Naming whose key signed a forged payload costs one HMAC per key: at most once a minute per topic."""
    ka, kb = bytes(range(32)), bytes(range(1, 33))
    v = Verifier({"s1/a": ka, "s1/b": kb})
    body = b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1.0,"f":"N"}}}'
    forged = signed_payload(body, kb)  # b's key on a's topic
    with pytest.raises(ContractError, match="signed with the key of s1/b"):
        v.check("s1", "a", forged)
    with pytest.raises(ContractError, match="does not match the key of s1/a"):
        v.check("s1", "a", forged)  # within the minute: no second scan of every key
    v._diagnosed["s1/a"] -= 61
    with pytest.raises(ContractError, match="signed with the key of s1/b"):
        v.check("s1", "a", forged)


def test_keys_file_must_be_private(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text('[keys]\n"s1/n1" = "' + "ab" * 32 + '"\n')
    os.chmod(path, 0o644)
    with pytest.raises(KeysError, match=f"chmod 600 {re.escape(str(path))}"):
        load_keys(path)
    os.chmod(path, 0o600)
    assert load_keys(path) == {"s1/n1": bytes.fromhex("ab" * 32)}
    path.write_text('[keys]\n"s1/n1" = "abcd"\n')
    with pytest.raises(KeysError, match="use at least 16"):
        load_keys(path)


def test_verifier_uses_the_topic_node_key():
    keys = {"s1/a": b"k" * 32, "s1/b": b"j" * 32}
    v = Verifier(keys)
    body = b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1,"f":"N"}}}'
    v.check("s1", "a", signed_payload(body, keys["s1/a"]))
    v.check("other", "x", body)  # a site without keys needs no signature
    with pytest.raises(ContractError, match="signed with the key of s1/b"):
        v.check("s1", "a", signed_payload(body, keys["s1/b"]))
    with pytest.raises(ContractError, match="sig: missing"):
        Verifier(keys, require_all=True).check("other", "x", body)
    assert parse_data(signed_payload(body, keys["s1/a"]))[0].seq == 1


# --- config ----------------------------------------------------------------------------------

GOOD = """
[gateway]
id = "gw1"
state_dir = "state"
[mqtt]
host = "127.0.0.1"
port = 1883
username = "gateway"
password_env = "EDGEMON_TEST_PW"
[influx]
api = "v2"
url = "http://127.0.0.1:8086"
bucket = "edge"
org = "bureau"
token_env = "EDGEMON_TEST_TOKEN"
[sites.qd-plant]
poll_s = 5
nodes = ["node01", "node02"]
"""


def test_config_loads_and_resolves(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEMON_TEST_PW", "pw")
    monkeypatch.setenv("EDGEMON_TEST_TOKEN", "tok")
    path = tmp_path / "gateway.toml"
    path.write_text(GOOD)
    cfg = load(path).gateway
    assert (cfg.influx_api, cfg.influx_db, cfg.influx_org, cfg.influx_token) == ("v2", "edge", "bureau", "tok")
    assert cfg.state_dir == tmp_path / "state" and cfg.mqtt_password == "pw"
    assert cfg.nodes == [("qd-plant", "node01", 5.0), ("qd-plant", "node02", 5.0)]
    result = CliRunner().invoke(gateway_cli, ["check-config", str(path)])
    assert result.exit_code == 0 and "ok: mqtt 127.0.0.1:1883 as gw1" in result.output


def test_config_errors_name_file_field_and_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEMON_TEST_TOKEN", raising=False)
    monkeypatch.setenv("EDGEMON_TEST_PW", "pw")
    keys = tmp_path / "keys.toml"
    keys.write_text("[keys]\n")
    os.chmod(keys, 0o640)
    path = tmp_path / "gateway.toml"
    path.write_text(GOOD.replace('api = "v2"', 'api = "v3"').replace("port = 1883", 'port = "1883"')
                    .replace('nodes = ["node01", "node02"]', 'nodes = ["bad node"]')
                    + f'[trust]\nkeys_file = "{keys}"\nbogus = 1\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    text = str(info.value)
    for expected in (
        f'{path}: influx.api: expected "v1" (/write) or "v2" (/api/v2/write), got \'v3\'',
        f"{path}: mqtt.port: expected an integer, got '1883'",
        f"{path}: influx.token_env: environment variable EDGEMON_TEST_TOKEN is not set",
        f"{path}: sites.qd-plant.nodes[0]: node id must match",
        f"{path}: trust.bogus: unknown field",
        f"{path}: trust.keys_file: {keys}: mode 0640 lets group/others read it; node keys must be private; fix: chmod 600 {keys}",
    ):
        assert expected in text, text
    result = CliRunner().invoke(gateway_cli, ["check-config", str(path)])
    assert result.exit_code == 1 and "influx.api" in result.output


def test_shipped_example_config_is_valid(monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("EDGEMON_MQTT_PASSWORD", "pw")
    example = Path(__file__).resolve().parents[2] / "server" / "gateway.example.toml"
    loaded = load(example, check_keys=False)  # the keys file lives on the gateway host only
    assert loaded.gateway.nodes == [("qd-plant", "node01", 10.0), ("laixi-river", "node01", 60.0),
                                    ("laixi-river", "node02", 60.0)]
    conf = (example.parent / "mosquitto.conf").read_text()
    assert "max_queued_messages 1000000" in conf and "persistence true" in conf
    # Plain MQTT, no ACL yet: every listener is bound to an interface, by default loopback only.
    listeners = [ln.split() for ln in conf.splitlines() if ln.startswith("listener")]
    assert listeners == [["listener", "1883", "127.0.0.1"]]
    assert "allow_anonymous false" in conf


def test_alarms_section_without_the_module_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    from edgemon.gateway_cli import build_alarm_observer

    monkeypatch.setitem(sys.modules, "edgemon.alarms", None)  # as if the package were not installed
    with pytest.raises(Exception, match=r"\[alarms\] config = .* alarms module \(edgemon.alarms\) is not installed"):
        build_alarm_observer(tmp_path / "alarms.toml", tmp_path, lambda lines: None)


# --- liveness --------------------------------------------------------------------------------


def test_liveness_silence_and_clock():
    lv = Liveness(silent_periods=3, future_tolerance_ms=60_000, past_tolerance_ms=600_000)
    lv.configure("s", "n", 10, now_ms=0)
    assert lv.tick(29_000) == []
    [line] = lv.tick(31_000)
    assert line.startswith("node,node=n,site=s online=false,reason=") and "3 poll periods of 10 s" in line
    assert lv.tick(40_000) == []  # said once
    rec = Record(ts=50_000 + 120_000, seq=1, clk="ntp", readings={"w01018": Reading(1.0, "N")})
    [back] = lv.on_data("s", "n", [rec], 50_000, in_batch=False)
    assert 'online=true,clock_offset_ms=120000.0,clock="future",reason="data resumed"' in back


# --- fuzz --------------------------------------------------------------------------------------

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


def test_run_reports_an_unreachable_broker(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(gateway_cli, [
        "run", "--mqtt-port", str(port), "--influx-url", f"http://127.0.0.1:{port}", "--state-dir", str(tmp_path),
    ])
    assert result.exit_code == 1
    assert f"cannot reach the MQTT broker at 127.0.0.1:{port}" in result.output
