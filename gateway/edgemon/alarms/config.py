"""alarms.toml and the limit profiles: one schema, checked at start (and by `edgemon alarms
check-config`); every error names the file and the field."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .rules import kinds
from .rules.base import ConfigError, Limit, Rule, Site, no_unknown, take

DATA_DIR = Path(__file__).resolve().parent.parent / "data"  # shipped beside the code
PROFILE_DIR = DATA_DIR / "limits"
ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
CODE_RE = re.compile(r"[a-z][0-9]{5}")
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


def _limit(raw, where: str) -> Limit:
    if not isinstance(raw, dict):
        raise ConfigError(where, f"expected a table with min/max, got {raw!r}")
    no_unknown(raw, where, {"min", "max", "cold_max"})
    lo = take(raw, where, "min", float, None)
    hi = take(raw, where, "max", float, None)
    cold = take(raw, where, "cold_max", float, None)
    if lo is None and hi is None:
        raise ConfigError(where, "needs min or max")
    if lo is not None and hi is not None and lo >= hi:
        raise ConfigError(f"{where}.min", f"min {lo} must be below max {hi}")
    for name, v in (("min", lo), ("max", hi), ("cold_max", cold)):
        if v is not None and (v != v or v in (float("inf"), float("-inf"))):
            raise ConfigError(f"{where}.{name}", "must be a finite number")
    if cold is not None and hi is None:
        raise ConfigError(f"{where}.cold_max", "needs max too (cold_max replaces it in cold water)")
    return Limit(min=lo, max=hi, cold_max=cold)


def load_profile(path: Path) -> Profile:
    path = Path(path)
    where = f"{path}:"
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "no such limit profile") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    no_unknown(raw, where, {"title", "basis", "cold_param", "cold_at_or_below", "limits"})
    title = take(raw, where, "title", str)
    basis = take(raw, where, "basis", str, "sample", lambda v: v in ("sample", "daily_mean"), "sample or daily_mean")
    cold_param = take(raw, where, "cold_param", str, None, lambda v: bool(CODE_RE.fullmatch(v)), "an HJ 212 code")
    cold_at = take(raw, where, "cold_at_or_below", float, None)
    limits_raw = take(raw, where, "limits", dict)
    limits = {}
    for code, lim in limits_raw.items():
        here = f"{path}: limits.{code}"
        if not CODE_RE.fullmatch(code):
            raise ConfigError(here, "not an HJ 212 parameter code (e.g. w01018)")
        limits[code] = _limit(lim, here)
        if limits[code].cold_max is not None and (cold_param is None or cold_at is None):
            raise ConfigError(f"{here}.cold_max", "the profile needs cold_param and cold_at_or_below")
    return Profile(path.stem, title, basis, limits, cold_param, cold_at)


def profile_path(name: str, config_dir: Path) -> Path:
    """A profile named by id (a file in data/limits) or by a path relative to alarms.toml."""
    if "/" in name or name.endswith(".toml"):
        return (config_dir / name).resolve()
    return PROFILE_DIR / f"{name}.toml"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def _phone_list(value, where: str, people: dict[str, dict]) -> list[str]:
    if not isinstance(value, list):
        raise ConfigError(where, f"expected a list of people or phone numbers, got {value!r}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str) and item in people:
            out.append(people[item]["phone"])
        elif isinstance(item, str) and PHONE_RE.fullmatch(item):
            out.append(item)
        else:
            raise ConfigError(f"{where}[{i}]", f"{item!r} is neither a person under [people] nor a phone number")
    return out


def load(path: Path) -> AlarmsConfig:
    path = Path(path)
    f = str(path)
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f, "no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f, f"not valid TOML: {exc}") from None
    no_unknown(raw, f + ":", {"sms", "people", "sites"})

    sms_raw = take(raw, f + ":", "sms", dict, {})
    defaults = SmsConfig()
    no_unknown(sms_raw, f"{f}: sms", set(defaults.__dataclass_fields__))
    sms_kw = {}
    for name, fld in defaults.__dataclass_fields__.items():
        kind = {"int": int, "float": float}.get(fld.type, str)
        if name in sms_raw:
            sms_kw[name] = take(sms_raw, f"{f}: sms", name, kind,
                                check=(lambda v: v > 0) if kind in (int, float) else None, hint="> 0")
    sms = SmsConfig(**sms_kw)

    people = {}
    for pid, person in take(raw, f + ":", "people", dict, {}).items():
        where = f"{f}: people.{pid}"
        if not isinstance(person, dict):
            raise ConfigError(where, "expected a table with phone (and name)")
        no_unknown(person, where, {"phone", "name"})
        people[pid] = {"phone": take(person, where, "phone", str, ..., lambda v: bool(PHONE_RE.fullmatch(v)),
                                     "digits with an optional leading +, e.g. +8613800000000"),
                       "name": take(person, where, "name", str, pid)}

    rule_kinds = kinds()
    sites = {}
    sites_raw = take(raw, f + ":", "sites", dict, {})
    for sid, s in sites_raw.items():
        where = f"{f}: sites.{sid}"
        if not ID_RE.fullmatch(sid):
            raise ConfigError(where, "a site id is [A-Za-z0-9_-]{1,64}, as in the MQTT topic")
        if not isinstance(s, dict):
            raise ConfigError(where, "expected a table")
        no_unknown(s, where, {"name", "profile", "overrides", "rules", "roles", "notify", "escalate_to",
                              "escalate_after_min"})
        name = take(s, where, "name", str, sid)
        pname = take(s, where, "profile", str, ..., hint="one of " + ", ".join(available_profiles()))
        ppath = profile_path(pname, path.parent)
        if not ppath.exists():
            raise ConfigError(f"{where}.profile", f"no limit profile {pname!r} (known: {', '.join(available_profiles())})")
        profile = load_profile(ppath)
        limits = dict(profile.limits)
        for code, lim in take(s, where, "overrides", dict, {}).items():
            here = f"{where}.overrides.{code}"
            if not CODE_RE.fullmatch(code):
                raise ConfigError(here, "not an HJ 212 parameter code (e.g. w01018)")
            if isinstance(lim, dict):
                base = limits.get(code)
                merged = {k: v for k, v in ((("min", base.min), ("max", base.max), ("cold_max", base.cold_max))
                                             if base else ()) if v is not None}
                merged.update(lim)
                limits[code] = _limit(merged, here)
            else:
                raise ConfigError(here, "expected a table, e.g. { max = 45.0 }")
        site = Site(id=sid, name=name, profile=profile.id, limits=limits, cold_param=profile.cold_param,
                    cold_at_or_below=profile.cold_at_or_below)
        rules = []
        for rid, spec in take(s, where, "rules", dict, {"instant": {}}).items():
            here = f"{where}.rules.{rid}"
            if not isinstance(spec, dict):
                raise ConfigError(here, "expected a table of settings ({} for the defaults)")
            spec = dict(spec)
            kind = spec.pop("kind", rid)
            if kind not in rule_kinds:
                raise ConfigError(here + (".kind" if kind != rid else ""),
                                  f"unknown rule kind {kind!r} (known: {', '.join(sorted(rule_kinds))})")
            if not ID_RE.fullmatch(rid):
                raise ConfigError(here, "a rule id is [A-Za-z0-9_-]{1,64}")
            rules.append(rule_kinds[kind].build(spec, site, here, rid))
        roles = {}
        for role, members in take(s, where, "roles", dict, {}).items():
            roles[role] = _phone_list(members, f"{where}.roles.{role}", people)
        notify = take(s, where, "notify", list, ["duty"])
        if "notify" not in s:
            notify = [r for r in notify if r in roles]  # the default role may be absent: no SMS then
        escalate = take(s, where, "escalate_to", list, ["escalation"])
        for key, lst in (("notify", notify), ("escalate_to", escalate)):
            for i, role in enumerate(lst):
                if role not in roles:
                    if key == "escalate_to" and "escalate_to" not in s and role == "escalation":
                        continue  # the default role may be absent: no escalation then
                    raise ConfigError(f"{where}.{key}[{i}]", f"no role {role!r} under roles (known: {', '.join(roles) or 'none'})")
        esc_after = take(s, where, "escalate_after_min", float, None, lambda v: v > 0, "> 0")
        sites[sid] = SiteConfig(site=site, rules=rules, roles=roles, notify_roles=notify,
                                escalate_roles=[r for r in escalate if r in roles], escalate_after_min=esc_after)
    return AlarmsConfig(path=path, sites=sites, sms=sms, people=people)
