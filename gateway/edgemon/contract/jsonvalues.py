"""Strict JSON for every payload: UTF-8, no duplicate members (a signed payload must mean one thing),
NaN and Infinity caught (Python's json accepts them, JSON does not), bounded nesting; and the
helpers that name a value's JSON type and shorten it for a reason."""

from __future__ import annotations

import json
import math
from typing import Any

from .model import ContractError


class NonFinite:
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


def decode_json(payload: bytes) -> tuple[Any, list[NonFinite]]:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError("payload must be bytes")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(f"payload is not UTF-8 (invalid byte at offset {exc.start})") from None
    non_finite: list[NonFinite] = []

    def constant(word: str) -> NonFinite:
        marker = NonFinite(word)
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


def reject_leftover_non_finite(non_finite: list[NonFinite]) -> None:
    # Reached only when the constant sat in a member we otherwise ignore: still not JSON.
    if non_finite:
        raise ContractError(f"payload is not JSON ({non_finite[0].word} is not a JSON value)")


def short_repr(text: str, limit: int = 40) -> str:
    """repr of a payload string for a reason, cut short: reasons are logged and listed."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def shown_int(n: int) -> str:
    text = str(n)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} digits)"


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, NonFinite):
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


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def finite_number(value: Any) -> float | None:
    """float(value) for a finite JSON number, None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer literal too large for a double
        return None
    return number if math.isfinite(number) else None
