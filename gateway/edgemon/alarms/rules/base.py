"""What every rule kind shares. A rule kind is one module in this package with

    KIND = "name"                                 # the key under [sites.<id>.rules]
    FIELDS = {"setting": Field(...), ...}         # its settings (edgemon.configschema)
    def check(v: dict, site: Site, where: str, problems: Problems) -> None   # optional: checks across settings
    def build(v: dict, site: Site, rule_id: str) -> Rule                    # v: the settings, all valid

and a Rule with `id`, `debounce` and pure methods (on_records, on_status, on_tick, on_event); each gets `mem`, the rule's own
JSON-serialisable memory (persisted by the engine), and returns observations. Times are passed in:
`ts` is the record's sample time, `receive_ms` when the gateway got it, `now_ms` the tick's clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...configschema import Field, Problems, read
from ...contract import Event, Record, Status

BREACH, OK, HOLD, EXCLUDED = "breach", "ok", "hold", "excluded"
# Within the limit but inside the hysteresis band: ends a pending breach, does not count to clear.
WITHIN = "within"


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

CODE = r"[a-z][0-9]{5}"
CODE_TEXT = "an HJ 212 parameter code (e.g. w01018)"
PARAMS = Field(list, None, "the parameters checked (default: every one with a limit)", example=["w01018"],
               items=Field(str, pattern=CODE, expect=CODE_TEXT, example="w01018"))


def debounce_fields(default: Debounce) -> dict[str, Field]:
    return {
        "raise_n": Field(int, default.raise_n, "consecutive breaching observations before a raise", ge=1),
        "raise_after_s": Field(float, default.raise_s, "and breaching for this long (sample time)", ge=0),
        "clear_n": Field(int, default.clear_n, "consecutive clean observations before a clear", ge=1),
        "clear_after_s": Field(float, default.clear_s, "and clean for this long", ge=0),
    }


def debounce_of(v: dict) -> Debounce:
    return Debounce(v["raise_n"], v["raise_after_s"], v["clear_n"], v["clear_after_s"])


def check_limits(v: dict, site: Site, where: str, problems: Problems) -> None:
    """Every parameter in `params` has a limit at this site."""
    if "params" in v.bad:
        return
    for i, p in enumerate(v["params"] or ()):
        if p not in site.limits:
            problems.add(f"{where}.params[{i}]", f"{p} has no limit in profile {site.profile!r} or the overrides",
                         f"remove it from params, or add [sites.{site.id}.overrides.{p}] with max (or min)")


def build_rule(kind, spec: dict, site: Site, where: str, rule_id: str, problems: Problems) -> Rule | None:
    """The rule of kind module `kind` from its settings, or None when they have problems (added)."""
    before = len(problems)
    v = read(spec, kind.FIELDS, problems, where)
    if hasattr(kind, "check"):
        kind.check(v, site, where, problems)
    return kind.build(v, site, rule_id) if len(problems) == before else None


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
