"""gateway.toml's secrets and TLS files (its [mqtt] and [influx] sections): each secret from an
environment variable (`*_env`), a file (`*_file`: systemd credentials, compose secrets) or written
in the file itself, at most one way; the MQTT link's CA, certificate and key, checked to exist.
Problems are added to the caller's Problems: config.load reports them all at once."""

from __future__ import annotations

import os
from pathlib import Path

from .configschema import Problems

ENV_FIX = "export {name}=... in the gateway's environment (systemd: Environment= or EnvironmentFile=)"


def secret(problems: Problems, section: str, table: dict, name: str, base: Path) -> str | None:
    """The secret `name` from `{name}_env` (an environment variable), `{name}_file` (a file, its text
    without the final newline) or `{name}` written in gateway.toml; at most one of the three."""
    given = [k for k in (f"{name}_env", f"{name}_file", name) if table.get(k)]
    if len(given) > 1:
        problems.add(f"{section}.{given[0]}", "the secret is given " + " and ".join(given),
                     f"keep one of them ({name}_env or {name}_file: the secret stays out of this file)")
        return None
    if table.get(f"{name}_env"):
        var = table[f"{name}_env"]
        value = os.environ.get(var)
        if value is None:
            problems.add(f"{section}.{name}_env", f"environment variable {var} is not set", ENV_FIX.format(name=var))
        return value
    if table.get(f"{name}_file"):
        path = relative(base, table[f"{name}_file"])
        try:
            value = path.read_text("utf-8").rstrip("\r\n")
        except OSError as exc:
            problems.add(f"{section}.{name}_file", f"{path}: {exc.strerror or exc}",
                         "write the secret into that file (one line, mode 0600, readable by the gateway's user)")
            return None
        if not value:
            problems.add(f"{section}.{name}_file", f"{path} is empty", "write the secret into it (one line)")
            return None
        return value
    return table.get(name)


def relative(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else base / p


def tls_files(problems: Problems, m: dict, base: Path) -> tuple[Path | None, Path | None, Path | None]:
    """(ca, cert, key) for the MQTT link; (None, None, None) without TLS."""
    if not m.get("tls"):
        for k in ("ca_file", "cert_file", "key_file"):
            if m.get(k):
                problems.add(f"mqtt.{k}", "is set but mqtt.tls is false", "write tls = true under [mqtt] (port 8883), "
                             f"or remove {k}")
        return None, None, None
    out = []
    for k in ("ca_file", "cert_file", "key_file"):
        path = relative(base, m[k]) if m.get(k) else None
        if path is not None and not path.is_file():
            problems.add(f"mqtt.{k}", f"{path} not found", "write the path of the PEM file (made by `edgemon broker "
                         "ca`), relative to this file or absolute")
        out.append(path)
    if out[0] is None:
        problems.add("mqtt.ca_file", "missing: TLS needs the CA that signed the broker's certificate",
                     'add ca_file = "/etc/edgemon/tls/ca.crt" under [mqtt] (the system CAs are not trusted here)')
    if (out[1] is None) != (out[2] is None):
        have, lack = ("cert_file", "key_file") if out[2] is None else ("key_file", "cert_file")
        problems.add(f"mqtt.{lack}", f"missing: mutual TLS needs both, {have} is set",
                     f"add {lack}, or remove {have} for TLS with a password")
    return out[0], out[1], out[2]
