"""The gateway's half of the command channel (edgemon.commands): the signed command, the node's ack
checked with its key, ids that keep growing, --arg parsing and the command journal."""

import json
import sys
from pathlib import Path

import pytest

from edgemon.commands import CommandLog, build_command, next_id, parse_ack, parse_args
from edgemon.contract import ContractError, split_signature
from edgemon.keys import sign, signed_payload

KEY = bytes(range(32))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))


class _Node:
    """What cmdchan.run uses of a Node: enough to run the firmware's check under CPython."""

    def __init__(self, tmp_path, key):
        from hmac_sha256 import HmacSha256

        self.mac = HmacSha256(key)
        self.hw = type("HW", (), {})()
        self.hw.clock = type("Clock", (), {"clk": "ntp", "now_ms": lambda self: 1764000001000})()
        self.queue = type("Q", (), {"dir": str(tmp_path), "__len__": lambda self: 0})()
        self.status_topic = "edge/v1/s/n/status"
        self._status_due = False
        self.acks = []

    def log(self, line):
        pass

    def _publish_signed(self, topic, payload, retain):
        self.acks.append((topic, json.loads(payload)))


def test_a_command_is_signed_like_data_and_the_firmware_runs_it(tmp_path):
    import cmdchan  # the node's own code, run here under CPython

    p = build_command(1764000000000, "status", {}, 1764000060000, KEY)
    signed, sig = split_signature(p)
    assert sig == sign(signed, KEY)
    assert json.loads(p) == {"id": 1764000000000, "cmd": "status", "exp": 1764000060000, "args": {}, "sig": sig}
    node = _Node(tmp_path, KEY)
    cmdchan.run(node, p)
    assert node.acks == [("edge/v1/s/n/cmd/ack", {"id": 1764000000000, "cmd": "status", "ts": 1764000001000,
                                                  "ok": True, "result": {"queue": 0}})]
    assert node._status_due is True
    other = _Node(tmp_path / "x", bytes(32))
    (tmp_path / "x").mkdir()
    cmdchan.run(other, p)
    assert other.acks[0][1]["ok"] is False and other.acks[0][1]["err"].startswith("forged")
    with pytest.raises(ValueError, match="letters only"):
        build_command(1, "re boot", {}, 2, KEY)


def test_acks_are_checked_with_the_node_key():
    body = b'{"id":5,"cmd":"time","ts":1764000000000,"ok":true,"result":{"now":1}}'
    a = parse_ack(signed_payload(body, KEY), KEY)
    assert (a.id, a.op, a.ok, a.result, a.err) == (5, "time", True, {"now": 1}, None)
    refused = parse_ack(signed_payload(b'{"id":null,"cmd":null,"ts":1,"ok":false,"err":"unsigned"}', KEY), KEY)
    assert refused.id is None and refused.ok is False and refused.err == "unsigned"
    with pytest.raises(ContractError, match="unsigned"):
        parse_ack(body, KEY)
    with pytest.raises(ContractError, match="forged"):
        parse_ack(signed_payload(body, bytes(32)), KEY)
    with pytest.raises(ContractError, match="ok"):
        parse_ack(signed_payload(b'{"id":5,"ts":1}', KEY), KEY)


def test_ids_grow_past_the_last_and_follow_the_clock():
    assert next_id(0, 1000) == 1000
    assert next_id(5000, 1000) == 5001  # the clock went back: still newer than the node's last
    assert next_id(999, 1000) == 1000


def test_args_are_json_where_they_parse_and_text_otherwise():
    assert parse_args(["sync=true", "n=3", "name=abc", 'q="x"', "e="]) == {
        "sync": True, "n": 3, "name": "abc", "q": "x", "e": ""}
    for bad in (["sync"], ["=1"]):
        with pytest.raises(ValueError, match="key=value"):
            parse_args(bad)


def test_the_journal_gives_the_last_id_per_node_and_survives_a_torn_line(tmp_path):
    log = CommandLog(tmp_path)
    assert log.last_id("s", "n") == 0
    log.append({"site": "s", "node": "n", "id": 7, "sent": True})
    log.append({"site": "s", "node": "m", "id": 9, "sent": True})
    log.append({"site": "s", "node": "n", "id": 7, "ack": {"ok": True}})
    with log.path.open("a") as f:
        f.write('{"site":"s","node":"n","id":99')  # a crash mid-line
    assert log.last_id("s", "n") == 7 and log.last_id("s", "m") == 9 and log.last_id("x", "n") == 0
