"""Per-node HMAC keys and payload signature checks (docs/ARCHITECTURE.md section 3, `sig`).

The keys file lives outside the repository, readable by the gateway's user only (mode 0600):

    # /etc/edgemon/keys.toml
    [keys]
    "qd-plant/node01" = "5f0c...64 hex chars..."   # the node's key, hex (at least 16 bytes)

A site with at least one key requires signatures from all its nodes; `require_signatures = true`
in gateway.toml requires them everywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import time
import tomllib
from pathlib import Path

from .configschema import ConfigError, Problems
from .contract import ID_RE, ContractError, split_signature

MIN_KEY_BYTES = 16
DIAGNOSE_EVERY_S = 60.0


class KeysError(ConfigError):
    """A bad keys file: every problem, one per line (edgemon.configschema)."""


KEY_FIX = "write 32 random bytes as hex: python -c 'import secrets; print(secrets.token_hex(32))'"


def check_private(path: Path, problems: Problems | None = None) -> None:
    """Refuse a file group or others can read or write: raise KeysError, or add the problem to `problems`."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        found = Problems(path) if problems is None else problems
        found.add("", f"mode {mode:04o} lets group/others read it; node keys must be private", f"chmod 600 {path}")
        if problems is None:
            found.raise_if_any(KeysError)


def load_keys(path: str | Path) -> dict[str, bytes]:
    """{"site/node": key bytes} from a keys file; checks its mode too. Raises KeysError listing every problem."""
    path = Path(path)
    problems = Problems(path)
    if not path.exists():
        problems.add("", "keys file not found", "point trust.keys_file in gateway.toml at the keys file "
                     "(mode 0600, outside the repository)")
        problems.raise_if_any(KeysError)
    check_private(path, problems)
    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problems.add("", f"not valid TOML: {exc}", 'correct the TOML there: [keys] then "site/node" = "<hex key>"')
        problems.raise_if_any(KeysError)
    table = doc.get("keys")
    if not isinstance(table, dict):
        problems.add("keys", 'expected a [keys] table of "site/node" = "<hex key>"',
                     'write [keys] then a line "site/node" = "<hex key>" per node')
        table = {}
    keys: dict[str, bytes] = {}
    for name, value in table.items():
        where = f'keys."{name}"'
        parts = name.split("/")
        if len(parts) != 2 or not all(ID_RE.fullmatch(p) for p in parts):
            problems.add(where, 'expected "site/node" ([A-Za-z0-9_-]{1,64} each)',
                         'name it after the node\'s topic, e.g. "qd-plant/node01"')
        if not isinstance(value, str):
            problems.add(where, f"expected a hex string, got {value!r}", KEY_FIX)
            continue
        try:
            key = bytes.fromhex(value)
        except ValueError:
            problems.add(where, "not hex", KEY_FIX)
            continue
        if len(key) < MIN_KEY_BYTES:
            problems.add(where, f"{len(key)} bytes; use at least {MIN_KEY_BYTES}", KEY_FIX)
        keys[name] = key
    problems.raise_if_any(KeysError)
    return keys


def sign(payload_without_sig: bytes, key: bytes) -> str:
    return hmac.new(key, payload_without_sig, hashlib.sha256).hexdigest()


def signed_payload(obj_json: bytes, key: bytes) -> bytes:
    """Append `,"sig":"<hex>"` inside the closing brace of a JSON object (what a node does)."""
    body = obj_json.rstrip()
    if not body.endswith(b"}"):
        raise ValueError("not a JSON object")
    head = body[:-1]
    sig = sign(head + b"}", key)
    return head + b',"sig":"' + sig.encode() + b'"}'


class Verifier:
    """Decides whether a data payload's signature is acceptable for the topic's site/node."""

    def __init__(self, keys: dict[str, bytes] | None = None, require_all: bool = False):
        self.keys = dict(keys or {})
        self.require_all = require_all
        self.keyed_sites = {name.split("/", 1)[0] for name in self.keys}
        self._diagnosed: dict[str, float] = {}  # topic's site/node -> when its last bad sig was diagnosed

    def required(self, site: str, node: str) -> bool:
        return self.require_all or site in self.keyed_sites or f"{site}/{node}" in self.keys

    def check(self, site: str, node: str, payload: bytes) -> None:
        """Raise ContractError with the reason when the payload may not be taken as this node's."""
        if not self.required(site, node):
            return
        name = f"{site}/{node}"
        signed, sig = split_signature(payload)
        if sig is None:
            raise ContractError(f"sig: missing; {name} must sign its payloads (HMAC-SHA256, last member)")
        key = self.keys.get(name)
        if key is None:
            raise ContractError(f"sig: no key for {name} in the keys file; the payload cannot be trusted")
        expected = sign(signed, key)
        if hmac.compare_digest(expected, sig.lower()):
            return
        # Diagnose: is it another node's key (a node publishing on someone else's topic)? Costs one
        # HMAC per key, so at most once a minute per topic: a flood of forged payloads must not stall
        # the journal thread that every node's data goes through.
        now = time.monotonic()
        if len(self.keys) <= 10_000 and now - self._diagnosed.get(name, -DIAGNOSE_EVERY_S) >= DIAGNOSE_EVERY_S:
            self._diagnosed[name] = now
            for other, other_key in self.keys.items():
                if other != name and hmac.compare_digest(sign(signed, other_key), sig.lower()):
                    raise ContractError(f"sig: signed with the key of {other}, not of {name} (topic's site/node)")
        raise ContractError(f"sig: does not match the key of {name}")
