"""Quarantine file: round trip, non-UTF-8 payloads, truncation, counts, the CLI over it."""

import json
import logging

from click.testing import CliRunner

from edgemon import quarantine as q
from edgemon.gateway_cli import quarantine as quarantine_cli


def test_round_trip(tmp_path, caplog):
    path = tmp_path / "state" / q.FILE_NAME
    box = q.Quarantine(path)
    with caplog.at_level(logging.WARNING, logger="edgemon.quarantine"):
        box.add("edge/v1/s1/n1/data", b'{"ts":1}', "seq: missing", received_ms=1000)
    box.add("edge/v1/s1/n1/data", b"\xff\x00binary", "payload is not UTF-8", received_ms=2000)
    box.add("edge/v1/bad site/n1/data", b"{}", "topic: bad", received_ms=3000)
    box.close()

    entries = list(q.read(path))
    assert [e["received_ms"] for e in entries] == [1000, 2000, 3000]
    first, second, third = entries
    assert first["topic"] == "edge/v1/s1/n1/data" and first["reason"] == "seq: missing"
    assert (first["site"], first["node"]) == ("s1", "n1")
    assert first["payload"] == '{"ts":1}' and first["payload_b64"] is None and first["truncated"] is False
    assert second["payload"] is None
    assert q.entry_payload(second) == b"\xff\x00binary"
    assert q.entry_payload(first) == b'{"ts":1}'
    assert third["site"] is None
    assert box.counts == {"s1/n1": 2, "edge/v1/bad site/n1/data": 1}
    assert box.total == 3
    assert "edge/v1/s1/n1/data" in caplog.text and "seq: missing" in caplog.text


def test_each_add_is_on_disk_at_once(tmp_path):
    path = tmp_path / q.FILE_NAME
    box = q.Quarantine(path)
    box.add("t", b"x", "r")
    assert len(path.read_text().splitlines()) == 1  # flushed without close
    box.add("t", b"y", "r")
    assert len(list(box.entries())) == 2
    box.close()


def test_truncation(tmp_path):
    path = tmp_path / q.FILE_NAME
    box = q.Quarantine(path)
    big = b"a" * (q.MAX_STORED_PAYLOAD + 10)
    box.add("t", big, "too big")
    # a multi-byte character cut at the limit is dropped whole
    text = ("x" * (q.MAX_STORED_PAYLOAD - 1) + "é").encode()
    box.add("t", text, "cut")
    box.add("t", b"\xff" * (q.MAX_STORED_PAYLOAD + 1), "binary")
    box.close()
    a, b, c = q.read(path)
    assert a["truncated"] is True and a["size"] == len(big) and len(a["payload"]) == q.MAX_STORED_PAYLOAD
    assert b["truncated"] is True and b["payload"] == "x" * (q.MAX_STORED_PAYLOAD - 1)
    assert c["truncated"] is True and len(q.entry_payload(c)) == q.MAX_STORED_PAYLOAD


def test_read_skips_a_torn_line_and_missing_file(tmp_path):
    path = tmp_path / q.FILE_NAME
    assert list(q.read(path)) == []
    path.write_text(json.dumps({"topic": "t", "reason": "r", "received_ms": 1}) + "\n" + '{"topic": "cut sh')
    assert [e["topic"] for e in q.read(path)] == ["t"]


def test_cli_list_and_count(tmp_path):
    box = q.Quarantine(tmp_path / q.FILE_NAME)
    box.add("edge/v1/s1/n1/data", b'{"ts":1764000000,"seq":1}', "ts: 1764000000 looks like seconds", received_ms=1764000000000)
    box.add("edge/v1/s1/n2/data", b"\xff", "payload is not UTF-8", received_ms=1764000001000)
    box.add("edge/v1/s1/n1/status", b"{}", "state: missing", received_ms=1764000002000)
    box.close()
    runner = CliRunner()
    result = runner.invoke(quarantine_cli, ["list", "--state-dir", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "looks like seconds" in result.output
    assert "not UTF-8" in result.output
    assert "3 of 3 entries" in result.output
    result = runner.invoke(quarantine_cli, ["list", "--state-dir", str(tmp_path), "--limit", "1"], env={"COLUMNS": "200"})
    assert "state: missing" in result.output and "looks like seconds" not in result.output
    result = runner.invoke(quarantine_cli, ["count", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert result.output.splitlines() == ["3 quarantined", "       2  s1/n1", "       1  s1/n2"]
