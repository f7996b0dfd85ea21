"""Commands to a node (docs/ARCHITECTURE.md section 3, "The command channel"): the payload the node
checks, the ack it sends back, and the ids, which must grow for each node (the node refuses an id
not newer than the last one it accepted, so a recorded command cannot be replayed).

Pure: no sockets, no clock of its own (the caller passes now_ms). `edgemon node cmd` (node_cli.py)
sends them over MQTT; the journal of what was sent and answered is kept by CommandLog."""

from __future__ import annotations

import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .contract import ContractError, split_signature
from .keys import sign, signed_payload

OPS = {
    "time": "the node's clock (now, clk); args: sync=true to run an NTP sync first",
    "status": "publish the retained status now (result: records waiting on flash)",
    "reboot": "reset the node after the ack (it replays its flash queue after; result: records waiting)",
    "probe": "read the analyzers now: raw registers and decoded values (args: analyzer=NAME for one)",
    "config": "a new node config, checked on the node, on trial until the node connects with it, else the "
              "old one comes back (args: config, trial_s; `edgemon node reconfigure` sends it)",
    "resend": "records again from flash, as first sent (args: from, to: seqs; result: first, last, sent; only "
              "what is still on flash)",
    "update": "a firmware image into the other romfs partition, checked, booted on trial (args: url, version, "
              "bytes, sha256, trial_s; `edgemon node update` sends it)",
}
OP_RE = re.compile(r"[A-Za-z]{1,16}")


def cmd_topic(site: str, node: str) -> str:
    return f"edge/v1/{site}/{node}/cmd"


def ack_topic(site: str, node: str) -> str:
    return f"edge/v1/{site}/{node}/cmd/ack"


def next_id(last_id: int, now_ms: int) -> int:
    """An id newer than last_id and near the wall clock (ms), so ids keep growing across restarts
    of this tool even without its journal."""
    return max(last_id + 1, now_ms)


def build_command(cmd_id: int, op: str, args: dict[str, Any], exp_ms: int, key: bytes) -> bytes:
    """The signed command payload: {"id","cmd","exp","args","sig"} (sig last, as in data payloads)."""
    if not OP_RE.fullmatch(op):
        raise ValueError(f"op {op!r}: letters only, at most 16")
    body = json.dumps({"id": cmd_id, "cmd": op, "exp": exp_ms, "args": args}, separators=(",", ":"),
                      ensure_ascii=True).encode()
    return signed_payload(body, key)


@dataclass(frozen=True)
class Ack:
    id: int | None
    op: str | None
    ok: bool
    ts: int
    result: dict[str, Any] | None
    err: str | None


def parse_ack(payload: bytes, key: bytes) -> Ack:
    """A node's ack, its signature checked with the node's key; ContractError says what is wrong."""
    signed, sig = split_signature(payload)
    if sig is None:
        raise ContractError("ack: unsigned (a node signs its acks)")
    if not hmac.compare_digest(sign(signed, key), sig.lower()):
        raise ContractError("ack: signature does not match the node's key (forged)")
    try:
        obj = json.loads(payload)
    except ValueError as exc:
        raise ContractError(f"ack: not JSON ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("ok"), bool) or not isinstance(obj.get("ts"), int):
        raise ContractError("ack: expected an object with ok (true/false) and ts")
    cid = obj.get("id")
    return Ack(cid if isinstance(cid, int) else None, obj.get("cmd"), obj["ok"], obj["ts"],
               obj.get("result") if isinstance(obj.get("result"), dict) else None,
               obj.get("err") if isinstance(obj.get("err"), str) else None)


def parse_args(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`key=value` pairs -> args; a value that parses as JSON is taken as JSON (true, 3, "x", [..]),
    anything else as a string. ValueError names the bad pair."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, eq, raw = pair.partition("=")
        if not eq or not key:
            raise ValueError(f"{pair!r}: expected key=value, e.g. sync=true")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


class CommandLog:
    """commands.jsonl in the gateway's state folder: one line per command sent and per answer
    (or none) received, appended and fsync'd; also where the last id given to each node is found."""

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / "commands.jsonl"

    def last_id(self, site: str, node: str) -> int:
        last = 0
        try:
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue  # a torn last line after a crash
                    if e.get("site") == site and e.get("node") == node and isinstance(e.get("id"), int):
                        last = max(last, e["id"])
        except FileNotFoundError:
            pass
        return last

    def append(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
