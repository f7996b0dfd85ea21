"""alarms.toml and the limit profiles: one schema, checked at start (and by `edgemon alarms
check-config`); every error is reported, at once, naming the file, the field and the fix
(edgemon.configschema). `edgemon config schema alarms|profile` prints the JSON Schemas."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..configschema import REQUIRED, ConfigError, Field, Problem, Problems, json_schema, read, table_schema, value_of
from .rules import kinds
from .rules.base import CODE, CODE_TEXT, Limit, Rule, Site, build_rule

DATA_DIR = Path(__file__).resolve().parent.parent / "data"  # shipped beside the code
PROFILE_DIR = DATA_DIR / "limits"
ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
CODE_RE = re.compile(CODE)
PHONE_RE = re.compile(r"\+?[0-9]{5,20}")


@dataclass(frozen=True)
class Profile:
    id: str
    title: str
    basis: str
    limits: dict[str, Limit]
    cold_param: str | None
    cold_at_or_below: float | None


@dataclass
class SiteConfig:
    site: Site
    rules: list[Rule]
    roles: dict[str, list[str]]  # role -> phone numbers
    notify_roles: list[str]
    escalate_roles: list[str]
    escalate_after_min: float | None


@dataclass
class SmsConfig:
    port: str | None = None
    baud: int = 115200
    command_timeout_s: float = 5.0
    send_timeout_s: float = 60.0
    max_attempts: int = 8
    health_interval_s: float = 60.0
    rate_per_hour: int = 20  # per recipient; beyond it, messages wait and go out as a summary
    burst: int = 3  # per recipient per burst_window_s sent at once; more wait for one summary
    burst_window_s: float = 60.0
    dedup_s: float = 600.0  # the same alarm event to the same recipient within this: sent once


@dataclass
class AlarmsConfig:
    path: Path
    sites: dict[str, SiteConfig]
    sms: SmsConfig
    people: dict[str, dict] = field(default_factory=dict)


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


TOML_FIX = "correct the TOML at the line and column named (strings in double quotes, one key = value a line)"
LIMIT = {
    "min": Field(float, None, "below this is a breach", finite=True, example=6.0),
    "max": Field(float, None, "above this is a breach", finite=True, example=50.0),
    "cold_max": Field(float, None, "the max at water temperature <= the profile's cold_at_or_below", finite=True,
                      example=8.0),
}
PROFILE = {
    "title": Field(str, REQUIRED, "the standard and grade", example="GB 18918-2002 一级A"),
    "basis": Field(str, "sample", "what the standard judges", enum=("sample", "daily_mean")),
    "cold_param": Field(str, None, "the water temperature parameter", pattern=CODE,
                        expect="an HJ 212 code, e.g. w01010", example="w01010"),
    "cold_at_or_below": Field(float, None, "cold_max applies at or below this temperature", example=12.0),
    "limits": Field(dict, REQUIRED, "limits.<code>: min/max", map_of=LIMIT, keys=CODE,
                    example={"w01018": {"max": 50.0}}),
}
ROLE = Field(list, REQUIRED, "people under [people] or phone numbers", example=["duty"], items=Field(str))
SITE = {
    "name": Field(str, None, "the name used in SMS (default the id)"),
    "profile": Field(str, REQUIRED, "the limit profile", example="gb18918-1a",
                     expect="a shipped profile (" + ", ".join(available_profiles()) + ") or a .toml path"),
    "overrides": Field(dict, {}, "overrides.<code>: min/max replacing the profile's", map_of=LIMIT, keys=CODE),
    "rules": Field(dict, {"instant": {}}, "rules.<id>: a rule (kind = the id, or `kind`) and its settings"),
    "roles": Field(dict, {}, "roles.<role>: who gets the SMS", map_of=ROLE),
    "notify": Field(list, ["duty"], "the roles told of a raise and a clear", items=Field(str)),
    "escalate_to": Field(list, ["escalation"], "the roles told when an alarm stays raised", items=Field(str)),
    "escalate_after_min": Field(float, None, "escalate after this long", gt=0, example=60),
}
PERSON = {
    "phone": Field(str, REQUIRED, pattern=PHONE_RE.pattern, expect="digits with an optional leading +",
                   example="+8613800000000"),
    "name": Field(str, None, "the name (default the id)"),
}
SMS = {name: Field({"int": int, "float": float}.get(f.type, str), f.default,
                   gt=0 if f.type in ("int", "float") else None) for name, f in SmsConfig.__dataclass_fields__.items()}
TOP = {
    "sms": Field(dict, {}, "the GSM modem and the sending limits", table=SMS),
    "people": Field(dict, {}, "people.<id>: phone (and name)", map_of=PERSON),
    "sites": Field(dict, {}, "sites.<id>: one per site, the id as in the MQTT topic", map_of=SITE, keys=ID_RE.pattern),
}


def _limit(raw, problems: Problems, where: str) -> Limit | None:
    """A limit table, or None when it has problems (added)."""
    if not isinstance(raw, dict):
        problems.add(where, f"expected a table with min/max, got {raw!r}", "write e.g. { max = 50.0 }")
        return None
    before = len(problems)
    v = read(raw, LIMIT, problems, where)
    lo, hi, cold = v["min"], v["max"], v["cold_max"]
    if lo is None and hi is None and not v.bad:
        problems.add(where, "needs min or max", "add max = <the limit> (or min = ...)")
    if lo is not None and hi is not None and lo >= hi:
        problems.add(f"{where}.min", f"min {lo} must be below max {hi}", f"write a min below {hi}, or raise max")
    if cold is not None and hi is None and "max" not in v.bad:
        problems.add(f"{where}.cold_max", "needs max too (cold_max replaces it in cold water)",
                     "add max = <the warm-water limit>")
    return Limit(min=lo, max=hi, cold_max=cold) if len(problems) == before else None


def _read_toml(path: Path, missing: str, fix: str) -> dict:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(Problem(str(path), "", missing, fix)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(Problem(str(path), "", f"not valid TOML: {exc}", TOML_FIX)) from None


def load_profile(path: Path) -> Profile:
    """A limit profile; raises ConfigError listing every problem, each naming the profile's file."""
    path = Path(path)
    raw = _read_toml(path, "no such limit profile", "name a shipped profile (" + ", ".join(available_profiles())
                     + ") or the path of a .toml beside alarms.toml")
    problems = Problems(path)
    v = read(raw, PROFILE, problems)
    cold_param, cold_at = v["cold_param"], v["cold_at_or_below"]
    limits = {}
    for code, lim in v["limits"].items():
        here = f"limits.{code}"
        if not CODE_RE.fullmatch(code):
            problems.add(here, f"not {CODE_TEXT}", "rename the table after the parameter's code, e.g. [limits.w01018]")
            continue
        limit = _limit(lim, problems, here)
        if limit is None:
            continue
        limits[code] = limit
        if limit.cold_max is not None and (cold_param is None or cold_at is None):
            problems.add(f"{here}.cold_max", "the profile needs cold_param and cold_at_or_below",
                         'add cold_param = "w01010" and cold_at_or_below = 12.0 at the top of the profile')
    problems.raise_if_any()
    return Profile(path.stem, v["title"], v["basis"], limits, cold_param, cold_at)


def profile_path(name: str, config_dir: Path) -> Path:
    """A profile named by id (a file in data/limits) or by a path relative to alarms.toml."""
    if "/" in name or name.endswith(".toml"):
        return (config_dir / name).resolve()
    return PROFILE_DIR / f"{name}.toml"


def _phone_list(value: list, where: str, people: dict[str, dict], problems: Problems) -> list[str]:
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str) and item in people:
            out.append(people[item]["phone"])
        elif isinstance(item, str) and PHONE_RE.fullmatch(item):
            out.append(item)
        else:
            problems.add(f"{where}[{i}]", f"{item!r} is neither a person under [people] nor a phone number",
                         f"write a person's id ({', '.join(people) or 'none under [people]'}) "
                         "or a number like +8613800000000")
    return out


def load(path: Path) -> AlarmsConfig:
    """alarms.toml and the limit profiles it names; raises ConfigError listing every problem."""
    path = Path(path)
    raw = _read_toml(path, "no such file", "pass the path of alarms.toml")
    problems = Problems(path)
    top = read(raw, TOP, problems)
    sms = SmsConfig(**read(top["sms"], SMS, problems, "sms"))

    people = {}
    for pid, person in top["people"].items():
        where = f"people.{pid}"
        if not isinstance(person, dict):
            problems.add(where, f"expected a table with phone (and name), got {person!r}",
                         f'write [{where}] then phone = "+8613800000000"')
            continue
        v = read(person, PERSON, problems, where)
        people[pid] = {"phone": v["phone"], "name": pid if v["name"] is None else v["name"]}

    rule_kinds = kinds()
    profiles: dict[Path, Profile] = {}
    sites = {}
    for sid, s in top["sites"].items():
        where = f"sites.{sid}"
        if not ID_RE.fullmatch(sid):
            problems.add(where, "a site id is [A-Za-z0-9_-]{1,64}, as in the MQTT topic",
                         "rename it: letters, digits, _ and -, as the nodes of the site publish it")
        if not isinstance(s, dict):
            problems.add(where, f"expected a table, got {s!r}", f'write [{where}] then profile = "gb18918-1a"')
            continue
        v = read(s, SITE, problems, where)
        profile = _site_profile(v, path, where, problems, profiles)
        limits = dict(profile.limits)
        for code, lim in v["overrides"].items():
            here = f"{where}.overrides.{code}"
            if not CODE_RE.fullmatch(code):
                problems.add(here, f"not {CODE_TEXT}",
                             f"name the override after the parameter, e.g. [{where}.overrides.w01018]")
                continue
            if not isinstance(lim, dict):
                problems.add(here, f"expected a table, got {lim!r}", f"write [{here}] then max = 45.0")
                continue
            base = limits.get(code)
            merged = {k: x for k, x in ((("min", base.min), ("max", base.max), ("cold_max", base.cold_max))
                                        if base else ()) if x is not None}
            merged.update(lim)
            limit = _limit(merged, problems, here)
            if limit is not None:
                limits[code] = limit
        site = Site(id=sid, name=sid if v["name"] is None else v["name"], profile=profile.id, limits=limits,
                    cold_param=profile.cold_param, cold_at_or_below=profile.cold_at_or_below)
        rules = _rules(v["rules"], site, where, rule_kinds, problems)
        roles = {}
        for role, members in v["roles"].items():
            ok, members = value_of(ROLE, members, f"{where}.roles.{role}", role, problems)
            if ok:
                roles[role] = _phone_list(members, f"{where}.roles.{role}", people, problems)
        notify = v["notify"] if "notify" in s else [r for r in v["notify"] if r in roles]  # default role absent: no SMS
        escalate = v["escalate_to"]
        for key, lst in (("notify", notify), ("escalate_to", escalate)):
            for i, role in enumerate(lst if key not in v.bad else ()):  # a bad list: reported, not checked
                if role not in roles:
                    if key == "escalate_to" and "escalate_to" not in s and role == "escalation":
                        continue  # the default role may be absent: no escalation then
                    problems.add(f"{where}.{key}[{i}]",
                                 f"no role {role!r} under roles (known: {', '.join(roles) or 'none'})",
                                 f"add {role} = [\"<person or phone>\"] to {where}.roles, or remove it here")
        sites[sid] = SiteConfig(site=site, rules=rules, roles=roles, notify_roles=notify,
                                escalate_roles=[r for r in escalate if r in roles],
                                escalate_after_min=v["escalate_after_min"])
    problems.raise_if_any()
    return AlarmsConfig(path=path, sites=sites, sms=sms, people=people)


def _site_profile(v: dict, path: Path, where: str, problems: Problems, cache: dict[Path, Profile]) -> Profile:
    """The site's limit profile (its problems added, named by its own file); an empty one when it is unusable."""
    empty = Profile(v["profile"] or "?", "", "sample", {}, None, None)
    if v["profile"] is None:
        return empty
    ppath = profile_path(v["profile"], path.parent)
    if not ppath.exists():
        problems.add(f"{where}.profile",
                     f"no limit profile {v['profile']!r} (known: {', '.join(available_profiles())})",
                     'write a known id, e.g. profile = "gb18918-1a", or the path of a .toml beside alarms.toml')
        return empty
    if ppath not in cache:
        try:
            cache[ppath] = load_profile(ppath)
        except ConfigError as exc:
            problems.extend(exc.problems)
            cache[ppath] = empty
    return cache[ppath]


def _rules(specs: dict, site: Site, where: str, rule_kinds: dict, problems: Problems) -> list[Rule]:
    rules = []
    for rid, spec in specs.items():
        here = f"{where}.rules.{rid}"
        if not isinstance(spec, dict):
            problems.add(here, f"expected a table of settings, got {spec!r}", f"write [{here}] ({{}} for the defaults)")
            continue
        spec = dict(spec)
        kind = spec.pop("kind", rid)
        if kind not in rule_kinds:
            problems.add(here + (".kind" if kind != rid else ""), f"unknown rule kind {kind!r}",
                         f"use one of {', '.join(sorted(rule_kinds))} (as the id, or kind = \"...\")")
            continue
        if not ID_RE.fullmatch(rid):
            problems.add(here, "a rule id is [A-Za-z0-9_-]{1,64}", "rename it: letters, digits, _ and -")
            continue
        rule = build_rule(rule_kinds[kind], spec, site, here, rid, problems)
        if rule is not None:
            rules.append(rule)
    return rules


def schema(which: str = "alarms") -> dict:
    """The JSON Schema of alarms.toml ("alarms") or of a limit profile ("profile")."""
    if which == "profile":
        return json_schema(PROFILE, "limit profile")
    kinds_ = kinds()
    named = {k: table_schema(m.FIELDS) for k, m in kinds_.items()}
    for k, s in named.items():
        s["properties"]["kind"] = {"description": "the rule kind (default the id)", "enum": sorted(kinds_)}
    rules = {"type": "object", "properties": named, "additionalProperties": {
        "type": "object", "required": ["kind"], "properties": {"kind": {"enum": sorted(kinds_)}},
        "allOf": [{"if": {"required": ["kind"], "properties": {"kind": {"const": k}}}, "then": s}
                  for k, s in named.items()]}}
    out = json_schema(TOP, "alarms.toml")
    out["properties"]["sites"]["additionalProperties"]["properties"]["rules"].update(rules)
    return out
