"""`gateway.toml`: the one config file of a gateway, its schema and its validation in one place.
Every error names the file, the field and the fix. See server/gateway.example.toml.

    [gateway]   id, state_dir, log_level, log_format ("kv" | "json")
    [mqtt]      host, port, username, password | password_env, shared_group
    [influx]    api ("v1" | "v2"), url, database | bucket + org, username, password(_env), token(_env)
    [trust]     keys_file, require_signatures, clock_future_tolerance_s, clock_past_tolerance_s
    [liveness]  default_poll_s, silent_periods
    [sites.<site>]  poll_s, nodes = ["node01", ...]
    [alarms]    config = "alarms.toml"   (optional)
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .contract import ID_RE
from .keys import KeysError, load_keys
from .quarantine import FILE_NAME as QUARANTINE_FILE


class ConfigError(ValueError):
    """All the problems found, one per line, each `file: field: what is wrong (fix)`."""


# What the running gateway takes: built from gateway.toml by load() below, or directly by tests and tools.
@dataclass
class GatewayConfig:
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_user: str | None = None
    mqtt_password: str | None = None
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


SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], Any]]] = {
    # section -> field -> (type, default; ... = required)
    "gateway": {"id": (str, "edgemon-gateway"), "state_dir": (str, ...), "log_level": (str, "INFO"),
                "log_format": (str, "kv"), "stop_timeout_s": ((int, float), 10.0),
                "health_interval_s": ((int, float), 10.0), "fsync": (bool, True)},
    "mqtt": {"host": (str, "127.0.0.1"), "port": (int, 1883), "username": (str, None), "password": (str, None),
             "password_env": (str, None), "shared_group": (str, None), "keepalive_s": (int, 30)},
    "influx": {"api": (str, "v1"), "url": (str, ...), "database": (str, None), "bucket": (str, None),
               "org": (str, ""), "username": (str, None), "password": (str, None), "password_env": (str, None),
               "token": (str, None), "token_env": (str, None), "batch_max": (int, 5000)},
    "trust": {"keys_file": (str, None), "require_signatures": (bool, False),
              "clock_future_tolerance_s": ((int, float), 60.0), "clock_past_tolerance_s": ((int, float), 600.0)},
    "liveness": {"default_poll_s": ((int, float), 10.0), "silent_periods": ((int, float), 3.0)},
    "alarms": {"config": (str, ...)},
}
REQUIRED_SECTIONS = ("gateway", "mqtt", "influx")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _type_name(t) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if isinstance(t, tuple):
        return "a number"
    return names.get(t, t.__name__)


def load(path: str | Path, check_keys: bool = True) -> LoadedConfig:
    path = Path(path)
    errors: list[str] = []

    def err(where: str, msg: str) -> None:
        errors.append(f"{path}: {where}: {msg}")

    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (pass --config with the path to gateway.toml)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    base = path.parent

    values: dict[str, dict[str, Any]] = {}
    for section in doc:
        if section not in SCHEMA and section != "sites":
            err(section, f"unknown section (expected one of {', '.join([*SCHEMA, 'sites'])})")
    for section, fields in SCHEMA.items():
        table = doc.get(section)
        if table is None:
            if section in REQUIRED_SECTIONS:
                err(section, f"missing section [{section}]")
            values[section] = {k: (None if d is ... else d) for k, (t, d) in fields.items()}
            if section == "alarms":
                values[section] = {}
            continue
        if not isinstance(table, dict):
            err(section, f"expected a table [{section}]")
            values[section] = {}
            continue
        out = {}
        for key in table:
            if key not in fields:
                err(f"{section}.{key}", f"unknown field (expected one of {', '.join(fields)})")
        for key, (typ, default) in fields.items():
            if key not in table:
                if default is ...:
                    err(f"{section}.{key}", "missing (required)")
                out[key] = None if default is ... else default
                continue
            value = table[key]
            ok = isinstance(value, typ) and not (typ in (int, (int, float)) and isinstance(value, bool))
            if not ok:
                err(f"{section}.{key}", f"expected {_type_name(typ)}, got {value!r}")
                out[key] = None if default is ... else default
            else:
                out[key] = value
        values[section] = out

    g, m, i, t, lv = (values[s] for s in ("gateway", "mqtt", "influx", "trust", "liveness"))
    if g.get("id") and not ID_RE.fullmatch(g["id"]):
        err("gateway.id", "use letters, digits, _ and - (1-64): it names the MQTT session")
    if str(g.get("log_level", "")).upper() not in LOG_LEVELS:
        err("gateway.log_level", f"expected one of {', '.join(LOG_LEVELS)}")
    if g.get("log_format") not in ("kv", "json"):
        err("gateway.log_format", 'expected "kv" (key=value lines) or "json" (one JSON object per line)')
    if not (0 < (m.get("port") or 0) < 65536):
        err("mqtt.port", "expected 1-65535")
    if m.get("shared_group") is not None and not ID_RE.fullmatch(m["shared_group"]):
        err("mqtt.shared_group", "use letters, digits, _ and - (it goes into $share/<group>/...)")
    password = m.get("password")
    if m.get("password_env"):
        password = os.environ.get(m["password_env"])
        if password is None:
            err("mqtt.password_env", f"environment variable {m['password_env']} is not set")
    if m.get("username") and password is None and not m.get("password_env"):
        err("mqtt.password", "missing: set mqtt.password_env (preferred) or mqtt.password")

    api = i.get("api")
    if api not in ("v1", "v2"):
        err("influx.api", f'expected "v1" (/write) or "v2" (/api/v2/write), got {api!r}')
    url = i.get("url") or ""
    if url and not url.startswith(("http://", "https://")):
        err("influx.url", f"expected http://host:port or https://..., got {url!r}")
    token = i.get("token")
    if i.get("token_env"):
        token = os.environ.get(i["token_env"])
        if token is None:
            err("influx.token_env", f"environment variable {i['token_env']} is not set")
    influx_password = i.get("password")
    if i.get("password_env"):
        influx_password = os.environ.get(i["password_env"])
        if influx_password is None:
            err("influx.password_env", f"environment variable {i['password_env']} is not set")
    if api == "v1":
        db = i.get("database") or "edge"
        if i.get("bucket"):
            err("influx.bucket", 'is for api = "v2"; with api = "v1" set influx.database')
    else:
        db = i.get("bucket")
        if api == "v2":
            if not db:
                err("influx.bucket", 'missing: api = "v2" writes into a bucket')
            if not i.get("org"):
                err("influx.org", 'missing: api = "v2" needs the organisation name')
            if token is None:
                err("influx.token", 'missing: api = "v2" needs influx.token_env (preferred) or influx.token')
    if not (1 <= (i.get("batch_max") or 0) <= 100_000):
        err("influx.batch_max", "expected 1-100000 lines per request")

    for key in ("clock_future_tolerance_s", "clock_past_tolerance_s"):
        if t.get(key) is not None and t[key] <= 0:
            err(f"trust.{key}", "expected a positive number of seconds")
    if (g.get("health_interval_s") or 0) <= 0:
        err("gateway.health_interval_s", "expected a positive number of seconds")
    if (lv.get("default_poll_s") or 0) <= 0:
        err("liveness.default_poll_s", "expected a positive number of seconds")
    if (lv.get("silent_periods") or 0) < 1:
        err("liveness.silent_periods", "expected at least 1 (poll periods without data before offline)")

    nodes: list[tuple[str, str, float]] = []
    sites = doc.get("sites", {})
    if not isinstance(sites, dict):
        err("sites", "expected tables [sites.<site>] with poll_s and nodes")
        sites = {}
    for site, table in sites.items():
        where = f"sites.{site}"
        if not ID_RE.fullmatch(site):
            err(where, "site id must match [A-Za-z0-9_-]{1,64}")
        if not isinstance(table, dict):
            err(where, "expected a table with poll_s and nodes")
            continue
        for key in table:
            if key not in ("poll_s", "nodes"):
                err(f"{where}.{key}", "unknown field (expected poll_s, nodes)")
        poll = table.get("poll_s", lv.get("default_poll_s") or 10.0)
        if isinstance(poll, bool) or not isinstance(poll, (int, float)) or poll <= 0:
            err(f"{where}.poll_s", f"expected a positive number of seconds, got {poll!r}")
            poll = 10.0
        names = table.get("nodes")
        if not isinstance(names, list) or not names:
            err(f"{where}.nodes", 'expected a non-empty list of node ids, e.g. ["node01"]')
            continue
        for k, node in enumerate(names):
            if not isinstance(node, str) or not ID_RE.fullmatch(node):
                err(f"{where}.nodes[{k}]", f"node id must match [A-Za-z0-9_-]{{1,64}}, got {node!r}")
            else:
                nodes.append((site, node, float(poll)))

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
            except KeysError as exc:
                err("trust.keys_file", str(exc))
    elif t.get("require_signatures"):
        err("trust.require_signatures", "true needs trust.keys_file")
    alarms = None
    if values["alarms"].get("config"):
        alarms = Path(values["alarms"]["config"])
        if not alarms.is_absolute():
            alarms = base / alarms
        if not alarms.exists():
            err("alarms.config", f"{alarms} not found")

    if errors:
        raise ConfigError("\n".join(errors))
    cfg = GatewayConfig(
        mqtt_host=m["host"], mqtt_port=m["port"], mqtt_user=m.get("username"), mqtt_password=password,
        shared_group=m.get("shared_group"), keepalive_s=m["keepalive_s"],
        influx_api=api, influx_url=url, influx_db=db, influx_user=i.get("username"),
        influx_password=influx_password, influx_org=i.get("org") or "", influx_token=token,
        batch_max=i["batch_max"], state_dir=state_dir, client_id=g["id"], stop_timeout_s=float(g["stop_timeout_s"]),
        ingest_interval_s=float(g["health_interval_s"]), fsync=bool(g["fsync"]),
        keys=keys, require_signatures=bool(t.get("require_signatures")),
        clock_future_tolerance_s=float(t["clock_future_tolerance_s"]),
        clock_past_tolerance_s=float(t["clock_past_tolerance_s"]),
        nodes=nodes, default_poll_s=float(lv["default_poll_s"]), silent_periods=float(lv["silent_periods"]),
    )
    return LoadedConfig(path=path, gateway=cfg, log_level=str(g["log_level"]).upper(),
                        log_format=g["log_format"], alarms_config=alarms)
