"""Broker accounts and what each may do: the rules are written once here and rendered as
Mosquitto's `acl_file` blocks today and as dynamic-security commands (`mosquitto_ctrl dynsec`)
for the day the broker moves to that plugin (Mosquitto 2.1 deprecates acl_file/password_file).

Accounts:
- node `SITE.NODE`: publishes only edge/v1/SITE/NODE/{data,status,event,cmd/ack}, reads only its
  own cmd and confirm topics; under mutual TLS its certificate's CN is the same name
  (`use_identity_as_username`), so the same block applies;
- the gateway (`gateway` unless named): reads everything under edge/v1/, publishes the commands,
  the end-to-end confirmations and its retained store claims.

An account is revoked by removing its password line and its ACL block and, under mutual TLS, by
revoking its certificates (edgemon.pki's CRL). Pure text functions here; the file edits and the
broker's reload are in revoke() and the CLI.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

TOPIC_ROOT = "edge/v1"
NODE_WRITES = ("data", "status", "event", "cmd/ack")
NODE_READS = ("cmd", "confirm")


class BrokerError(Exception):
    """Refused; str() says what and how to fix it."""


def node_user(site: str, node: str) -> str:
    return f"{site}.{node}"


def node_rules(site: str, node: str) -> list[tuple[str, str]]:
    base = f"{TOPIC_ROOT}/{site}/{node}"
    return [("write", f"{base}/{k}") for k in NODE_WRITES] + [("read", f"{base}/{k}") for k in NODE_READS]


def gateway_rules() -> list[tuple[str, str]]:
    return [("read", f"{TOPIC_ROOT}/#"), ("write", f"{TOPIC_ROOT}/+/+/cmd"),
            ("write", f"{TOPIC_ROOT}/+/+/confirm"), ("write", f"{TOPIC_ROOT}/+/+/stored/#")]


def acl_block(user: str, rules: list[tuple[str, str]], comment: str) -> str:
    return "\n".join([f"# {comment}", f"user {user}", *(f"topic {a} {t}" for a, t in rules)]) + "\n"


def parse_acl(text: str) -> dict[str, list[tuple[str, str]]]:
    """user -> [(access, topic)] from an acl_file (Mosquitto's syntax: `user`, `topic [read|write|readwrite]`)."""
    out: dict[str, list[tuple[str, str]]] = {}
    user = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word == "user":
            user = rest.strip()
            out.setdefault(user, [])
        elif word == "topic":
            if user is None:
                raise BrokerError(f"acl line {n}: `{line}` applies to anonymous clients; the broker "
                                  "allows none: put it under a `user` line or remove it")
            access, _, topic = rest.strip().partition(" ")
            if access not in ("read", "write", "readwrite"):
                access, topic = "readwrite", rest.strip()
            out[user].append((access, topic.strip()))
        elif word == "pattern":
            raise BrokerError(f"acl line {n}: `pattern` rules are not used by edgemon; write per-user blocks")
    return out


def remove_block(text: str, user: str) -> str:
    """The ACL text without USER's block (and the comment line above it)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == f"user {user}":
            if out and out[-1].lstrip().startswith("#"):
                out.pop()
            i += 1
            while i < len(lines) and not lines[i].lstrip().startswith(("user ", "pattern ", "#")):
                i += 1
            continue
        out.append(lines[i])
        i += 1
    body = "".join(out)
    return body if not body or body.endswith("\n") else body + "\n"


def upsert_block(text: str, user: str, block: str) -> str:
    body = remove_block(text, user)
    return body + block


def node_block(site: str, node: str) -> str:
    return acl_block(node_user(site, node), node_rules(site, node),
                     f"{site}/{node} (edgemon node provision): its own topics only")


def gateway_block(user: str = "gateway") -> str:
    return acl_block(user, gateway_rules(), "the gateway (edgemon broker gateway-account): reads all data, "
                     "publishes commands, confirmations and its store claims")


# -- dynamic-security -----------------------------------------------------------------------
DYNSEC_ACCESS = {"write": ["publishClientSend"], "read": ["subscribePattern", "publishClientReceive"],
                 "readwrite": ["publishClientSend", "subscribePattern", "publishClientReceive"]}


def dynsec_commands(acl_text: str) -> list[list[str]]:
    """The `mosquitto_ctrl dynsec ...` argument lists that rebuild the ACL's accounts in the
    dynamic-security plugin: one role per account holding its rules, default access denied.
    Passwords are not in the ACL: each createClient is followed by a setClientPassword the operator
    fills from the provisioned secrets (Mosquitto's password_file keeps only hashes)."""
    cmds: list[list[str]] = [
        ["setDefaultACLAccess", "publishClientSend", "deny"],
        ["setDefaultACLAccess", "publishClientReceive", "deny"],
        ["setDefaultACLAccess", "subscribe", "deny"],
    ]
    for user, rules in parse_acl(acl_text).items():
        role = f"role-{user}"
        cmds.append(["createRole", role])
        for access, topic in rules:
            for kind in DYNSEC_ACCESS[access]:
                cmds.append(["addRoleACL", role, kind, topic, "allow"])
        cmds.append(["createClient", user, "-p", "<password of " + user + ">"])
        cmds.append(["addClientRole", user, role])
    return cmds


# -- file edits -----------------------------------------------------------------------------
@dataclass
class Revoked:
    user: str
    password_removed: bool
    acl_removed: bool
    certificates: list[int]


def _passwd_users(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [ln.split(":", 1)[0] for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def set_password(passwd: Path, user: str, password: str) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise BrokerError("mosquitto_passwd not found: install the broker's tools (apt-get install mosquitto)")
    passwd.parent.mkdir(parents=True, exist_ok=True)
    args = [tool, "-b"] + ([] if passwd.exists() else ["-c"]) + [str(passwd), user, password]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode:
        raise BrokerError(f"mosquitto_passwd {passwd}: {r.stderr.strip() or r.stdout.strip()}")
    passwd.chmod(0o600)


def revoke(user: str, *, passwd: Path, acl: Path, ca_dir: Path | None = None) -> Revoked:
    """Take USER off the broker: its password line, its ACL block, its certificates (CRL).
    The broker applies it on reload (SIGHUP); a connection still open loses its ACL at once."""
    from .provision import write_private

    removed_pw = user in _passwd_users(passwd)
    if removed_pw:
        tool = shutil.which("mosquitto_passwd")
        if tool is None:
            raise BrokerError("mosquitto_passwd not found: install the broker's tools (apt-get install mosquitto)")
        r = subprocess.run([tool, "-D", str(passwd), user], capture_output=True, text=True)
        if r.returncode:
            raise BrokerError(f"mosquitto_passwd -D {passwd} {user}: {r.stderr.strip() or r.stdout.strip()}")
    text = acl.read_text() if acl.exists() else ""
    new = remove_block(text, user)
    if new != text:
        write_private(acl, new, 0o640)
    serials: list[int] = []
    if ca_dir is not None:
        from .pki import CertificateAuthority

        serials = CertificateAuthority(ca_dir).revoke(user)
    return Revoked(user, removed_pw, new != text, serials)
