"""One way to check a config file (gateway.toml, alarms.toml, a limit profile, keys.toml).

Fields are declared as `Field`s and read with `read()`; every problem goes into a `Problems` and the
loader raises them together, at the end, as one `ConfigError`, one line per problem:

    FILE: field.path: what is wrong; fix: what to write

A bad value reads as its default, so the checks go on and later fields are reported too. The same
declarations give a JSON Schema (`json_schema()`, `edgemon config schema`) that editors can use.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

REQUIRED: Any = ...  # a Field's default when the field must be given
TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list",
              dict: "a table"}
JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}
PLACEHOLDERS = {str: '"..."', int: "1", float: "1.0", bool: "true", list: "[]", dict: "{}"}


@dataclass(frozen=True)
class Problem:
    file: str
    field: str  # a dotted path; "" for the file as a whole
    reason: str
    fix: str = ""

    def __str__(self) -> str:
        head = f"{self.file}: {self.field}: " if self.field else f"{self.file}: "
        return head + self.reason + (f"; fix: {self.fix}" if self.fix else "")


class ConfigError(ValueError):
    """Every problem found in a config, one per line (see Problem); `problems` holds them."""

    def __init__(self, problems: Problem | Iterable[Problem]):
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(dict.fromkeys(problems))  # in order, each once
        super().__init__("\n".join(map(str, self.problems)))


def report(exc: ConfigError) -> str:
    """What a command prints: how many problems, then one per line."""
    n = len(exc.problems)
    return f"{n} config error{'' if n == 1 else 's'}:\n{exc}"


class Problems:
    """The problems of one file, collected as they are found."""

    def __init__(self, file):
        self.file = str(file)
        self.found: list[Problem] = []

    def add(self, field: str, reason: str, fix: str = "") -> None:
        self.found.append(Problem(self.file, field, reason, fix))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.found.extend(problems)

    def __len__(self) -> int:
        return len(self.found)

    def raise_if_any(self, error: type[ConfigError] = ConfigError) -> None:
        if self.found:
            raise error(self.found)


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def toml_value(value: Any) -> str:
    """A value as it is written in TOML (for the fix examples)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    return repr(value)


@dataclass(frozen=True)
class Field:
    kind: type  # str, int, float (an integer is taken too, as a float), bool, list, dict
    default: Any = REQUIRED  # REQUIRED, None (optional, no value), or the value used when absent
    doc: str = ""
    enum: tuple = ()
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    finite: bool = False  # refuse inf and nan
    pattern: str | None = None  # a string must match it whole
    check: Callable[[Any], bool] | None = None  # anything else a valid value must pass
    expect: str = ""  # a valid value in words (else built from the constraints)
    example: Any = None  # shown in the fix (else the default)
    items: Field | None = None  # a list's items
    table: dict[str, Field] | None = None  # a nested table's fields (JSON Schema only; read it with read())
    map_of: Field | dict[str, Field] | None = None  # a table of named entries, each this (JSON Schema only)
    keys: str | None = None  # the entries' names must match this (JSON Schema only)

    def describe(self) -> str:
        if self.expect:
            return self.expect
        if self.enum:
            return "one of " + ", ".join(toml_value(v) for v in self.enum)
        text = TYPE_NAMES[self.kind]
        if self.ge is not None and self.le is not None:
            return f"{text} {self.ge}-{self.le}"
        bounds = [f"{op} {v}" for op, v in ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
                  if v is not None]
        if self.pattern:
            bounds.append(f"matching {self.pattern}")
        return " ".join([text, " and ".join(bounds)]) if bounds else text

    def sample(self) -> Any:
        for v in (self.example, None if self.default is REQUIRED else self.default):
            if v is not None and v != [] and v != {}:
                return v
        return self.enum[0] if self.enum else None

    def fix(self, key: str | None) -> str:
        """`write <a valid value>, e.g. key = <example>` (key None: a list item)."""
        sample = self.sample()
        if sample is None:
            return f"write {self.describe()}" + (f", e.g. {key} = {PLACEHOLDERS[self.kind]}" if key else "")
        return f"write {self.describe()}, e.g. " + (f"{key} = " if key else "") + toml_value(sample)

    def why_not(self, value: Any) -> str | None:
        """None when the (type-correct) value is allowed, else the reason."""
        bad = (
            (self.enum and value not in self.enum)
            or (self.gt is not None and not value > self.gt) or (self.ge is not None and not value >= self.ge)
            or (self.lt is not None and not value < self.lt) or (self.le is not None and not value <= self.le)
            or (self.finite and not math.isfinite(value))
            or (self.pattern is not None and not re.fullmatch(self.pattern, value))
            or (self.check is not None and not self.check(value))
        )
        return f"expected {self.describe()}, got {value!r}" if bad else None


def _typed(kind: type, value: Any) -> tuple[bool, Any]:
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    return isinstance(value, kind), value


def value_of(f: Field, value: Any, path: str, key: str | None, problems: Problems) -> tuple[bool, Any]:
    """(True, the value) when `value` is what `f` allows, else (False, None) with the problem added."""
    ok, value = _typed(f.kind, value)
    if not ok:
        problems.add(path, f"expected {TYPE_NAMES[f.kind]}, got {value!r}", f.fix(key))
        return False, None
    reason = f.why_not(value) if f.kind is not list else None
    if reason:
        problems.add(path, reason, f.fix(key))
        return False, None
    if f.kind is list and f.items is not None:
        good = [value_of(f.items, item, f"{path}[{i}]", None, problems) for i, item in enumerate(value)]
        if not all(g for g, _ in good):
            return False, None
        value = [v for _, v in good]
    return True, value


class Values(dict):
    """read()'s answer: field -> value (the default when absent or bad); `bad` names the bad ones."""

    bad: set[str]


def unknown_fix(key: str, known: Iterable[str]) -> str:
    known = list(known)
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"did you mean {close[0]}? (known: {', '.join(known)})"
    return f"remove it (known: {', '.join(known) or 'none'})"


def read(table: dict, fields: dict[str, Field], problems: Problems, where: str = "") -> Values:
    """Every field of `table` checked: unknown keys, missing required ones, types and constraints."""
    out = Values()
    out.bad = set()
    for key in table:
        if key not in fields:
            problems.add(join(where, key), "unknown field", unknown_fix(key, fields))
    for key, f in fields.items():
        path = join(where, key)
        fallback = None if f.default is REQUIRED else f.default
        fallback = type(fallback)(fallback) if isinstance(fallback, (list, dict)) else fallback
        if key not in table:
            if f.default is REQUIRED:
                sample = f.sample()
                value = PLACEHOLDERS[f.kind] if sample is None else toml_value(sample)
                problems.add(path, "missing (required)", f"add {key} = {value} ({f.describe()})")
                out.bad.add(key)
            out[key] = fallback
            continue
        ok, value = value_of(f, table[key], path, key, problems)
        out[key] = value if ok else fallback
        if not ok:
            out.bad.add(key)
    return out


# ----------------------------------------------------------------- JSON Schema (for editors)

def field_schema(f: Field) -> dict:
    s: dict[str, Any] = {"type": JSON_TYPES[f.kind]}
    if f.doc:
        s["description"] = f.doc
    if f.default is not REQUIRED and f.default is not None:
        s["default"] = f.default
    if f.enum:
        s["enum"] = list(f.enum)
    for name, v in (("exclusiveMinimum", f.gt), ("minimum", f.ge), ("exclusiveMaximum", f.lt), ("maximum", f.le)):
        if v is not None:
            s[name] = v
    if f.pattern:
        s["pattern"] = f"^(?:{f.pattern})$"
    if f.items is not None:
        s["items"] = field_schema(f.items)
    if f.table is not None:
        s.update(table_schema(f.table))
    if f.map_of is not None:
        s["additionalProperties"] = (table_schema(f.map_of) if isinstance(f.map_of, dict)
                                     else field_schema(f.map_of))
        if f.keys:
            s["propertyNames"] = {"pattern": f"^(?:{f.keys})$"}
    return s


def table_schema(fields: dict[str, Field]) -> dict:
    return {"type": "object", "properties": {k: field_schema(f) for k, f in fields.items()},
            "required": [k for k, f in fields.items() if f.default is REQUIRED], "additionalProperties": False}


def json_schema(fields: dict[str, Field], title: str) -> dict:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **table_schema(fields)}
