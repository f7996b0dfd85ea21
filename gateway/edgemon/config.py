"""`gateway.toml`: the one config file of a gateway, its schema and its validation in one place.
Every error names the file, the field and the fix, all of them at once (edgemon.configschema);
the errors of the keys file and of the alarms config it names come with them. See
server/gateway.example.toml; `edgemon config schema gateway` prints the JSON Schema.

    [gateway]   id, state_dir, log_level, log_format ("kv" | "json")
    [mqtt]      host, port, username, password | password_env, shared_group
    [influx]    api ("v1" | "v2"), url, database | bucket + org, username, password(_env), token(_env)
    [trust]     keys_file, require_signatures, clock_future_tolerance_s, clock_past_tolerance_s
    [liveness]  default_poll_s, silent_periods
    [sites.<site>]  poll_s, nodes = ["node01", ...], medium ("water" | "gas"), flow (its flow code)
    [aggregates] enabled, timezone, close_after_s, retention_days   (minute/hour/day values)
    [alarms]    config = "alarms.toml"   (optional)
    [uplink]    the HJ 212 platforms and each site's MN/PW/ST (uplink/settings.py; optional)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .configschema import REQUIRED, ConfigError, Field, Problem, Problems, json_schema, read, unknown_fix
from .contract import ID_RE
from .keys import load_keys
from .quarantine import FILE_NAME as QUARANTINE_FILE
from .config_secrets import secret as _secret, tls_files as _tls_files


# What the running gateway takes: built from gateway.toml by load() below, or directly by tests and tools.
@dataclass
class GatewayConfig:
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_user: str | None = None
    mqtt_password: str | None = None
    mqtt_tls_ca: Path | None = None  # TLS on, this CA pinned (the broker's certificate must chain to it)
    mqtt_tls_cert: Path | None = None  # mutual TLS: the gateway's client certificate and key
    mqtt_tls_key: Path | None = None
    shared_group: str | None = None  # several gateways share the load: $share/<group>/...
    influx_api: str = "v1"  # "v1" (/write) or "v2" (/api/v2/write)
    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = "edge"  # v1 database, or v2 bucket
    influx_user: str | None = None
    influx_password: str | None = None
    influx_org: str = ""
    influx_token: str | None = None
    state_dir: Path = Path("run/gateway")  # the store (wal/) and the quarantine file live here
    client_id: str = "edgemon-gateway"  # also names the broker-side session: one gateway per id
    batch_max: int = 5000  # lines per InfluxDB request
    group_max: int = 2000  # messages per store frame (one fsync)
    fsync: bool = True
    ingest_interval_s: float = 10.0  # how often `ingest` (lag), `gateway` and `completeness` points are written
    tick_interval_s: float = 1.0  # liveness checks and observer ticks
    connect_timeout_s: float = 10.0  # start() gives up when not subscribed by then
    stop_timeout_s: float = 10.0  # stop() waits this long for InfluxDB to take what is pending
    retry_max_s: float = 30.0  # longest pause between write retries
    keepalive_s: int = 30
    keys: dict[str, bytes] | None = None  # "site/node" -> HMAC key
    require_signatures: bool = False
    nodes: list[tuple[str, str, float]] = field(default_factory=list)  # (site, node, poll_s) watched for silence
    default_poll_s: float = 10.0
    silent_periods: float = 3.0
    clock_future_tolerance_s: float = 60.0
    clock_past_tolerance_s: float = 600.0
    confirm: bool = True  # tell each keyed node what is stored (confirm.py): it frees flash only then
    confirm_interval_s: float = 1.0  # at most one confirmation per node this often

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir)

    @property
    def quarantine_path(self) -> Path:
        return self.state_dir / QUARANTINE_FILE

    @property
    def store_dir(self) -> Path:
        return self.state_dir / "wal"


@dataclass
class LoadedConfig:
    path: Path
    gateway: GatewayConfig
    log_level: str
    log_format: str
    alarms_config: Path | None
    sites: dict[str, dict] = field(default_factory=dict)  # site -> {"poll_s", "medium", "flow", "nodes"}
    aggregates: dict = field(default_factory=dict)  # the [aggregates] settings
    uplink: object | None = None  # uplink.settings.UplinkSettings, when [uplink] is there


def _known_zone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


REQUIRED_SECTIONS = ("gateway", "mqtt", "influx")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ID_TEXT = "letters, digits, _ and - (1-64 characters)"
SECONDS = "a positive number of seconds"
SCHEMA: dict[str, dict[str, Field]] = {
    "gateway": {
        "id": Field(str, "edgemon-gateway", "names the MQTT session: one gateway per id", pattern=ID_RE.pattern,
                    expect=ID_TEXT),
        "state_dir": Field(str, REQUIRED, "the store (wal/) and the quarantine file; relative to this file",
                           example="/var/lib/edgemon"),
        "log_level": Field(str, "INFO", check=lambda v: v.upper() in LOG_LEVELS,
                           expect="one of " + ", ".join(LOG_LEVELS)),
        "log_format": Field(str, "kv", enum=("kv", "json"),
                            expect='"kv" (key=value lines) or "json" (one JSON object per line)'),
        "stop_timeout_s": Field(float, 10.0, "stop() waits this long for InfluxDB to take what is pending"),
        "health_interval_s": Field(float, 10.0, "how often ingest/gateway/completeness points are written",
                                   gt=0, expect=SECONDS),
        "fsync": Field(bool, True, "fsync every store frame"),
        "confirm": Field(bool, True, "end-to-end confirmation: tell each node (signed) what is in the store, "
                         "so it keeps records on flash until then (false: nodes trust the PUBACK after "
                         "their queue.confirm_s)"),
        "confirm_interval_s": Field(float, 1.0, "at most one confirmation per node this often", gt=0,
                                    expect=SECONDS),
    },
    "mqtt": {
        "host": Field(str, "127.0.0.1"),
        "port": Field(int, 1883, "1883; 8883 when tls = true", ge=1, le=65535),
        "username": Field(str, None, example="gateway"), "password": Field(str, None),
        "password_env": Field(str, None, "the environment variable holding the password (preferred)",
                              example="EDGEMON_MQTT_PASSWORD"),
        "password_file": Field(str, None, "a file holding the password (systemd LoadCredential=, compose "
                               "secrets); relative to this file", example="/run/credentials/edgemon-gateway.service/mqtt"),
        "tls": Field(bool, False, "connect over TLS (port 8883 by convention), the broker checked against ca_file"),
        "ca_file": Field(str, None, "the CA that signed the broker's certificate (PEM): the only one trusted",
                         example="/etc/edgemon/tls/ca.crt"),
        "cert_file": Field(str, None, "mutual TLS: the gateway's client certificate (PEM)",
                           example="/etc/edgemon/tls/gateway.crt"),
        "key_file": Field(str, None, "mutual TLS: its private key (PEM, mode 0600)",
                          example="/etc/edgemon/tls/gateway.key"),
        "shared_group": Field(str, None, "several gateways share the load: $share/<group>/...",
                              pattern=ID_RE.pattern, expect=ID_TEXT + " (it goes into $share/<group>/...)",
                              example="edge"),
        "keepalive_s": Field(int, 30),
    },
    "influx": {
        "api": Field(str, "v1", enum=("v1", "v2"), expect='"v1" (/write) or "v2" (/api/v2/write)'),
        "url": Field(str, REQUIRED, check=lambda v: v.startswith(("http://", "https://")),
                     expect="http://host:port or https://...", example="http://127.0.0.1:8086"),
        "database": Field(str, None, 'api = "v1": the database', example="edge"),
        "bucket": Field(str, None, 'api = "v2": the bucket', example="edge"),
        "org": Field(str, "", 'api = "v2": the organisation', example="bureau"),
        "username": Field(str, None), "password": Field(str, None),
        "password_env": Field(str, None, example="EDGEMON_INFLUX_PASSWORD"),
        "password_file": Field(str, None, "a file holding the password; relative to this file",
                               example="/run/credentials/edgemon-gateway.service/influx-password"),
        "token": Field(str, None), "token_env": Field(str, None, example="EDGEMON_INFLUX_TOKEN"),
        "token_file": Field(str, None, "a file holding the token; relative to this file",
                            example="/run/credentials/edgemon-gateway.service/influx-token"),
        "batch_max": Field(int, 5000, "lines per InfluxDB request", ge=1, le=100_000,
                           expect="1-100000 lines per request"),
    },
    "trust": {
        "keys_file": Field(str, None, "the node keys (keys.toml, mode 0600)", example="/etc/edgemon/keys.toml"),
        "require_signatures": Field(bool, False, "every node must sign (else only nodes of keyed sites)"),
        "clock_future_tolerance_s": Field(float, 60.0, gt=0, expect=SECONDS),
        "clock_past_tolerance_s": Field(float, 600.0, gt=0, expect=SECONDS),
    },
    "liveness": {
        "default_poll_s": Field(float, 10.0, gt=0, expect=SECONDS),
        "silent_periods": Field(float, 3.0, ge=1,
                                expect="at least 1 (poll periods without data before offline)"),
    },
    "alarms": {"config": Field(str, REQUIRED, "alarms.toml, relative to this file", example="alarms.toml")},
    "aggregates": {
        "enabled": Field(bool, True, "compute minute, hour and day values (measurement `aggregate`)"),
        "timezone": Field(str, "Asia/Shanghai", "the calendar of the day values (an IANA zone name)",
                          check=_known_zone, expect="an IANA time zone name such as Asia/Shanghai"),
        "close_after_s": Field(float, 60.0, "a period is computed this long after its end (late records "
                               "after that recompute it)", ge=0, expect="0 or more seconds"),
        "retention_days": Field(float, 40.0, "how long the sums are kept: a record older is not counted",
                                gt=1, expect="more than 1 day"),
    },
}
SITE = {
    "poll_s": Field(float, None, "the nodes' poll period (default liveness.default_poll_s)", gt=0,
                    expect=SECONDS, example=10),
    "nodes": Field(list, REQUIRED, "the node ids of the site", example=["node01"],
                   items=Field(str, pattern=ID_RE.pattern, expect="a node id, " + ID_TEXT)),
    "medium": Field(str, "water", "waste water (HJ 212 ST 32) or flue gas (ST 31): the aggregates' flag rules",
                    enum=("water", "gas"), expect='"water" or "gas"'),
    "flow": Field(str, "w00000", "the flow (L/s) that weights the site's concentrations and gives volume and "
                  'load; "" when the site measures none', pattern=r"([a-z][0-9]{5})?",
                  expect='an HJ 212 code such as w00000, or ""'),
}


def schema() -> dict:
    """The JSON Schema of gateway.toml."""
    fields = {name: Field(dict, REQUIRED if name in REQUIRED_SECTIONS else None, table=table)
              for name, table in SCHEMA.items()}
    fields["sites"] = Field(dict, None, "[sites.<site>]: the nodes watched for silence", map_of=SITE,
                            keys=ID_RE.pattern)
    from .uplink.settings import PLATFORM, SITE as UPLINK_SITE
    fields["uplink"] = Field(dict, None, "the bureau's HJ 212 platforms and each site's identity there", table={
        "platforms": Field(dict, None, "[uplink.platforms.<name>]", map_of=PLATFORM),
        "sites": Field(dict, None, "[uplink.sites.<site>]", map_of=UPLINK_SITE, keys=ID_RE.pattern)})
    return json_schema(fields, "gateway.toml")


def load(path: str | Path, check_keys: bool = True, check_alarms: bool = True) -> LoadedConfig:
    """gateway.toml, checked whole: raises ConfigError listing every problem. check_keys: read the keys
    file too; check_alarms: load the alarms config (and its limit profiles) to report their problems."""
    path = Path(path)
    problems = Problems(path)
    err = problems.add
    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(Problem(str(path), "", "file not found",
                                  "pass --config with the path to gateway.toml")) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(Problem(str(path), "", f"not valid TOML: {exc}", TOML_FIX)) from None
    base = path.parent

    values: dict[str, dict] = {}
    for section in doc:
        if section not in SCHEMA and section not in ("sites", "uplink"):
            err(section, "unknown section", unknown_fix(section, [*SCHEMA, "sites", "uplink"]))
    for section, fields in SCHEMA.items():
        table = doc.get(section)
        if table is None:
            if section in REQUIRED_SECTIONS:
                err(section, f"missing section [{section}]",
                    f"add a [{section}] table (see server/gateway.example.toml)")
            table = None if section == "alarms" else {}
        elif not isinstance(table, dict):
            err(section, f"expected a table [{section}], got {table!r}", f"write [{section}] and its fields below it")
            table = {}
        values[section] = read(table, fields, problems, section) if table is not None else {"config": None}

    g, m, i, t, lv = (values[s] for s in ("gateway", "mqtt", "influx", "trust", "liveness"))
    password = _secret(problems, "mqtt", m, "password", base)
    tls_ca, tls_cert, tls_key = _tls_files(problems, m, base)
    if m.get("username") and password is None and not (m.get("password_env") or m.get("password_file")):
        err("mqtt.password", "missing: mqtt.username needs a password",
            'set mqtt.password_env = "EDGEMON_MQTT_PASSWORD" or mqtt.password_file (preferred) or mqtt.password')
    token = _secret(problems, "influx", i, "token", base)
    influx_password = _secret(problems, "influx", i, "password", base)
    api, db = i["api"], None
    if "api" in i.bad:
        pass  # reported; which of database/bucket applies is unknown
    elif api == "v1":
        db = i.get("database") or "edge"
        if i.get("bucket"):
            err("influx.bucket", 'is for api = "v2"', 'with api = "v1" write influx.database = "edge" instead')
    else:
        db = i.get("bucket")
        if not db:
            err("influx.bucket", 'missing: api = "v2" writes into a bucket', 'add bucket = "edge" under [influx]')
        if not i.get("org"):
            err("influx.org", 'missing: api = "v2" needs the organisation name', 'add org = "..." under [influx]')
        if token is None and not (i.get("token_env") or i.get("token_file")):
            err("influx.token", 'missing: api = "v2" needs a token',
                'set influx.token_env = "EDGEMON_INFLUX_TOKEN" or influx.token_file (preferred) or influx.token')

    sites: dict[str, dict] = {}
    nodes = _sites(doc.get("sites", {}), lv["default_poll_s"], problems, sites)
    from .uplink.settings import read_uplink
    uplink = read_uplink(doc.get("uplink"), set(sites), problems)

    state_dir = Path(g["state_dir"]) if g.get("state_dir") else None
    if state_dir is not None and not state_dir.is_absolute():
        state_dir = base / state_dir
    keys = None
    if t.get("keys_file"):
        keys_path = Path(t["keys_file"])
        if not keys_path.is_absolute():
            keys_path = base / keys_path
        if check_keys:
            try:
                keys = load_keys(keys_path)
            except ConfigError as exc:  # the file as a whole is trust.keys_file's problem, its fields its own
                for p in exc.problems:
                    problems.extend([p]) if p.field else err("trust.keys_file", f"{p.file}: {p.reason}", p.fix)
    elif t.get("require_signatures"):
        err("trust.require_signatures", "true needs trust.keys_file",
            'add keys_file = "/etc/edgemon/keys.toml" under [trust], or write require_signatures = false')
    alarms = None
    if values["alarms"].get("config"):
        alarms = Path(values["alarms"]["config"])
        if not alarms.is_absolute():
            alarms = base / alarms
        if not alarms.exists():
            err("alarms.config", f"{alarms} not found", "write the path of alarms.toml (relative to this file), "
                "or remove the [alarms] section")
        elif check_alarms:
            problems.extend(_alarms_problems(alarms))

    problems.raise_if_any()
    cfg = GatewayConfig(
        mqtt_host=m["host"], mqtt_port=m["port"] if "port" in (doc.get("mqtt") or {}) else (8883 if tls_ca else 1883), mqtt_user=m.get("username"), mqtt_password=password,
        mqtt_tls_ca=tls_ca, mqtt_tls_cert=tls_cert, mqtt_tls_key=tls_key,
        shared_group=m.get("shared_group"), keepalive_s=m["keepalive_s"],
        influx_api=api, influx_url=i["url"], influx_db=db, influx_user=i.get("username"),
        influx_password=influx_password, influx_org=i.get("org") or "", influx_token=token,
        batch_max=i["batch_max"], state_dir=state_dir, client_id=g["id"], stop_timeout_s=float(g["stop_timeout_s"]),
        ingest_interval_s=float(g["health_interval_s"]), fsync=bool(g["fsync"]),
        confirm=bool(g["confirm"]), confirm_interval_s=float(g["confirm_interval_s"]),
        keys=keys, require_signatures=bool(t.get("require_signatures")),
        clock_future_tolerance_s=float(t["clock_future_tolerance_s"]),
        clock_past_tolerance_s=float(t["clock_past_tolerance_s"]),
        nodes=nodes, default_poll_s=float(lv["default_poll_s"]), silent_periods=float(lv["silent_periods"]),
    )
    return LoadedConfig(path=path, gateway=cfg, log_level=str(g["log_level"]).upper(),
                        log_format=g["log_format"], alarms_config=alarms, sites=sites,
                        aggregates=dict(values["aggregates"]), uplink=uplink)


TOML_FIX = "correct the TOML at the line and column named (strings in double quotes, one key = value a line)"


def _sites(sites, default_poll_s: float, problems: Problems, settings: dict[str, dict]) -> list[tuple[str, str, float]]:
    """[sites.<site>]: the (site, node, poll_s) watched for silence; each site's settings into `settings`."""
    err = problems.add
    nodes: list[tuple[str, str, float]] = []
    if not isinstance(sites, dict):
        err("sites", "expected tables [sites.<site>] with poll_s and nodes",
            'write [sites.qd-plant] then nodes = ["node01"]')
        return nodes
    for site, table in sites.items():
        where = f"sites.{site}"
        if not ID_RE.fullmatch(site):
            err(where, "site id must match [A-Za-z0-9_-]{1,64}", f"rename it: {ID_TEXT}, as in the MQTT topic")
        if not isinstance(table, dict):
            err(where, "expected a table with poll_s and nodes", f'write [{where}] then nodes = ["node01"]')
            continue
        for key in table:
            if key not in SITE:
                err(f"{where}.{key}", "unknown field", unknown_fix(key, SITE))
        poll = table.get("poll_s", default_poll_s)
        if isinstance(poll, bool) or not isinstance(poll, (int, float)) or poll <= 0:
            err(f"{where}.poll_s", f"expected a positive number of seconds, got {poll!r}", SITE["poll_s"].fix("poll_s"))
            poll = 10.0
        names = table.get("nodes")
        if not isinstance(names, list) or not names:
            err(f"{where}.nodes", f"expected a non-empty list of node ids, got {names!r}", 'write nodes = ["node01"]')
            continue
        for k, node in enumerate(names):
            if not isinstance(node, str) or not ID_RE.fullmatch(node):
                err(f"{where}.nodes[{k}]", f"node id must match [A-Za-z0-9_-]{{1,64}}, got {node!r}",
                    f'write {ID_TEXT}, e.g. "node01"')
            else:
                nodes.append((site, node, float(poll)))
        extra = read({k: table[k] for k in ("medium", "flow") if k in table},
                     {k: SITE[k] for k in ("medium", "flow")}, problems, where)
        settings[site] = {"poll_s": float(poll), "nodes": list(names), "medium": extra["medium"],
                          "flow": extra["flow"] or None}
    return nodes


def _alarms_problems(path: Path) -> list:
    """The problems of the alarms config gateway.toml names (and of its limit profiles)."""
    try:
        from .alarms.config import load as load_alarms
    except ModuleNotFoundError as exc:
        if exc.name != "edgemon.alarms":
            raise
        return [Problem(str(path), "", "the alarms module (edgemon.alarms) is not installed",
                        "remove the [alarms] section of gateway.toml, or install edgemon with its alarms package")]
    try:
        load_alarms(path)
    except ConfigError as exc:
        return exc.problems
    return []
