"""The v1 wire contract (docs/ARCHITECTURE.md section 3) as seen by the gateway: topics, data records and
batches, node status, node events. Pure: bytes in, values or a ContractError with a human reason out.
(Over 400 lines since events joined: splitting status and events into a module of their own is part
of issue #11's restructuring.)"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
PARAM_RE = re.compile(r"[a-z][0-9]{5}")
SIG_RE = re.compile(r"[0-9a-fA-F]{64}")

TOPIC_PREFIX = ("edge", "v1")
KINDS = ("data", "status", "event", "cmd", "cmd/ack")
FLAGS = ("N", "F", "M", "S", "D", "C", "T", "B")
CLOCKS = ("ntp", "rtc", "none")

# A plausible sample time, in ms: 2000-01-01T00:00:00Z <= ts < 2100-01-01T00:00:00Z.
TS_MIN_MS = 946_684_800_000
TS_MAX_MS = 4_102_444_800_000

# seq as a node can produce it: the firmware's counter is an unsigned 32-bit integer (its flash
# queue keeps seqs in uint32 arrays and names segments by 8 hex digits).
SEQ_MAX = 2**32 - 1
# A connection id [boot, connection] (status `cn`): two counters of the node, below 2^53.
CN_MAX = 2**53 - 1
EVENT_MAX_BYTES = 16 * 1024  # an event is a small notice; larger ones are quarantined unread


class ContractError(ValueError):
    """A topic or payload that breaks the v1 contract; `reason` says which member and why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Topic:
    site: str
    node: str
    kind: str  # one of KINDS


@dataclass(frozen=True, slots=True)
class Reading:
    value: float | None  # None: the node had no value (JSON null)
    flag: str  # one of FLAGS


@dataclass(frozen=True, slots=True)
class Record:
    ts: int  # sample time, ms since the Unix epoch (UTC)
    seq: int
    clk: str | None  # one of CLOCKS, or None when the node did not say
    readings: dict[str, Reading]


@dataclass(frozen=True, slots=True)
class Status:
    state: str  # "online" / "offline" (the last will); other words are kept as sent
    fw: str | None = None
    up: float | None = None
    heap: float | None = None
    rssi: float | None = None
    queue: float | None = None
    clk: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    cn: tuple[int, int] | None = None  # connection id (boot, connection); firmware >= 0.3.0

    @property
    def online(self) -> bool:
        return self.state == "online"


@dataclass(frozen=True, slots=True)
class Event:
    ts: int  # when the node noticed it, ms since the Unix epoch (the node's clock)
    kind: str  # "boot", "queue_overflow", "analyzer_fault", ... (an identifier)
    detail: Any = None  # any JSON value; for queue_overflow {"dropped", "total", "lost"}


# ---------------------------------------------------------------------------------------------
# Topics


def parse_topic(topic: str) -> Topic:
    """`edge/v1/{site}/{node}/{data|status|event|cmd|cmd/ack}` -> Topic."""
    # Pure, and a gateway sees the same few thousand topics over and over: remember the valid ones
    # (a Topic is immutable). Invalid topics are not remembered: each raises again, as before.
    t = _TOPICS.get(topic)
    if t is None:
        t = _parse_topic(topic)
        if len(_TOPICS) >= _TOPICS_MAX:
            _TOPICS.clear()
        _TOPICS[topic] = t
    return t


_TOPICS: dict[str, Topic] = {}
_TOPICS_MAX = 100_000


def _parse_topic(topic: str) -> Topic:
    parts = topic.split("/")
    expected = "expected edge/v1/{site}/{node}/{" + "|".join(KINDS) + "}"
    if len(parts) < 5 or tuple(parts[:2]) != TOPIC_PREFIX:
        if len(parts) >= 2 and parts[0] == "edge" and parts[1] != "v1":
            raise ContractError(f"topic {topic!r}: unsupported contract version {parts[1]!r} ({expected})")
        raise ContractError(f"topic {topic!r}: {expected}")
    site, node, kind = parts[2], parts[3], "/".join(parts[4:])
    for what, ident in (("site", site), ("node", node)):
        if not ID_RE.fullmatch(ident):
            raise ContractError(
                f"topic {topic!r}: {what} {ident!r} is not an identifier ([A-Za-z0-9_-]{{1,64}})"
            )
    if kind not in KINDS:
        raise ContractError(f"topic {topic!r}: unknown kind {kind!r} ({expected})")
    return Topic(site, node, kind)


# ---------------------------------------------------------------------------------------------
# JSON decoding shared by every payload


class _NonFinite:
    """Stands in for NaN/Infinity, which Python's json accepts but JSON does not."""

    __slots__ = ("word",)

    def __init__(self, word: str):
        self.word = word


def _pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(items)
    if len(obj) != len(items):
        # Two parsers may keep different copies; a signed payload must mean one thing.
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise ContractError(f"payload has a duplicate member {key!r}")
            seen.add(key)
    return obj


def _no_constant(word: str) -> Any:  # pragma: no cover - only reached if the pre-check below is wrong
    raise AssertionError(f"unexpected JSON constant {word!r}")


# One shared decoder for the common case (no NaN/Infinity anywhere in the text): building a
# JSONDecoder per payload costs as much as decoding a small record.
_FAST_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_no_constant)


def _decode_json(payload: bytes) -> tuple[Any, list[_NonFinite]]:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError("payload must be bytes")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(f"payload is not UTF-8 (invalid byte at offset {exc.start})") from None
    non_finite: list[_NonFinite] = []

    def constant(word: str) -> _NonFinite:
        marker = _NonFinite(word)
        non_finite.append(marker)
        return marker

    try:
        if "NaN" in text or "Infinity" in text or text.startswith("\ufeff"):
            # parse_constant is called only for these two words (-Infinity included): collect them.
            return json.loads(text, parse_constant=constant, object_pairs_hook=_pairs), non_finite
        return _FAST_DECODER.decode(text), non_finite
    except json.JSONDecodeError as exc:
        raise ContractError(f"payload is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise ContractError("payload: JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python converts (4300 digits)
        raise ContractError(f"payload: unusable JSON number ({str(exc)[:80]})") from None


def _reject_leftover_non_finite(non_finite: list[_NonFinite]) -> None:
    # Reached only when the constant sat in a member we otherwise ignore: still not JSON.
    if non_finite:
        raise ContractError(f"payload is not JSON ({non_finite[0].word} is not a JSON value)")


def _shown(text: str, limit: int = 40) -> str:
    """repr of a payload string for a reason, cut short: reasons are logged and listed."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def _shown_int(n: int) -> str:
    text = str(n)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} digits)"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, _NonFinite):
        return value.word
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite_number(value: Any) -> float | None:
    """float(value) for a finite JSON number, None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer literal too large for a double
        return None
    return number if math.isfinite(number) else None


# ---------------------------------------------------------------------------------------------
# Data records and batches


def _parse_ts(value: Any, where: str) -> int:
    if value is None:
        raise ContractError(f"{where}ts: missing (sample time, integer ms since the Unix epoch)")
    if not _is_int(value):
        if isinstance(value, float) and value.is_integer():
            raise ContractError(f"{where}ts: {value!r} is not an integer (write ms as an integer)")
        raise ContractError(f"{where}ts: expected an integer (ms since the Unix epoch), got {_type_name(value)}")
    if TS_MIN_MS <= value < TS_MAX_MS:
        return value
    if TS_MIN_MS // 1000 <= value < TS_MAX_MS // 1000:
        raise ContractError(f"{where}ts: {value} looks like seconds; expected milliseconds since the Unix epoch")
    raise ContractError(
        f"{where}ts: {value} is not a plausible time in ms (expected 2000-01-01 <= ts < 2100-01-01, "
        f"i.e. {TS_MIN_MS} <= ts < {TS_MAX_MS})"
    )


def _parse_readings(value: Any, where: str) -> dict[str, Reading]:
    if value is None:
        raise ContractError(f"{where}readings: missing (an object of parameter code -> {{v, f}})")
    if not isinstance(value, dict):
        raise ContractError(f"{where}readings: expected an object, got {_type_name(value)}")
    if not value:
        raise ContractError(f"{where}readings: empty (a record carries at least one reading)")
    readings: dict[str, Reading] = {}
    for code, reading in value.items():
        # The happy path first, with no string building; any doubt goes to the checks below,
        # which give the reason exactly as before.
        if code in _GOOD_CODES and type(reading) is dict and len(reading) == 2:
            flag = reading.get("f")
            if type(flag) is str and flag in _FLAG_SET:
                raw = reading.get("v", reading)
                kind = type(raw)
                if kind is float:
                    if raw - raw == 0.0:  # finite (inf - inf and nan - nan are nan)
                        readings[code] = Reading(raw, flag)
                        continue
                elif kind is int:
                    if -_INT_FLOAT_SAFE <= raw <= _INT_FLOAT_SAFE:
                        readings[code] = Reading(float(raw), flag)
                        continue
                elif raw is None:
                    readings[code] = Reading(None, flag)
                    continue
        readings[code] = _parse_reading(code, reading, where)
    return readings


_FLAG_SET = frozenset(FLAGS)
_INT_FLOAT_SAFE = 2**53  # every int up to this converts to a finite float exactly; larger: the full check
_GOOD_CODES: set[str] = set()  # parameter codes already seen to match PARAM_RE (a few hundred at most)


def _parse_reading(code: str, reading: Any, where: str) -> Reading:
    here = f"{where}readings.{code}"
    if not PARAM_RE.fullmatch(code):
        raise ContractError(
            f"{here[:60]}: {_shown(code)} is not an HJ 212 parameter code (one lowercase letter and 5 digits, e.g. w01018)"
        )
    if len(_GOOD_CODES) < 100_000:
        _GOOD_CODES.add(code)
    if not isinstance(reading, dict):
        raise ContractError(f"{here}: expected an object {{\"v\": number|null, \"f\": flag}}, got {_type_name(reading)}")
    if "v" not in reading:
        raise ContractError(f"{here}.v: missing (a number, or null for no value)")
    raw = reading["v"]
    if raw is None:
        number = None
    else:
        number = _finite_number(raw)
        if number is None:
            if isinstance(raw, _NonFinite):
                raise ContractError(f"{here}.v: {raw.word} is not a finite number (use null for no value)")
            if _is_int(raw) or isinstance(raw, float):
                raise ContractError(f"{here}.v: {raw} is out of range for a number")
            raise ContractError(f"{here}.v: expected a finite number or null, got {_type_name(raw)}")
    if "f" not in reading:
        raise ContractError(f"{here}.f: missing (expected one of {' '.join(FLAGS)})")
    flag = reading["f"]
    if not isinstance(flag, str) or flag not in FLAGS:
        shown = _shown(flag) if isinstance(flag, str) else _type_name(flag)
        raise ContractError(f"{here}.f: unknown flag {shown} (expected one of {' '.join(FLAGS)})")
    return Reading(number, flag)


def _parse_record(obj: Any, where: str) -> Record:
    if not isinstance(obj, dict):
        raise ContractError(f"{where.rstrip('.') or 'payload'}: expected a JSON object, got {_type_name(obj)}")
    ts = _parse_ts(obj.get("ts"), where)
    if "seq" not in obj:
        raise ContractError(f"{where}seq: missing (per-node record counter, a non-negative integer)")
    seq = obj["seq"]
    if not _is_int(seq) or seq < 0:
        shown = _shown_int(seq) if _is_int(seq) else _type_name(seq)
        raise ContractError(f"{where}seq: expected a non-negative integer, got {shown}")
    if seq > SEQ_MAX:
        raise ContractError(f"{where}seq: {_shown_int(seq)} is out of range (0 <= seq <= {SEQ_MAX}, "
                            f"the node's unsigned 32-bit counter)")
    clk = obj.get("clk")  # null is taken as "not said", like a missing member
    if clk is not None and (not isinstance(clk, str) or clk not in CLOCKS):
        shown = _shown(clk) if isinstance(clk, str) else _type_name(clk)
        raise ContractError(f"{where}clk: unknown clock {shown} (expected one of {' '.join(CLOCKS)})")
    readings = _parse_readings(obj.get("readings"), where)
    return Record(ts=ts, seq=seq, clk=clk, readings=readings)


def _check_sig(obj: dict[str, Any], payload: bytes) -> None:
    if "sig" not in obj:
        return
    sig = obj["sig"]
    if not isinstance(sig, str) or not SIG_RE.fullmatch(sig):
        shown = f"{len(sig)} characters" if isinstance(sig, str) else _type_name(sig)
        raise ContractError(f"sig: expected 64 hex characters (HMAC-SHA256), got {shown}")
    if split_signature(payload)[1] is None:
        raise ContractError('sig: must be the last member, written exactly as ,"sig":"<64 hex>" before the closing }')


def parse_data(payload: bytes) -> list[Record]:
    """A data payload (one record, or `{"batch": [...], "sig": ...}`) -> its records, in order."""
    obj, non_finite = _decode_json(payload)
    if not isinstance(obj, dict):
        raise ContractError(f"payload: expected a JSON object (a record or a batch), got {_type_name(obj)}")
    if "batch" in obj:
        batch = obj["batch"]
        if not isinstance(batch, list):
            raise ContractError(f"batch: expected an array of records, got {_type_name(batch)}")
        if not batch:
            raise ContractError("batch: empty (a batch carries at least one record)")
        records = []
        for i, item in enumerate(batch):
            where = f"batch[{i}]."
            if isinstance(item, dict) and "sig" in item:
                raise ContractError(f"{where}sig: records in a batch carry no sig (the batch is signed as a whole)")
            records.append(_parse_record(item, where))
    else:
        records = [_parse_record(obj, "")]
    _check_sig(obj, bytes(payload))
    _reject_leftover_non_finite(non_finite)
    return records


_SIG_MARK = b',"sig":"'
_JSON_WS = b" \t\r\n"


def split_signature(payload: bytes) -> tuple[bytes, str | None]:
    """(signed bytes, sig hex) per DESIGN: the signed bytes are the payload with its final
    `,"sig":"<hex>"` removed; sig must be the last member of the top-level object.
    Returns (payload, None) when the payload does not end that way."""
    payload = bytes(payload)
    at = payload.rfind(_SIG_MARK)
    if at < 0:
        return payload, None
    hex_start = at + len(_SIG_MARK)
    hex_end = hex_start + 64
    sig = payload[hex_start:hex_end]
    if len(sig) != 64 or payload[hex_end : hex_end + 1] != b'"':
        return payload, None
    try:
        sig_text = sig.decode("ascii")
    except UnicodeDecodeError:
        return payload, None
    if not SIG_RE.fullmatch(sig_text):
        return payload, None
    # Only JSON whitespace, the closing brace of the top-level object, then whitespace may follow.
    tail = payload[hex_end + 1 :].strip(_JSON_WS)
    if tail != b"}":
        return payload, None
    return payload[:at] + payload[hex_end + 1 :], sig_text


# ---------------------------------------------------------------------------------------------
# Node status (retained; also the node's last will)

_STATUS_NUMBERS = ("up", "heap", "rssi", "queue")


def parse_status(payload: bytes) -> Status:
    obj, non_finite = _decode_json(payload)
    if not isinstance(obj, dict):
        raise ContractError(f"payload: expected a JSON object, got {_type_name(obj)}")
    if "state" not in obj:
        raise ContractError('state: missing (expected "online" or "offline")')
    state = obj["state"]
    if not isinstance(state, str) or not state:
        raise ContractError(f'state: expected a string ("online" or "offline"), got {_type_name(state)}')
    fw = obj.get("fw")
    if fw is not None and not isinstance(fw, str):
        raise ContractError(f"fw: expected a string, got {_type_name(fw)}")
    for name, text in (("state", state), ("fw", fw)):
        if text is not None and (len(text) > 64 or any(ord(ch) < 32 or ord(ch) == 127 for ch in text)):
            raise ContractError(f"{name}: expected a short printable string (at most 64 characters, "
                                f"no control characters), got {_shown(text)}")
    numbers: dict[str, float | None] = {}
    for name in _STATUS_NUMBERS:
        raw = obj.get(name)
        if raw is None:
            numbers[name] = None
            continue
        number = _finite_number(raw)
        if number is None:
            raise ContractError(f"{name}: expected a finite number, got {_type_name(raw)}")
        numbers[name] = number
    clk = obj.get("clk")
    if clk is not None and (not isinstance(clk, str) or clk not in CLOCKS):
        shown = _shown(clk) if isinstance(clk, str) else _type_name(clk)
        raise ContractError(f"clk: unknown clock {shown} (expected one of {' '.join(CLOCKS)})")
    cn = _parse_cn(obj.get("cn"))
    known = {"state", "fw", "clk", "cn", "sig", *_STATUS_NUMBERS}
    extra = {k: v for k, v in obj.items() if k not in known}
    _check_sig(obj, bytes(payload))
    _reject_leftover_non_finite(non_finite)
    return Status(state=state, fw=fw, clk=clk, extra=extra, cn=cn, **numbers)


def _parse_cn(raw: Any) -> tuple[int, int] | None:
    """`cn`: the connection id [boot, connection] a status names (its will names the same)."""
    if raw is None:
        return None
    if (not isinstance(raw, list) or len(raw) != 2
            or not all(_is_int(x) and 0 <= x <= CN_MAX for x in raw)):
        shown = _shown(json.dumps(raw)) if isinstance(raw, list) else _type_name(raw)
        raise ContractError(f"cn: expected [boot, connection], two non-negative integers, got {shown}")
    return raw[0], raw[1]


# ---------------------------------------------------------------------------------------------
# Node events


def parse_event(payload: bytes) -> Event:
    """`{"ts": ms, "kind": "...", "detail": <any JSON>, "sig": ...}` -> Event."""
    if len(payload) > EVENT_MAX_BYTES:
        raise ContractError(f"payload: {len(payload)} bytes, more than the {EVENT_MAX_BYTES} an event may have")
    obj, non_finite = _decode_json(payload)
    if not isinstance(obj, dict):
        raise ContractError(f"payload: expected a JSON object (an event), got {_type_name(obj)}")
    ts = _parse_ts(obj.get("ts"), "")
    if "kind" not in obj:
        raise ContractError('kind: missing (what happened: "boot", "queue_overflow", ...)')
    kind = obj["kind"]
    if not isinstance(kind, str) or not ID_RE.fullmatch(kind):
        shown = _shown(kind) if isinstance(kind, str) else _type_name(kind)
        raise ContractError(f"kind: expected an identifier ([A-Za-z0-9_-]{{1,64}}), got {shown}")
    detail = obj.get("detail")
    if kind == "queue_overflow":
        _check_overflow(detail)
    _check_sig(obj, bytes(payload))
    _reject_leftover_non_finite(non_finite)
    return Event(ts=ts, kind=kind, detail=detail)


def _check_overflow(detail: Any) -> None:
    if not isinstance(detail, dict):
        raise ContractError(f"detail: a queue_overflow event carries an object {{\"dropped\": n, ...}}, "
                            f"got {_type_name(detail)}")
    for name in ("dropped", "total", "lost"):
        value = detail.get(name)
        if value is None and name != "dropped":
            continue  # "lost" since firmware 0.3.0
        if not _is_int(value) or not 0 <= value <= SEQ_MAX:
            shown = _shown_int(value) if _is_int(value) else _type_name(value)
            raise ContractError(f"detail.{name}: expected a record count (0 <= n <= {SEQ_MAX}), got {shown}")
