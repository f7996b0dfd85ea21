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
(`timeout_ms`, `retries`, `override`, ...). `broker` also takes the firmware's `keepalive`, `timeout_ms`,
`clean_session`, `client_id`; a node's `broker` replaces the site's whole (TLS settings included).

MQTT over TLS (firmware/README.md, "MQTT over TLS"): the broker's CA is pinned on the node.

    broker = { host = "mqtt.bureau.example", port = 8883, tls_ca = "/etc/edgemon/ca/ca.crt" }
    broker = { host = "10.20.0.5", tls_ca = "ca/ca.crt", tls_mutual = true, tls_server_hostname = "mqtt.bureau.example" }

- `tls_ca`: the CA that signed the broker's certificate, a PEM file on this PC (`edgemon broker ca
  init`'s ca.crt; a relative path is relative to the inventory's folder). With it the port is 8883
  unless given, node.json gets `mqtt.tls = {"ca": "/certs/ca.der"}`, and the DER copy is written
  beside node.json in `<node.json without .json>.certs/` (e.g. qd-plant.node01.certs/ca.der), which
  `edgemon node deploy` copies to the board's /certs/.
- `tls_mutual = true` (default false): the node also shows its own certificate: SITE.NODE.crt and
  .key beside the secrets file (`edgemon node provision --ca CA_DIR` writes them), checked against
  tls_ca; they go out as node.der and node.key.der (mode 0600), named mqtt.tls.cert and .key.
- `tls_server_hostname`: the name the broker's certificate is checked against when `host` is not
  in it (default: host). `format` is required: a file without it, or written for a
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
BROKER_FW_KEYS = ("keepalive", "timeout_ms", "clean_session", "client_id")  # passed to node.json's mqtt as they are
BROKER_TLS_KEYS = ("tls_ca", "tls_mutual", "tls_server_hostname")
BROKER_KEYS = ("host", "port") + BROKER_FW_KEYS + BROKER_TLS_KEYS
CERTS_SUFFIX = ".certs"  # qd-plant.node01.json -> qd-plant.node01.certs/ (the DER files for the board's /certs)


def certs_dir(node_json: Path) -> Path:
    """Where `edgemon node config` writes the node's TLS files for NODE_JSON (and deploy finds them)."""
    node_json = Path(node_json)
    return node_json.with_name(node_json.stem + CERTS_SUFFIX) if node_json.suffix == ".json" else \
        node_json.with_name(node_json.name + CERTS_SUFFIX)


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
    cfg, checked, _ = node_config_files(inventory, site, node, secrets, env)
    return cfg, checked


def _tls_sources(p: Problems, inventory: Path, broker: dict[str, Any], field: str, site: str, node: str,
                 secrets_path: Path | None) -> dict[str, Path]:
    """The PEM files on this PC for the node's mqtt.tls ({"ca": ..., ["cert": ..., "key": ...]}),
    each checked (readable, a certificate or key, the node's signed by the CA); problems go to p."""
    from cryptography import x509  # noqa: PLC0415  (only with TLS)
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    out: dict[str, Path] = {}
    ca_v, mutual = broker.get("tls_ca"), broker.get("tls_mutual", False)
    if not isinstance(mutual, bool):
        p.add(f"{field}.tls_mutual", f"must be true or false, got {mutual!r}",
              "tls_mutual = true (the node shows its certificate) or leave it out")
        mutual = False
    if "tls_server_hostname" in broker and (not isinstance(broker["tls_server_hostname"], str)
                                            or not broker["tls_server_hostname"]):
        p.add(f"{field}.tls_server_hostname", f"must be a host name, got {broker['tls_server_hostname']!r}",
              'e.g. tls_server_hostname = "mqtt.bureau.example" (a name in the broker\'s certificate), or leave it out')
    if ca_v is None:
        for k in ("tls_mutual", "tls_server_hostname"):
            if k in broker:
                p.add(f"{field}.{k}", "given without tls_ca (TLS is only used with the broker's CA pinned)",
                      'add tls_ca = "/etc/edgemon/ca/ca.crt" (`edgemon broker ca init`\'s ca.crt), or remove ' + k)
        return out
    if not isinstance(ca_v, str) or not ca_v:
        p.add(f"{field}.tls_ca", f"must be the path of the CA's certificate (PEM), got {ca_v!r}",
              'e.g. tls_ca = "/etc/edgemon/ca/ca.crt" (`edgemon broker ca init`\'s ca.crt)')
        return out
    ca_path = Path(ca_v).expanduser()
    if not ca_path.is_absolute():
        ca_path = inventory.resolve().parent / ca_path
    ca_cert = None
    try:
        ca_cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
        out["ca"] = ca_path
    except OSError as exc:
        p.add(f"{field}.tls_ca", f"{ca_path}: cannot be read ({exc.strerror or exc})",
              "give the broker CA's ca.crt (made by `edgemon broker ca init DIR`; relative paths are "
              "relative to the inventory's folder)")
    except ValueError:
        p.add(f"{field}.tls_ca", f"{ca_path}: not a PEM certificate",
              "give the CA's ca.crt as `edgemon broker ca init` wrote it (-----BEGIN CERTIFICATE-----)")
    if not mutual:
        return out
    stem = f"{site}.{node}"
    base = secrets_path.resolve().parent if secrets_path is not None else None
    crt, key = (base / f"{stem}.crt", base / f"{stem}.key") if base else (None, None)
    if crt is None or not crt.exists() or not key.exists():
        where = f"{crt} and {key}" if crt else f"{stem}.crt/.key beside the secrets file"
        p.add(f"{field}.tls_mutual", f"true, but the node's client certificate is not provisioned ({where}: not found)",
              f"run `edgemon node provision --ca CA_DIR ... {site} {node}` (it writes {stem}.crt and .key beside "
              f"{stem}.secrets.json), or set tls_mutual = false")
        return out
    try:
        node_cert = x509.load_pem_x509_certificate(crt.read_bytes())
        node_key = serialization.load_pem_private_key(key.read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        p.add(f"{field}.tls_mutual", f"{crt} / {key}: not a PEM certificate and its unencrypted key ({exc})",
              f"run `edgemon node provision --ca CA_DIR --rotate ... {site} {node}` for new ones")
        return out
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if node_cert.public_key().public_bytes(*spki) != node_key.public_key().public_bytes(*spki):
        p.add(f"{field}.tls_mutual", f"{key} is not the key of {crt}",
              f"run `edgemon node provision --ca CA_DIR ... {site} {node}` again for a matching pair")
        return out
    if ca_cert is not None:
        try:
            node_cert.verify_directly_issued_by(ca_cert)
        except Exception as exc:  # noqa: BLE001  (InvalidSignature, ValueError, TypeError: all a refusal)
            p.add(f"{field}.tls_mutual", f"{crt} was not issued by tls_ca {ca_path} ({type(exc).__name__}"
                  f"{': ' + str(exc) if str(exc) else ''})",
                  "give the CA the broker uses as tls_ca, or provision the node with it (`edgemon node "
                  "provision --ca` that CA's folder)")
            return out
    out["cert"], out["key"] = crt, key
    return out


def node_config_files(inventory: Path, site: str, node: str, secrets: dict[str, Any] | None,
                      env: dict[str, str] | None = None, secrets_path: Path | None = None
                      ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Path]]:
    """node_config's two, and the PEM files on this PC the node's mqtt.tls copies come from
    ({"ca": ..., ["cert": ..., "key": ...]}, empty without TLS; edgemon.nodetls.write_node_tls writes
    their DER for the board). secrets_path: the secrets file, beside which provision wrote the node's
    certificate. ConfigError lists every problem."""
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
    bfield = f"{where}.broker" if "broker" in n else f"sites.{site}.broker"
    if not isinstance(broker, dict) or "host" not in broker:
        p.add(f"{where}.broker", "missing: the MQTT broker the node publishes to",
              f'add broker = {{ host = "10.20.0.5", port = 1883 }} to [sites.{site}] or the node')
        broker = {}
    for key in broker:
        if key not in BROKER_KEYS:
            p.add(f"{bfield}.{key}", "unknown field", f"known: {', '.join(BROKER_KEYS)}")
    tls_src = _tls_sources(p, inventory, broker, bfield, site, node, secrets_path)
    tls_on = "tls_ca" in broker
    cfg["mqtt"] = {"host": broker.get("host"), "port": broker.get("port", 8883 if tls_on else 1883)}
    for k in BROKER_FW_KEYS:
        if k in broker:
            cfg["mqtt"][k] = broker[k]
    if tls_on:
        from .nodetls import BOARD_DIR  # noqa: PLC0415

        tls = {"ca": f"{BOARD_DIR}/ca.der"}
        if broker.get("tls_mutual") is True:
            tls.update(cert=f"{BOARD_DIR}/node.der", key=f"{BOARD_DIR}/node.key.der")
        if isinstance(broker.get("tls_server_hostname"), str) and broker["tls_server_hostname"]:
            tls["server_hostname"] = broker["tls_server_hostname"]
        cfg["mqtt"]["tls"] = tls
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
        return cfg, checked, tls_src
    except FwConfigError as exc:
        for field, reason in exc.errors:
            name = field.split(".", 1)[0].split("[", 1)[0]
            if field.startswith("analyzers"):
                shown = f"{where}.{field}"
            elif field.startswith("mqtt.tls"):
                sub = field[9:]
                shown = f"{bfield}.tls_mutual" if sub in ("cert", "key") else f"{bfield}.tls_{sub or 'ca'}"
            elif field.startswith("mqtt."):
                shown = f"{bfield}.{field[5:]}" if field[5:] not in ("user", "password") else \
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
