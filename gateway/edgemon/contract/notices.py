"""Node status (retained; also the node's last will) and node events. Which statuses are believed
beyond their signature is statustrust.py's job (docs/ARCHITECTURE.md section 7)."""

from __future__ import annotations

import json
from typing import Any

from .jsonvalues import decode_json, finite_number, is_int, reject_leftover_non_finite, short_repr, shown_int, type_name
from .model import CLOCKS, CN_MAX, EVENT_MAX_BYTES, ID_RE, SEQ_MAX, ContractError, Event, Status
from .records import check_sig, parse_ts


# ---------------------------------------------------------------------------------------------
# Node status

_STATUS_NUMBERS = ("up", "heap", "rssi", "queue")


def parse_status(payload: bytes) -> Status:
    obj, non_finite = decode_json(payload)
    if not isinstance(obj, dict):
        raise ContractError(f"payload: expected a JSON object, got {type_name(obj)}")
    if "state" not in obj:
        raise ContractError('state: missing (expected "online" or "offline")')
    state = obj["state"]
    if not isinstance(state, str) or not state:
        raise ContractError(f'state: expected a string ("online" or "offline"), got {type_name(state)}')
    fw = obj.get("fw")
    if fw is not None and not isinstance(fw, str):
        raise ContractError(f"fw: expected a string, got {type_name(fw)}")
    for name, text in (("state", state), ("fw", fw)):
        if text is not None and (len(text) > 64 or any(ord(ch) < 32 or ord(ch) == 127 for ch in text)):
            raise ContractError(f"{name}: expected a short printable string (at most 64 characters, "
                                f"no control characters), got {short_repr(text)}")
    numbers: dict[str, float | None] = {}
    for name in _STATUS_NUMBERS:
        raw = obj.get(name)
        if raw is None:
            numbers[name] = None
            continue
        number = finite_number(raw)
        if number is None:
            raise ContractError(f"{name}: expected a finite number, got {type_name(raw)}")
        numbers[name] = number
    clk = obj.get("clk")
    if clk is not None and (not isinstance(clk, str) or clk not in CLOCKS):
        shown = short_repr(clk) if isinstance(clk, str) else type_name(clk)
        raise ContractError(f"clk: unknown clock {shown} (expected one of {' '.join(CLOCKS)})")
    cn = _parse_cn(obj.get("cn"))
    known = {"state", "fw", "clk", "cn", "sig", *_STATUS_NUMBERS}
    extra = {k: v for k, v in obj.items() if k not in known}
    check_sig(obj, bytes(payload))
    reject_leftover_non_finite(non_finite)
    return Status(state=state, fw=fw, clk=clk, extra=extra, cn=cn, **numbers)


def _parse_cn(raw: Any) -> tuple[int, int] | None:
    """`cn`: the connection id [boot, connection] a status names (its will names the same)."""
    if raw is None:
        return None
    if (not isinstance(raw, list) or len(raw) != 2
            or not all(is_int(x) and 0 <= x <= CN_MAX for x in raw)):
        shown = short_repr(json.dumps(raw)) if isinstance(raw, list) else type_name(raw)
        raise ContractError(f"cn: expected [boot, connection], two non-negative integers, got {shown}")
    return raw[0], raw[1]


# ---------------------------------------------------------------------------------------------
# Node events


def parse_event(payload: bytes) -> Event:
    """`{"ts": ms, "kind": "...", "detail": <any JSON>, "sig": ...}` -> Event."""
    if len(payload) > EVENT_MAX_BYTES:
        raise ContractError(f"payload: {len(payload)} bytes, more than the {EVENT_MAX_BYTES} an event may have")
    obj, non_finite = decode_json(payload)
    if not isinstance(obj, dict):
        raise ContractError(f"payload: expected a JSON object (an event), got {type_name(obj)}")
    ts = parse_ts(obj.get("ts"), "")
    if "kind" not in obj:
        raise ContractError('kind: missing (what happened: "boot", "queue_overflow", ...)')
    kind = obj["kind"]
    if not isinstance(kind, str) or not ID_RE.fullmatch(kind):
        shown = short_repr(kind) if isinstance(kind, str) else type_name(kind)
        raise ContractError(f"kind: expected an identifier ([A-Za-z0-9_-]{{1,64}}), got {shown}")
    detail = obj.get("detail")
    if kind == "queue_overflow":
        _check_overflow(detail)
    check_sig(obj, bytes(payload))
    reject_leftover_non_finite(non_finite)
    return Event(ts=ts, kind=kind, detail=detail)


def _check_overflow(detail: Any) -> None:
    if not isinstance(detail, dict):
        raise ContractError(f"detail: a queue_overflow event carries an object {{\"dropped\": n, ...}}, "
                            f"got {type_name(detail)}")
    for name in ("dropped", "total", "lost"):
        value = detail.get(name)
        if value is None and name != "dropped":
            continue  # "lost" since firmware 0.3.0
        if not is_int(value) or not 0 <= value <= SEQ_MAX:
            shown = shown_int(value) if is_int(value) else type_name(value)
            raise ContractError(f"detail.{name}: expected a record count (0 <= n <= {SEQ_MAX}), got {shown}")
