"""What the dashboards are built from, read from the project's own files and never typed again:

- gateway.toml: the sites (`[sites]`: nodes, poll_s), `[liveness]` (silent_periods: what "late"
  means), `[aggregates] timezone` (the calendar of the day values), `[influx]` (for publish) and
  `[alarms] config`, the alarms.toml whose per-site `profile` and `overrides` give each limit
  (loaded by edgemon.alarms.config, the same code the alarm engine uses);
- data/params.toml: each parameter's Chinese name and unit, as the SMS writes them;
- data/sms_templates.toml: the Chinese words for the HJ 212 flags and the alarm rule kinds.

Only the sections the dashboards use are read (with the same field declarations as the gateway's
own check), so building needs none of the gateway's secrets. A problem raises ConfigError naming
the file, the field and the fix.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..alarms.rules.base import Limit
from ..configschema import ConfigError, Problem, Problems, read

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
PARAMS_FILE = DATA_DIR / "params.toml"
WORDS_FILE = DATA_DIR / "sms_templates.toml"


@dataclass(frozen=True)
class Param:
    code: str
    name: str  # 化学需氧量
    unit: str  # mg/L ("" for pH)


@dataclass
class SiteInfo:
    id: str  # as in the MQTT topic and the InfluxDB tag
    name: str  # the Chinese name the SMS uses (alarms.toml sites.<id>.name), else the id
    nodes: list[str]
    poll_s: float
    profile: str = ""  # the limit profile's id ("" without an alarms config for this site)
    profile_title: str = ""  # e.g. GB 18918-2002 一级A
    basis: str = "sample"  # what the standard judges: "sample" or "daily_mean"
    limits: dict[str, Limit] = field(default_factory=dict)  # code -> the profile's limit with the overrides
    cold_param: str | None = None
    cold_at_or_below: float | None = None
    rules: dict[str, str] = field(default_factory=dict)  # rule id -> rule kind

    def late_ms(self, silent_periods: float) -> int:
        """A record is late when it arrives more than this after its sample time: the silence after
        which the gateway marks the node offline ([liveness] silent_periods x the site's poll_s)."""
        return int(round(silent_periods * self.poll_s * 1000))


@dataclass
class Setup:
    sites: list[SiteInfo]
    params: dict[str, Param]
    flag_words: dict[str, str]  # N -> 正常, ...
    rule_words: dict[str, str]  # rule kind -> 超标, 离线, ...
    timezone: str = "Asia/Shanghai"
    silent_periods: float = 3.0
    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = "edge"
    influx_user: str | None = None
    influx_password_env: str | None = None  # the variable named in gateway.toml; its value is read at publish
    source: str = ""  # the file the setup was read from

    def param(self, code: str) -> Param:
        return self.params.get(code) or Param(code, code, "")

    def rule_word(self, site: SiteInfo, rule_id: str) -> str:
        return self.rule_words.get(site.rules.get(rule_id, rule_id), rule_id)


def load_params() -> dict[str, Param]:
    raw = tomllib.loads(PARAMS_FILE.read_text("utf-8"))
    return {code: Param(code, v.get("name", code), v.get("unit", "")) for code, v in raw.items()}


def load_words() -> tuple[dict[str, str], dict[str, str]]:
    raw = tomllib.loads(WORDS_FILE.read_text("utf-8"))
    words = {k: v for k, v in raw.get("words", {}).items() if k not in ("raised", "cleared", "excluded")}
    return dict(raw.get("flags", {})), words


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(Problem(str(path), "", "file not found",
                                  "pass --config with the path of the gateway's gateway.toml")) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(Problem(str(path), "", f"not valid TOML: {exc}",
                                  "correct the TOML at the line and column named")) from None


def load_setup(path: str | Path) -> Setup:
    """The dashboards' setup from gateway.toml (and the alarms.toml it names); raises ConfigError."""
    from .. import config as gateway_config
    from ..alarms import config as alarms_config

    path = Path(path)
    doc = _read_toml(path)
    problems = Problems(path)
    schema = gateway_config.SCHEMA
    tables = {}
    for section in ("liveness", "aggregates", "influx", "alarms"):
        table = doc.get(section)
        if table is not None and not isinstance(table, dict):
            problems.add(section, f"expected a table [{section}], got {table!r}", f"write [{section}] and its fields")
            table = None
        if section == "influx" and table is None:
            problems.add("influx", "missing section [influx]",
                         'add [influx] with url = "http://127.0.0.1:8086" and database = "edge"')
            table = {"url": "http://127.0.0.1:8086"}
        if section == "alarms" and table is None:
            tables[section] = {"config": None}
            continue
        tables[section] = read(table or {}, schema[section], problems, section)
    settings: dict[str, dict] = {}
    gateway_config._sites(doc.get("sites", {}), tables["liveness"]["default_poll_s"], problems, settings)
    if not settings and "sites" not in doc:
        problems.add("sites", "no [sites.<site>] table: the dashboards would show nothing",
                     'add [sites.qd-plant] with nodes = ["node01"] (and poll_s)')
    alarms = None
    alarms_path = tables["alarms"].get("config")
    if alarms_path:
        alarms_path = Path(alarms_path)
        if not alarms_path.is_absolute():
            alarms_path = path.parent / alarms_path
        if not alarms_path.exists():
            problems.add("alarms.config", f"{alarms_path} not found",
                         "write the path of alarms.toml (relative to this file): the limits come from it")
            alarms_path = None
    problems.raise_if_any()
    if alarms_path:
        alarms = alarms_config.load(alarms_path)  # raises ConfigError naming alarms.toml or the profile
        raw_alarms = tomllib.loads(alarms_path.read_text("utf-8"))  # each site's profile as written (id or path)

    sites = []
    for sid, s in settings.items():
        info = SiteInfo(id=sid, name=sid, nodes=list(s["nodes"]), poll_s=float(s["poll_s"]))
        sc = alarms.sites.get(sid) if alarms else None
        if sc is not None:
            spec = ((raw_alarms.get("sites") or {}).get(sid) or {}).get("profile")
            prof = alarms_config.load_profile(alarms_config.profile_path(spec, alarms.path.parent)) if spec else None
            info.name = sc.site.name
            info.profile = sc.site.profile
            info.profile_title = prof.title if prof else sc.site.profile
            info.basis = prof.basis if prof else "sample"
            info.limits = dict(sc.site.limits)
            info.cold_param, info.cold_at_or_below = sc.site.cold_param, sc.site.cold_at_or_below
            info.rules = {r.id: r.kind for r in sc.rules}
        sites.append(info)
    flags, words = load_words()
    influx = tables["influx"]
    return Setup(sites=sites, params=load_params(), flag_words=flags, rule_words=words,
                 timezone=tables["aggregates"]["timezone"], silent_periods=float(tables["liveness"]["silent_periods"]),
                 influx_url=influx["url"], influx_db=influx.get("database") or influx.get("bucket") or "edge",
                 influx_user=influx.get("username"),
                 influx_password_env=influx.get("password_env") or influx.get("token_env"), source=str(path))


def demo_setup(poll_s: float = 2.0) -> Setup:
    """The setup of `make demo`'s three sites: the demo's own gateway.toml and alarms.toml, written by
    edgemon.dev.demo into a temporary folder (addresses and keys are placeholders the dashboards
    never use), then read like any gateway.toml. The checked-in dashboards/ are built from this."""
    import tempfile
    from types import SimpleNamespace

    from ..dev.demo import write_gateway_files

    stack = SimpleNamespace(mosquitto=SimpleNamespace(host="127.0.0.1", port=1883), gateway_user="gateway",
                            influx=SimpleNamespace(url="http://127.0.0.1:8086", database="edge"))
    with tempfile.TemporaryDirectory(prefix="edgemon-dashboards-") as tmp:
        path = write_gateway_files(Path(tmp), stack, {}, "/dev/null", poll_s)
        setup = load_setup(path)
    setup.source = "make demo (edgemon.dev.demo.write_gateway_files)"
    return setup
