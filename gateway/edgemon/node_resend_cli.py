"""`edgemon node resend`: records a node still holds on flash, published again as they were first
sent (the resend op; the node's half is firmware/cmdresend.py). For a gap the gateway reports
(completeness: missing) while the node still has those records."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("resend", epilog="""\b
Examples:
  edgemon node resend --config /etc/edgemon/gateway.toml qd-plant node01 1200 1260
  edgemon node resend --config gateway.toml qd-plant node01 1234
The node publishes records FROM..TO again from its flash queue, byte for byte as first sent (same
signature); the gateway stores each seq once. Only records still on flash can be sent: the queue
drops a segment once the broker acknowledged all of it. The answer says which seqs went.
Exit codes: 0 sent (all or part: see the line), 1 bad configuration, 2 bad usage, 3 refused by the
node (a range past its last record), 4 no ack, 6 none of them on flash any more.""")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="gateway.toml: the broker and the keys file")
@click.option("--wait", default=60.0, show_default=True, type=click.FloatRange(min=1),
              help="seconds to wait for the node's ack (it answers once every record went)")
@click.argument("site")
@click.argument("node_name", metavar="NODE")
@click.argument("first", type=click.IntRange(0, 2**32 - 1), metavar="FROM")
@click.argument("last", type=click.IntRange(0, 2**32 - 1), metavar="[TO]", required=False)
def resend_cmd(config: Path, wait: float, site: str, node_name: str, first: int, last: int | None):
    """Have SITE/NODE publish records FROM..TO again from its flash."""
    from .node_cli import EXIT_REFUSED, _load_gateway, _send_command

    last = first if last is None else last
    if last < first:
        raise click.BadParameter(f"TO ({last}) is before FROM ({first})")
    cfg = _load_gateway(config)
    a, cid = _send_command(cfg, config, site, node_name, "resend", {"from": first, "to": last}, 60.0, wait)
    if not a.ok:
        click.echo(f"{site}/{node_name}: resend refused (id {cid}): {a.err}", err=True)
        sys.exit(EXIT_REFUSED)
    r = a.result or {}
    if not r.get("sent"):
        click.echo(f"{site}/{node_name}: none of seqs {first}..{last} is on flash any more (acknowledged by the "
                   f"broker and dropped)", err=True)
        sys.exit(6)
    gone = "" if r["first"] == first else f"; {first}..{r['first'] - 1} no longer on flash"
    click.echo(f"{site}/{node_name}: {r['sent']} record(s) sent again, seqs {r['first']}..{r['last']}{gone}")
