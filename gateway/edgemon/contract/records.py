"""Data payloads: one record or a signed batch -> records, and where the signature sits
(split_signature: the signed bytes are the payload without its final `,"sig":"<hex>"`)."""

from __future__ import annotations

from typing import Any

from .jsonvalues import (NonFinite, decode_json, finite_number, is_int, reject_leftover_non_finite, short_repr,
                         shown_int, type_name)
from .model import CLOCKS, FLAGS, PARAM_RE, SEQ_MAX, SIG_RE, TS_MAX_MS, TS_MIN_MS, ContractError, Reading, Record


def parse_ts(value: Any, where: str) -> int:
    if value is None:
        raise ContractError(f"{where}ts: missing (sample time, integer ms since the Unix epoch)")
    if not is_int(value):
        if isinstance(value, float) and value.is_integer():
            raise ContractError(f"{where}ts: {value!r} is not an integer (write ms as an integer)")
        raise ContractError(f"{where}ts: expected an integer (ms since the Unix epoch), got {type_name(value)}")
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
        raise ContractError(f"{where}readings: expected an object, got {type_name(value)}")
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
            f"{here[:60]}: {short_repr(code)} is not an HJ 212 parameter code (one lowercase letter and 5 digits, e.g. w01018)"
        )
    if len(_GOOD_CODES) < 100_000:
        _GOOD_CODES.add(code)
    if not isinstance(reading, dict):
        raise ContractError(f"{here}: expected an object {{\"v\": number|null, \"f\": flag}}, got {type_name(reading)}")
    if "v" not in reading:
        raise ContractError(f"{here}.v: missing (a number, or null for no value)")
    raw = reading["v"]
    if raw is None:
        number = None
    else:
        number = finite_number(raw)
        if number is None:
            if isinstance(raw, NonFinite):
                raise ContractError(f"{here}.v: {raw.word} is not a finite number (use null for no value)")
            if is_int(raw) or isinstance(raw, float):
                raise ContractError(f"{here}.v: {raw} is out of range for a number")
            raise ContractError(f"{here}.v: expected a finite number or null, got {type_name(raw)}")
    if "f" not in reading:
        raise ContractError(f"{here}.f: missing (expected one of {' '.join(FLAGS)})")
    flag = reading["f"]
    if not isinstance(flag, str) or flag not in FLAGS:
        shown = short_repr(flag) if isinstance(flag, str) else type_name(flag)
        raise ContractError(f"{here}.f: unknown flag {shown} (expected one of {' '.join(FLAGS)})")
    return Reading(number, flag)


def _parse_record(obj: Any, where: str) -> Record:
    if not isinstance(obj, dict):
        raise ContractError(f"{where.rstrip('.') or 'payload'}: expected a JSON object, got {type_name(obj)}")
    ts = parse_ts(obj.get("ts"), where)
    if "seq" not in obj:
        raise ContractError(f"{where}seq: missing (per-node record counter, a non-negative integer)")
    seq = obj["seq"]
    if not is_int(seq) or seq < 0:
        shown = shown_int(seq) if is_int(seq) else type_name(seq)
        raise ContractError(f"{where}seq: expected a non-negative integer, got {shown}")
    if seq > SEQ_MAX:
        raise ContractError(f"{where}seq: {shown_int(seq)} is out of range (0 <= seq <= {SEQ_MAX}, "
                            f"the node's unsigned 32-bit counter)")
    clk = obj.get("clk")  # null is taken as "not said", like a missing member
    if clk is not None and (not isinstance(clk, str) or clk not in CLOCKS):
        shown = short_repr(clk) if isinstance(clk, str) else type_name(clk)
        raise ContractError(f"{where}clk: unknown clock {shown} (expected one of {' '.join(CLOCKS)})")
    readings = _parse_readings(obj.get("readings"), where)
    return Record(ts=ts, seq=seq, clk=clk, readings=readings)


def check_sig(obj: dict[str, Any], payload: bytes) -> None:
    if "sig" not in obj:
        return
    sig = obj["sig"]
    if not isinstance(sig, str) or not SIG_RE.fullmatch(sig):
        shown = f"{len(sig)} characters" if isinstance(sig, str) else type_name(sig)
        raise ContractError(f"sig: expected 64 hex characters (HMAC-SHA256), got {shown}")
    if split_signature(payload)[1] is None:
        raise ContractError('sig: must be the last member, written exactly as ,"sig":"<64 hex>" before the closing }')


def parse_data(payload: bytes) -> list[Record]:
    """A data payload (one record, or `{"batch": [...], "sig": ...}`) -> its records, in order."""
    obj, non_finite = decode_json(payload)
    if not isinstance(obj, dict):
        raise ContractError(f"payload: expected a JSON object (a record or a batch), got {type_name(obj)}")
    if "batch" in obj:
        batch = obj["batch"]
        if not isinstance(batch, list):
            raise ContractError(f"batch: expected an array of records, got {type_name(batch)}")
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
    check_sig(obj, bytes(payload))
    reject_leftover_non_finite(non_finite)
    return records


_SIG_MARK = b',"sig":"'
_JSON_WS = b" \t\r\n"


def split_signature(payload: bytes) -> tuple[bytes, str | None]:
    """(signed bytes, sig hex) (docs/ARCHITECTURE.md section 3): the signed bytes are the payload with its final
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
