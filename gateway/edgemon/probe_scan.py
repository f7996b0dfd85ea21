"""`edgemon node probe --scan`: who answers on an analyzer's bus (unit ids, and baud rates on a
UART bus), asked of the node over the command channel (the probe op with args scan; the node's
half is firmware/cmdprobe.py scan). For a bus whose devices' ids or speed nobody wrote down."""

from __future__ import annotations

import json
import sys

import click


def parse_units(text: str) -> tuple[int, int]:
    """"1-247", "5" -> (first, last), each 1..247."""
    lo, _, hi = text.partition("-")
    try:
        first, last = int(lo), int(hi or lo)
    except ValueError:
        raise click.BadParameter(f"{text!r}: a unit id or a range, e.g. 1-247") from None
    if not 1 <= first <= last <= 247:
        raise click.BadParameter(f"{text!r}: unit ids are 1..247, first <= last")
    return first, last


def parse_bauds(text: str | None) -> list[int]:
    if not text:
        return []
    out = []
    for part in text.split(","):
        if not part.strip().isdigit() or int(part) not in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200):
            raise click.BadParameter(f"{part!r}: one of 1200 2400 4800 9600 19200 38400 57600 115200")
        out.append(int(part))
    return out


def run_scan(cfg, config, site: str, node: str, analyzer: str | None, units: tuple[int, int], bauds: list[int],
             timeout_ms: int, as_json: bool) -> None:
    from .node_cli import EXIT_REFUSED, _send_command

    tries = (units[1] - units[0] + 1) * max(1, len(bauds))
    wait = tries * timeout_ms * 1.5 / 1000 + 15  # every try timing out, and the round trip
    click.echo(f"{site}/{node}: scanning unit ids {units[0]}-{units[1]}"
               + (f" at {', '.join(map(str, bauds))} baud" if bauds else "")
               + f" ({tries} tries, up to {wait:.0f} s; the node's poll waits meanwhile)", err=True)
    args: dict = {"scan": list(units), "timeout_ms": timeout_ms}
    if bauds:
        args["bauds"] = bauds
    if analyzer:
        args["analyzer"] = analyzer
    a, cid = _send_command(cfg, config, site, node, "probe", args, wait + 60, wait)
    if not a.ok:
        click.echo(f"{site}/{node}: scan refused (id {cid}): {a.err}", err=True)
        sys.exit(EXIT_REFUSED)
    res = a.result or {}
    found = [{"unit": u, "baud": b, "answer": what} for u, b, what in res.get("found", [])]
    if as_json:
        click.echo(json.dumps({"analyzer": res.get("analyzer"), "tried": res.get("tried"), "found": found}, indent=2))
        return
    click.echo(f"bus of analyzer {res.get('analyzer')}: {res.get('tried')} tried, {len(found)} answered")
    for f in found:
        click.echo(f"  unit {f['unit']:>3}" + (f" at {f['baud']} baud" if f["baud"] else "") + f": {f['answer']}")
    if not found:
        click.echo("  nobody answered: check the wiring (A/B swapped?), the termination, and the bauds tried")
