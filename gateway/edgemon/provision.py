"""`edgemon node provision`: what the server side needs before a node can be commissioned.

- a Mosquitto account `SITE.NODE` (mosquitto_passwd, in the broker's password file);
- its ACL entry: it may publish only its own data, status, event and cmd/ack, and read only its own cmd;
- its HMAC key, in the gateway's keys file (mode 0600);
- its entry in gateway.toml ([sites.SITE] nodes, poll_s), so silence is watched;
- the secrets for the node's config (broker password, key) in a 0600 file for `edgemon node config`.

Files are edited in place keeping their comments (tomlkit for TOML) and replaced atomically
(tmp, fsync, rename). Running it again changes nothing but what is missing, unless rotate=True."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import tomlkit

from .broker import node_block, node_user, upsert_block
from .contract import ID_RE

KEY_BYTES = 32


class ProvisionError(Exception):
    """Refused before anything was written; str() says what and how to fix it."""


def broker_user(site: str, node: str) -> str:
    return node_user(site, node)


def upsert_acl(text: str, site: str, node: str) -> str:
    """The ACL file's text with this node's block added, or replaced where it was."""
    return upsert_block(text, node_user(site, node), node_block(site, node))


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace path atomically with text, created with mode (secrets are never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def upsert_key(text: str, site: str, node: str, rotate: bool) -> tuple[str, str, bool]:
    """(new keys-file text, the node's key hex, whether it is new)."""
    doc = tomlkit.parse(text) if text.strip() else tomlkit.document()
    keys = doc.get("keys")
    if keys is None:
        keys = tomlkit.table()
        doc["keys"] = keys
    name = f"{site}/{node}"
    if name in keys and not rotate:
        return text, str(keys[name]), False
    key = secrets.token_bytes(KEY_BYTES).hex()
    keys[name] = key
    return tomlkit.dumps(doc), key, True


def upsert_site(text: str, site: str, node: str, poll_s: float) -> str:
    """gateway.toml with NODE in [sites.SITE] nodes (and poll_s set when the site is new)."""
    doc = tomlkit.parse(text)
    sites = doc.get("sites")
    if sites is None:
        sites = tomlkit.table(is_super_table=True)
        doc["sites"] = sites
    entry = sites.get(site)
    if entry is None:
        entry = tomlkit.table()
        entry["poll_s"] = poll_s
        entry["nodes"] = [node]
        sites[site] = entry
    elif node not in list(entry.get("nodes", [])):
        nodes = entry.get("nodes")
        if nodes is None:
            entry["nodes"] = [node]
        else:
            nodes.append(node)
    return tomlkit.dumps(doc)


@dataclass
class Provisioned:
    user: str
    password: str | None  # None: the account existed and was kept (its password is in the secrets file)
    key: str
    new_key: bool
    secrets_path: Path


def _passwd_has(path: Path, user: str) -> bool:
    if not path.exists():
        return False
    return any(line.split(":", 1)[0] == user for line in path.read_text().splitlines())


def provision(site: str, node: str, *, gateway_toml: Path, keys_file: Path, passwd: Path, acl: Path,
              secrets_dir: Path, poll_s: float = 10.0, rotate: bool = False) -> Provisioned:
    problems = []
    for what, value in (("SITE", site), ("NODE", node)):
        if not ID_RE.fullmatch(value):
            problems.append(f"{what} {value!r}: letters, digits, _ and - (1-64 characters), as in its topics")
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        problems.append("mosquitto_passwd not found: install the broker's tools (apt-get install mosquitto)")
    for path in (gateway_toml,):
        if not path.is_file():
            problems.append(f"{path}: not found; fix: point --config at the gateway's gateway.toml")
    if problems:
        raise ProvisionError("\n".join(problems))
    user = broker_user(site, node)
    secrets_path = secrets_dir / f"{site}.{node}.secrets.json"
    old = json.loads(secrets_path.read_text()) if secrets_path.exists() else {}
    # 1. the key (the gateway's keys file), 2. the broker account, 3. its ACL, 4. gateway.toml,
    # 5. the secrets for the node config: each step is idempotent, so a failed run can be repeated.
    text, key, new_key = upsert_key(keys_file.read_text() if keys_file.exists() else "", site, node, rotate)
    if new_key:
        write_private(keys_file, text)
    password = None
    if rotate or not _passwd_has(passwd, user) or "password" not in old.get("mqtt", {}):
        password = secrets.token_urlsafe(18)
        passwd.parent.mkdir(parents=True, exist_ok=True)
        args = [tool, "-b"] + ([] if passwd.exists() else ["-c"]) + [str(passwd), user, password]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode:
            raise ProvisionError(f"mosquitto_passwd {passwd}: {r.stderr.strip() or r.stdout.strip()}")
        os.chmod(passwd, 0o600)
    acl_text = acl.read_text() if acl.exists() else ""
    new_acl = upsert_acl(acl_text, site, node)
    if new_acl != acl_text:
        write_private(acl, new_acl, 0o640)
    g = gateway_toml.read_text()
    new_g = upsert_site(g, site, node, poll_s)
    if new_g != g:
        write_private(gateway_toml, new_g, gateway_toml.stat().st_mode & 0o777)
    write_private(secrets_path, json.dumps({
        "site": site, "node": node,
        "mqtt": {"user": user, "password": password or old["mqtt"]["password"]},
        "key": key}, indent=2) + "\n")
    return Provisioned(user, password, key, new_key, secrets_path)
