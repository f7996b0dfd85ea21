"""`edgemon node config`: a node's config (the node.json the firmware reads) from a site inventory
and the node's provisioned secrets, checked by the firmware's own validator (firmware/config.py,
run here under CPython, with the firmware's profiles) before anything touches a board.

A site inventory (TOML, one file for a bureau) lists sites, their nodes and analyzers:

    format = 1
    [sites.qd-plant]                          # defaults for every node of the site
    poll_s = 10
    broker = { host = "10.20.0.5", port = 1883 }
    wifi = { ssid = "qd-plant-iot", password_env = "QD_WIFI_PASSWORD" }
    [sites.qd-plant.nodes.node01]             # a node may override poll_s, broker, wifi
    bus = { kind = "rtu", uart = 2, baud = 9600, tx = 17, rx = 16, de = 4 }
    analyzers = [
      { name = "cod", profile = "cod_hach_cdab", unit = 1 },
      { name = "flow", profile = "flow_lmag", unit = 2, poll_s = 60 },
    ]

An analyzer may give its own `transport` instead of the node's `bus`, and any firmware analyzer field
(`timeout_ms`, `retries`, `override`, ...). `format` is required: a file without it, or written for a
newer edgemon, is refused rather than read by guesswork (format 1 is the first; a format 2 will come
with its migration here). Every problem is reported at once as `FILE: field: what; fix: ...`."""

from __future__ import annotations

import copy
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from .configschema import ConfigError, Problems

FORMAT = 1
FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
NODE_KEYS = ("poll_s", "broker", "wifi", "bus", "analyzers", "status_s", "ntp", "queue", "watchdog_s")


def _firmware_validator():
    """The firmware's validate_config and ConfigError (firmware/config.py, run under CPython)."""
    if str(FIRMWARE_DIR) not in sys.path:
        sys.path.append(str(FIRMWARE_DIR))
    import config as fw_config  # noqa: PLC0415  (firmware module)

    return fw_config.validate_config, fw_config.ConfigError


def node_config(inventory: Path, site: str, node: str, secrets: dict[str, Any] | None,
                env: dict[str, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the node.json dict for SITE/NODE as written, the same as the firmware reads it: defaults
    filled, profiles applied). ConfigError lists every problem."""
    env = os.environ if env is None else env
    p = Problems(inventory)
    try:
        doc = tomllib.loads(inventory.read_text("utf-8"))
    except FileNotFoundError:
        p.add("", "not found", "give the bureau's site inventory with --inventory")
        p.raise_if_any()
    except tomllib.TOMLDecodeError as exc:
        p.add("", f"not valid TOML: {exc}", "correct the TOML at that line")
        p.raise_if_any()
    fmt = doc.get("format")
    if fmt is None:
        p.add("format", "missing: the file's format version", f"add `format = {FORMAT}` as the first line")
    elif fmt != FORMAT:
        p.add("format", f"{fmt!r}: this edgemon reads format {FORMAT}",
              "use the edgemon that wrote it, or write the file in format 1" if isinstance(fmt, int) and fmt > FORMAT
              else f"write format = {FORMAT}")
    sites = doc.get("sites") or {}
    s = sites.get(site)
    if s is None:
        p.add(f"sites.{site}", "no such site", f"known: {', '.join(sorted(sites)) or 'none'}; add [sites.{site}]")
        p.raise_if_any()
    n = (s.get("nodes") or {}).get(node)
    where = f"sites.{site}.nodes.{node}"
    if n is None:
        p.add(where, "no such node", f"known: {', '.join(sorted(s.get('nodes') or {})) or 'none'}; "
              f"add [{where}] with bus and analyzers")
        p.raise_if_any()
    for key in n:
        if key not in NODE_KEYS:
            p.add(f"{where}.{key}", "unknown field", f"known: {', '.join(NODE_KEYS)}")
    merged = {k: s[k] for k in ("poll_s", "broker", "wifi", "status_s", "ntp", "queue", "watchdog_s") if k in s}
    merged.update({k: v for k, v in n.items() if k in NODE_KEYS})
    cfg: dict[str, Any] = {"site": site, "node": node, "poll_s": merged.get("poll_s", 10)}
    origin = {"poll_s": f"{where}.poll_s" if "poll_s" in n else f"sites.{site}.poll_s"}
    broker = merged.get("broker")
    if not isinstance(broker, dict) or "host" not in broker:
        p.add(f"{where}.broker", "missing: the MQTT broker the node publishes to",
              f'add broker = {{ host = "10.20.0.5", port = 1883 }} to [sites.{site}] or the node')
        broker = {}
    cfg["mqtt"] = {"host": broker.get("host"), "port": broker.get("port", 1883)}
    for k in ("keepalive", "timeout_ms", "clean_session", "client_id"):
        if k in broker:
            cfg["mqtt"][k] = broker[k]
    if secrets is not None:
        cfg["mqtt"]["user"] = secrets["mqtt"]["user"]
        cfg["mqtt"]["password"] = secrets["mqtt"]["password"]
        cfg["key"] = secrets["key"]
    wifi = merged.get("wifi")
    if wifi is not None:
        w = {"ssid": wifi.get("ssid")}
        if "password_env" in wifi:
            if wifi["password_env"] not in env:
                p.add(f"sites.{site}.wifi.password_env", f"${wifi['password_env']} is not set",
                      f"export {wifi['password_env']}=... before running this (the password is not kept in the inventory)")
            w["password"] = env.get(wifi["password_env"], "(unset)")  # reported above; nothing is written
        elif "password" in wifi:
            w["password"] = wifi["password"]
        cfg["wifi"] = w
    for k in ("status_s", "ntp", "queue", "watchdog_s"):
        if k in merged:
            cfg[k] = merged[k]
    bus = n.get("bus")
    analyzers = n.get("analyzers")
    if not isinstance(analyzers, list) or not analyzers:
        p.add(f"{where}.analyzers", "missing: the analyzers this node reads",
              'add analyzers = [{ name = "cod", profile = "cod_hach_cdab", unit = 1 }]')
        analyzers = []
    cfg["analyzers"] = []
    for i, a in enumerate(analyzers):
        if not isinstance(a, dict):
            p.add(f"{where}.analyzers[{i}]", "expected a table", '{ name = "cod", profile = "...", unit = 1 }')
            continue
        a = dict(a)
        if "transport" not in a:
            if bus is None:
                p.add(f"{where}.analyzers[{i}].transport", "missing, and the node has no bus",
                      'add bus = { kind = "rtu", uart = 2, baud = 9600, tx = 17, rx = 16, de = 4 } to the node')
            else:
                a["transport"] = dict(bus)
        cfg["analyzers"].append(a)
    # The firmware's checks run even when the inventory has problems: every error in one run
    # (those on a field already reported above are left out).
    reported = [pr.field for pr in p.found]
    validate, FwConfigError = _firmware_validator()
    try:
        checked = validate(copy.deepcopy(cfg), str(FIRMWARE_DIR / "profiles"))
        p.raise_if_any()
        return cfg, checked
    except FwConfigError as exc:
        for field, reason in exc.errors:
            name = field.split(".", 1)[0].split("[", 1)[0]
            if field.startswith("analyzers"):
                shown = f"{where}.{field}"
            elif field.startswith("mqtt."):
                shown = f"{where}.broker.{field[5:]}" if field[5:] not in ("user", "password") else \
                    f"(secrets) mqtt.{field[5:]}"
            elif name in origin:
                shown = origin[name]
            elif name == "key":
                shown = "(secrets) key"
            else:
                shown = f"{where}.{field}"
            if not any(shown == r or shown.startswith(r + ".") for r in reported):
                p.add(shown, reason, "see firmware/README.md for the field" if " fix" not in reason else "")
    p.raise_if_any()
    raise AssertionError("unreachable")


def read_secrets(path: Path) -> dict[str, Any]:
    import json

    p = Problems(path)
    try:
        s = json.loads(path.read_text())
        assert isinstance(s["mqtt"]["user"], str) and isinstance(s["mqtt"]["password"], str)
        assert isinstance(s["key"], str)
        return s
    except FileNotFoundError:
        p.add("", "not found", "run `edgemon node provision` for this node first (it writes this file)")
    except (ValueError, KeyError, TypeError, AssertionError):
        p.add("", "not a provisioned secrets file (mqtt.user, mqtt.password, key)",
              "run `edgemon node provision` again (it keeps the node's account and key)")
    p.raise_if_any(ConfigError)
    raise AssertionError("unreachable")
