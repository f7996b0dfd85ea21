"""`edgemon sms test` and `edgemon alarms check-config|list`."""

from __future__ import annotations

from pathlib import Path

import click

from . import statedir as sd

config_argument = click.argument("config", type=click.Path(dir_okay=False, path_type=Path))


def _load(config: Path):
    from .alarms.config import load
    from .configschema import ConfigError, report

    try:
        return load(config)
    except ConfigError as exc:
        raise click.ClickException(report(exc)) from None


@click.group()
def sms():
    """SMS through the GSM modem."""


@sms.command("test")
@click.argument("number")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="alarms.toml (its [sms] port is the modem).")
@click.option("--port", default=None, help="Use this serial port instead of the config's.")
@click.option("--text", default="【测试】在线监测短信告警通道测试，收到请忽略。", show_default=True)
def sms_test(number, config, port, text):
    """Send a test message to NUMBER (e.g. +8613800000000) now, straight through the modem."""
    from .sms.modem import Modem, ModemError
    from .sms.pdu import PduError, encode_submit

    cfg = _load(config)
    port = port or cfg.sms.port
    if not port:
        raise click.ClickException(f"{config}: sms.port: missing (the modem's serial port)")
    try:
        pdus = encode_submit(number, text, ref=1)
    except PduError as exc:
        raise click.ClickException(str(exc)) from None
    modem = Modem(port, cfg.sms.baud, command_timeout_s=cfg.sms.command_timeout_s,
                  send_timeout_s=cfg.sms.send_timeout_s)
    try:
        modem.open()
        health = modem.health()
        click.echo(f"modem {port}: signal csq={health.csq} ({health.rssi_dbm} dBm), "
                   f"registration {health.creg} ({'registered' if health.registered else 'NOT registered'})")
        refs = [modem.send_pdu(p) for p in pdus]
    except ModemError as exc:
        raise click.ClickException(f"modem {port}: {exc}") from None
    finally:
        modem.close()
    click.echo(f"sent to {number} in {len(pdus)} part(s), message reference(s) {', '.join(map(str, refs))}")


@click.group()
def alarms():
    """Limits and alarms."""


@alarms.command("check-config")
@config_argument
def check_config(config):
    """Load alarms.toml and every limit profile it names; exit 1 listing every problem (file, field, fix)."""
    cfg = _load(config)
    for sc in cfg.sites.values():
        roles = ", ".join(f"{r}: {len(p)}" for r, p in sc.roles.items()) or "no recipients"
        click.echo(f"{sc.site.id} ({sc.site.name}): profile {sc.site.profile}, {len(sc.site.limits)} limits, "
                   f"rules {', '.join(r.id for r in sc.rules)}; {roles}")
    click.echo(f"{config}: OK ({len(cfg.sites)} sites, modem {cfg.sms.port or 'not configured'})")


@alarms.command("list")
@sd.config_option
@sd.state_dir_option
@click.option("--limit", type=int, default=20, show_default=True, help="How many recent raises/clears to show (0: all).")
def list_alarms(config, state_dir, limit):
    """Recent alarm history (raises and clears), the alarms active now, and SMS waiting in the outbox.

    Times are Beijing time (Asia/Shanghai), as in the SMS texts.

    \b
    Examples:
      edgemon alarms list --config /etc/edgemon/gateway.toml
      edgemon alarms list --config run/demo/gateway.toml --limit 0"""
    from .alarms.messages import local_time
    from .alarms.observer import read_history, read_state
    from .sms.outbox import Outbox

    folder = sd.resolve(config, state_dir, "alarms")
    history = read_history(folder, limit)
    click.echo(f"recent alarm events ({len(history)} shown, Beijing time):" if history else "no alarm events yet")
    for h in history:
        click.echo(f"  {local_time(h['ts'])} {h['event']:8} {h['site']}/{h['node']} {h['param']} {h['rule']}: "
                   f"value {h.get('value')} limit {h.get('limit')}")
    mem = read_state(folder)
    active = [(k, a) for k, a in sorted(mem["alarms"].items()) if a["phase"] in ("raised", "clearing")]
    click.echo(f"{len(active)} active alarm(s)" if active else "no active alarms")
    for key, a in active:
        site, node, param, rule = key.split("|")
        click.echo(f"  {site}/{node} {param} {rule}: since {local_time(a['start_ts'])} value {a.get('value')} "
                   f"limit {a.get('limit')}{' (escalated)' if a.get('escalated') else ''}"
                   f"{' (clearing)' if a['phase'] == 'clearing' else ''}")
    pending = Outbox(folder).pending() if (folder / "sms_outbox.json").exists() else []
    click.echo(f"{len(pending)} SMS waiting in the outbox")
    for m in pending:
        click.echo(f"  {m.to} attempts {m.attempts} last error {m.last_error or '-'}: {m.text}")
