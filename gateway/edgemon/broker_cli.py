"""`edgemon broker ...`: the broker's certificates and accounts (server side of issue 13).

The node accounts themselves are made by `edgemon node provision` (account, ACL block, key); this
group makes the CA and certificates, the gateway's account, takes a node off the broker, and prints
the dynamic-security commands for the move away from acl_file/password_file."""

from __future__ import annotations

import secrets
from pathlib import Path

import click

from .broker import BrokerError, dynsec_commands, gateway_block, revoke, set_password, upsert_block
from .pki import CertificateAuthority, PkiError

PASSWD = Path("/etc/mosquitto/passwd")
ACL = Path("/etc/mosquitto/acl")
CA_DIR = Path("/etc/edgemon/ca")


def _fail(exc: Exception):
    raise click.ClickException(str(exc)) from None


@click.group("broker")
def broker():
    """Mosquitto for a bureau: CA and certificates, the gateway's account, revoking a node."""


@broker.group("ca")
def ca_group():
    """The certificate authority that signs the broker's and the nodes' certificates."""


@ca_group.command("init", epilog="""\b
Example:
  edgemon broker ca init /etc/edgemon/ca
Writes ca.crt (give it to every node and the gateway), ca.key (0600; keep it off the broker
host once the certificates are made), issued.json and crl.pem (Mosquitto's crlfile).""")
@click.argument("ca_dir", type=click.Path(file_okay=False, path_type=Path), default=CA_DIR)
@click.option("--cn", default="edgemon broker CA", show_default=True, help="the CA's common name")
def ca_init(ca_dir: Path, cn: str):
    """Make a new CA in CA_DIR (refused where one exists)."""
    try:
        path = CertificateAuthority(ca_dir).init(cn=cn)
    except PkiError as exc:
        _fail(exc)
    click.echo(f"CA made: {path} (key {ca_dir / 'ca.key'}, mode 0600)")


@broker.group("cert")
def cert_group():
    """Certificates signed by the CA."""


@cert_group.command("server", epilog="""\b
Example:
  edgemon broker cert server --ca /etc/edgemon/ca --host mqtt.bureau.example --host 10.20.0.5 \\
      --out /etc/mosquitto/certs
Mosquitto: certfile <out>/server.crt, keyfile <out>/server.key, cafile <ca>/ca.crt.""")
@click.option("--ca", "ca_dir", type=click.Path(file_okay=False, path_type=Path), default=CA_DIR, show_default=True)
@click.option("--host", "hosts", multiple=True, required=True,
              help="a name or address the nodes and the gateway connect to (repeat)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="[default: the CA folder]")
def cert_server(ca_dir: Path, hosts: tuple[str, ...], out: Path | None):
    """The broker's server certificate."""
    try:
        got = CertificateAuthority(ca_dir).server(out or ca_dir, list(hosts))
    except PkiError as exc:
        _fail(exc)
    click.echo(f"server certificate {got.cert} (key {got.key}) for {', '.join(hosts)}, serial {got.serial:x}")


@cert_group.command("node", epilog="""\b
Example:
  edgemon broker cert node --ca /etc/edgemon/ca qd-plant node01 --out /var/lib/edgemon/provisioned
The certificate's CN is SITE.NODE, the node's broker account: with use_identity_as_username the
broker applies that account's ACL block to it.""")
@click.option("--ca", "ca_dir", type=click.Path(file_okay=False, path_type=Path), default=CA_DIR, show_default=True)
@click.argument("site")
@click.argument("node_name", metavar="NODE")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="[default: <ca>/nodes]")
def cert_node(ca_dir: Path, site: str, node_name: str, out: Path | None):
    """A node's client certificate (mutual TLS)."""
    try:
        got = CertificateAuthority(ca_dir).node(out or ca_dir / "nodes", site, node_name)
    except PkiError as exc:
        _fail(exc)
    click.echo(f"node certificate {got.cert} (key {got.key}), CN {site}.{node_name}, serial {got.serial:x}")


@broker.command("gateway-account", epilog="""\b
Example:
  edgemon broker gateway-account --password-file /etc/edgemon/secrets/mqtt-password
then in gateway.toml [mqtt]: username = "gateway", password_file = "/etc/edgemon/secrets/mqtt-password"
The gateway may read everything under edge/v1/ and publish commands, confirmations and its store
claims; nothing else.""")
@click.option("--user", default="gateway", show_default=True)
@click.option("--passwd", type=click.Path(dir_okay=False, path_type=Path), default=PASSWD, show_default=True)
@click.option("--acl", type=click.Path(dir_okay=False, path_type=Path), default=ACL, show_default=True)
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="where the new password is written (0600): gateway.toml's mqtt.password_file")
def gateway_account(user: str, passwd: Path, acl: Path, password_file: Path):
    """Make (or re-key) the gateway's broker account and its ACL block."""
    from .provision import write_private

    password = secrets.token_urlsafe(24)
    try:
        set_password(passwd, user, password)
    except BrokerError as exc:
        _fail(exc)
    write_private(password_file, password + "\n")
    text = acl.read_text() if acl.exists() else ""
    write_private(acl, upsert_block(text, user, gateway_block(user)), 0o640)
    click.echo(f"account {user} in {passwd}, its ACL block in {acl}, password in {password_file} (0600)")
    click.echo("the broker re-reads both files on SIGHUP (systemctl reload mosquitto)")


@broker.command("revoke", epilog="""\b
Example:
  edgemon broker revoke qd-plant node01 --ca /etc/edgemon/ca && systemctl reload mosquitto
Removes the account's password line and its ACL block and revokes its certificates (crl.pem).
After the reload the node cannot connect, and a connection still open may publish nothing. With
mutual TLS, the broker reads crl.pem again when it restarts (systemctl restart mosquitto).
The gateway keeps the node's key and its data; remove it from [sites] when it is retired for good.""")
@click.argument("site")
@click.argument("node_name", metavar="NODE")
@click.option("--passwd", type=click.Path(dir_okay=False, path_type=Path), default=PASSWD, show_default=True)
@click.option("--acl", type=click.Path(dir_okay=False, path_type=Path), default=ACL, show_default=True)
@click.option("--ca", "ca_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="also revoke its certificates (mutual TLS)")
def revoke_cmd(site: str, node_name: str, passwd: Path, acl: Path, ca_dir: Path | None):
    """Take a node off the broker: password, ACL block, certificates."""
    from .broker import node_user

    try:
        got = revoke(node_user(site, node_name), passwd=passwd, acl=acl, ca_dir=ca_dir)
    except (BrokerError, PkiError) as exc:
        _fail(exc)
    if not (got.password_removed or got.acl_removed or got.certificates):
        raise click.ClickException(f"{got.user}: no password line in {passwd}, no ACL block in {acl}"
                                   + (f", no live certificate in {ca_dir}" if ca_dir else "")
                                   + ": check the site and node names and the files")
    click.echo(f"{got.user}: password {'removed' if got.password_removed else 'absent'}, ACL block "
               f"{'removed' if got.acl_removed else 'absent'}, certificates revoked: "
               f"{', '.join(f'{s:x}' for s in got.certificates) or 'none'}")
    click.echo("now: systemctl reload mosquitto (restart with mutual TLS, to read crl.pem)")


@broker.command("dynsec", epilog="""\b
Example:
  edgemon broker dynsec --acl /etc/mosquitto/acl > dynsec.sh
Each line is one `mosquitto_ctrl -u admin dynsec ...` call; fill in the passwords (they are
only hashed in the password_file; the nodes' are in their provisioned secrets files).""")
@click.option("--acl", type=click.Path(dir_okay=False, path_type=Path, exists=True), default=ACL, show_default=True)
@click.option("--admin", default="admin", show_default=True, help="the dynsec admin account for mosquitto_ctrl")
def dynsec(acl: Path, admin: str):
    """Print the commands that rebuild the ACL's accounts in the dynamic-security plugin."""
    import shlex

    try:
        cmds = dynsec_commands(acl.read_text())
    except BrokerError as exc:
        _fail(exc)
    for args in cmds:
        click.echo(" ".join(["mosquitto_ctrl", "-u", admin, "dynsec", *map(shlex.quote, args)]))
