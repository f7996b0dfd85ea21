"""What every rule kind shares. A rule kind is one module in this package with

    KIND = "name"                                 # the key under [sites.<id>.rules]
    def build(spec: dict, site: Site, where: str) -> Rule   # raises ConfigError naming `where`

and a Rule with `id`, `debounce` and pure methods (on_records, on_status, on_tick, on_event); each gets `mem`, the rule's own
JSON-serialisable memory (persisted by the engine), and returns observations. Times are passed in:
`ts` is the record's sample time, `receive_ms` when the gateway got it, `now_ms` the tick's clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...contract import Event, Record, Status

BREACH, OK, HOLD, EXCLUDED = "breach", "ok", "hold", "excluded"
# Within the limit but inside the hysteresis band: ends a pending breach, does not count to clear.
WITHIN = "within"


class ConfigError(ValueError):
    """A bad alarms config or limit profile: `where` names the file and field."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Limit:
    min: float | None = None
    max: float | None = None
    cold_max: float | None = None  # max at water temperature <= the profile's cold_at_or_below


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    name: str
    profile: str
    limits: dict[str, Limit]
    cold_param: str | None = None
    cold_at_or_below: float | None = None


@dataclass(frozen=True, slots=True)
class Debounce:
    raise_n: int = 1  # consecutive breaching observations before raising
    raise_s: float = 0.0  # and for at least this long (sample time)
    clear_n: int = 1  # consecutive clean observations before clearing
    clear_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Obs:
    node: str
    param: str  # the alarm's param tag (an HJ 212 code, or a word like "node"/"clock")
    state: str  # BREACH / OK / WITHIN / HOLD (no news) / EXCLUDED (a reading that may not count: its flag)
    ts: int  # event time, ms
    value: float | None = None
    limit: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class Rule:
    id: str = "?"
    kind: str = "?"
    debounce: Debounce = Debounce()

    def on_records(self, mem: dict, node: str, records: list[Record], receive_ms: int) -> list[Obs]:
        return []

    def on_status(self, mem: dict, node: str, status: Status, receive_ms: int) -> list[Obs]:
        return []

    def on_tick(self, mem: dict, now_ms: int) -> list[Obs]:
        return []

    def on_event(self, mem: dict, node: str, event: Event, receive_ms: int) -> list[Obs]:
        return []


# ----------------------------------------------------------------- spec helpers (config checks)

def join(where: str, key: str) -> str:
    """`file: a.b` + key: the top level of a file is written `file:`, fields below it with dots."""
    return f"{where} {key}" if where.endswith(":") else f"{where}.{key}"


def take(spec: dict, where: str, key: str, kind: type | tuple, default: Any = ..., check=None, hint: str = ""):
    """spec[key] checked for type (and `check`), or the default; ConfigError naming the field."""
    if key not in spec:
        if default is ...:
            raise ConfigError(join(where, key), f"missing{(' (' + hint + ')') if hint else ''}")
        return default
    value = spec[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise ConfigError(join(where, key), f"expected {names}, got {value!r}")
    if check is not None and not check(value):
        raise ConfigError(join(where, key), f"{value!r} is not allowed{(': ' + hint) if hint else ''}")
    return value


def no_unknown(spec: dict, where: str, known: set[str]) -> None:
    for key in spec:
        if key not in known:
            raise ConfigError(join(where, key), f"unknown setting (known: {', '.join(sorted(known))})")


DEBOUNCE_KEYS = {"raise_n", "raise_after_s", "clear_n", "clear_after_s"}


def debounce_from(spec: dict, where: str, default: Debounce) -> Debounce:
    positive_int = lambda v: v >= 1  # noqa: E731
    non_neg = lambda v: v >= 0  # noqa: E731
    return Debounce(
        raise_n=take(spec, where, "raise_n", int, default.raise_n, positive_int, ">= 1"),
        raise_s=take(spec, where, "raise_after_s", float, default.raise_s, non_neg, ">= 0"),
        clear_n=take(spec, where, "clear_n", int, default.clear_n, positive_int, ">= 1"),
        clear_s=take(spec, where, "clear_after_s", float, default.clear_s, non_neg, ">= 0"),
    )


def params_from(spec: dict, where: str, site: Site, default: list[str] | None = None) -> list[str]:
    params = take(spec, where, "params", list, default if default is not None else sorted(site.limits))
    import re

    for i, p in enumerate(params):
        if not isinstance(p, str) or not re.fullmatch(r"[a-z][0-9]{5}", p):
            raise ConfigError(f"{where}.params[{i}]", f"{p!r} is not an HJ 212 parameter code (e.g. w01018)")
    return list(params)


def effective_max(site: Site, limit: Limit, temperature: float | None) -> float | None:
    """The max in force: the cold-water max when the water is at or below the profile's threshold
    (no temperature known: the stricter warm limit)."""
    if limit.cold_max is not None and temperature is not None and site.cold_at_or_below is not None:
        if temperature <= site.cold_at_or_below:
            return limit.cold_max
    return limit.max


def note_temperature(mem: dict, site: Site, node: str, record: Record) -> None:
    if site.cold_param and site.cold_param in record.readings:
        r = record.readings[site.cold_param]
        if r.value is not None and r.flag == "N":
            mem.setdefault("temp", {})[node] = r.value


def temperature(mem: dict, node: str) -> float | None:
    temps = mem.get("temp", {})
    if node in temps:
        return temps[node]
    return next(iter(temps.values()), None)  # another node of the same site measures it
