"""`edgemon gateway run|check-config|retire` and `edgemon quarantine list|count`."""

from __future__ import annotations

import json
import signal
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path

import click

from . import statedir as sd

DEFAULT_STATE_DIR = "./run/gateway"

state_dir_option = click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_STATE_DIR,
    show_default=True, help="Gateway state folder (holds quarantine.jsonl).",
)


@click.group()
def gateway():
    """The MQTT -> InfluxDB gateway."""


def build_alarm_observer(alarms_config: Path, state_dir: Path, write):
    """The `[alarms] config` hook: edgemon.alarms.build_observer(config_path, state_dir, influx_write)."""
    try:
        from .alarms import build_observer
    except ModuleNotFoundError as exc:
        if exc.name not in ("edgemon.alarms",):
            raise
        raise click.ClickException(
            f"[alarms] config = {str(alarms_config)!r} is set, but the alarms module (edgemon.alarms) is not "
            "installed: remove the [alarms] section or install edgemon with its alarms package") from None
    from .configschema import ConfigError, report

    try:
        return build_observer(alarms_config, state_dir, write)
    except ConfigError as exc:  # changed since gateway.toml was checked
        raise click.ClickException(report(exc)) from None


@gateway.command("check-config")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
def check_config(config: Path):
    """Validate gateway.toml (and the keys file and alarms config it names); exit 1 with every problem listed."""
    from .config import load
    from .configschema import ConfigError, report

    try:
        loaded = load(config)
    except ConfigError as exc:
        raise click.ClickException(report(exc)) from None
    cfg = loaded.gateway
    click.echo(f"{config}: ok: mqtt {cfg.mqtt_host}:{cfg.mqtt_port} as {cfg.client_id}"
               f"{' (shared group ' + cfg.shared_group + ')' if cfg.shared_group else ''}, "
               f"influx {cfg.influx_api} {cfg.influx_url} {cfg.influx_db}, state {cfg.state_dir}, "
               f"{len(cfg.nodes)} nodes watched, {len(cfg.keys or {})} node keys"
               f"{', alarms ' + str(loaded.alarms_config) if loaded.alarms_config else ''}")


@gateway.command("retire")
@click.argument("gateway_id")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="gateway.toml of a gateway that stays (its broker address and account are used).")
@click.option("--listen", "listen_s", type=float, default=2.0, show_default=True,
              help="Seconds to collect the retired gateway's retained claims.")
def retire_cmd(gateway_id, config_path, listen_s):
    """Take GATEWAY_ID, a member of a shared group that is gone for good (its store lost or
    never coming back), out of the group: the broker drops its session and what it queued there
    (the nodes send those records again: they were never confirmed) and its retained claims are
    cleared. A gateway that will come back is just started again instead.

    Example: edgemon gateway retire --config /etc/edgemon/gateway.toml gw-b
    """
    from .config import load
    from .configschema import ConfigError, report
    from .retire import RetireError, retire

    try:
        cfg = load(config_path).gateway
    except ConfigError as exc:
        raise click.ClickException(report(exc)) from None
    try:
        done = retire(cfg, gateway_id, listen_s=listen_s)
    except RetireError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{gateway_id}: broker session {'dropped' if done.session_present else 'was not there'}; "
               f"{len(done.claims_cleared)} retained claim(s) cleared"
               + (f" ({', '.join(done.claims_cleared[:10])}{' ...' if len(done.claims_cleared) > 10 else ''})"
                  if done.claims_cleared else ""))


@gateway.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="gateway.toml (then the options below are ignored).")
@click.option("--mqtt-host", default="127.0.0.1", show_default=True)
@click.option("--mqtt-port", type=int, default=1883, show_default=True)
@click.option("--mqtt-user", default=None)
@click.option("--mqtt-password", envvar="EDGEMON_MQTT_PASSWORD", default=None,
              help="Or set EDGEMON_MQTT_PASSWORD.")
@click.option("--influx-url", default="http://127.0.0.1:8086", show_default=True)
@click.option("--influx-db", default="edge", show_default=True)
@click.option("--influx-user", default=None)
@click.option("--influx-password", envvar="EDGEMON_INFLUX_PASSWORD", default=None,
              help="Or set EDGEMON_INFLUX_PASSWORD.")
@click.option("--client-id", default="edgemon-gateway", show_default=True,
              help="MQTT client id; also names the broker-side session.")
@state_dir_option
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def run(config_path, mqtt_host, mqtt_port, mqtt_user, mqtt_password, influx_url, influx_db, influx_user,
        influx_password, client_id, state_dir, log_level):
    """Ingest node data and status until SIGINT/SIGTERM, then stop cleanly (the batch in flight is
    finished) and print the stats."""
    from .config import GatewayConfig
    from .ingest import Gateway, GatewayError
    from .logsetup import setup_logging

    alarms_config = None
    if config_path is not None:
        from .config import load
        from .configschema import ConfigError, report

        try:
            loaded = load(config_path)
        except ConfigError as exc:
            raise click.ClickException(report(exc)) from None
        setup_logging(loaded.log_level, loaded.log_format)
        cfg = loaded.gateway
        alarms_config = loaded.alarms_config
    else:
        loaded = None
        setup_logging(log_level)
        cfg = GatewayConfig(
            mqtt_host=mqtt_host, mqtt_port=mqtt_port, mqtt_user=mqtt_user, mqtt_password=mqtt_password,
            influx_url=influx_url, influx_db=influx_db, influx_user=influx_user,
            influx_password=influx_password, state_dir=state_dir, client_id=client_id,
        )
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    gw = Gateway(cfg)
    try:
        if alarms_config is not None:
            gw.add_observer(build_alarm_observer(alarms_config, cfg.state_dir / "alarms", gw.write_lines))
        if loaded is not None:
            from .aggregates.observer import build_observer as build_aggregates
            aggregates = build_aggregates(loaded, gw.write_lines)
            if aggregates is not None:
                gw.add_observer(aggregates)
            from .uplink.build import build_forwarder
            forwarder = build_forwarder(loaded)
            if forwarder is not None:
                gw.add_observer(forwarder)
                if aggregates is not None:
                    aggregates.listeners.append(forwarder.on_aggregates)
                forwarder.start()
        try:
            gw.start()
        except GatewayError as exc:
            raise click.ClickException(str(exc)) from exc
        while not stop.wait(1.0):
            pass
    finally:
        gw.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(json.dumps(gw.stats, indent=2, sort_keys=True))


@click.group()
def quarantine():
    """Payloads the gateway refused, with the reason."""


def _entries(config: Path | None, state_dir: Path | None) -> tuple[Path, list[dict]]:
    from . import quarantine as q
    from .statedir import resolve

    folder = resolve(config, state_dir)
    return folder, list(q.read(folder / q.FILE_NAME))


def _excerpt(entry: dict, width: int = 60) -> str:
    text = entry.get("payload")
    if text is None:
        return f"<{entry.get('size', '?')} bytes, not UTF-8>"
    text = text.replace("\n", " ")
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text


@quarantine.command("list")
@sd.config_option
@sd.state_dir_option
@click.option("--limit", type=int, default=20, show_default=True, help="Show the N newest entries (0: all).")
def list_entries(config: Path | None, state_dir: Path | None, limit: int):
    """Show quarantined payloads, newest last.

    \b
    Examples:
      edgemon quarantine list --config /etc/edgemon/gateway.toml
      edgemon quarantine list --config run/demo/gateway.toml --limit 0"""
    from rich.console import Console
    from rich.table import Table

    state_dir, entries = _entries(config, state_dir)
    if not entries:
        click.echo(f"no quarantined payloads in {state_dir}")
        return
    shown = entries[-limit:] if limit > 0 else entries
    table = Table(title=f"quarantine: {len(shown)} of {len(entries)} entries ({state_dir})")
    for name in ("time", "topic", "reason", "payload"):
        table.add_column(name, overflow="fold")
    for e in shown:
        when = datetime.fromtimestamp(e.get("received_ms", 0) / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
        table.add_row(when, str(e.get("topic")), str(e.get("reason")), _excerpt(e))
    Console().print(table)


@quarantine.command("count")
@sd.config_option
@sd.state_dir_option
def count_entries(config: Path | None, state_dir: Path | None):
    """Count quarantined payloads, in total and per site/node (or per topic when it was bad)."""
    from .quarantine import where_from_topic

    _folder, entries = _entries(config, state_dir)
    counts = Counter(where_from_topic(str(e.get("topic"))) for e in entries)
    click.echo(f"{len(entries)} quarantined")
    for where, n in counts.most_common():
        click.echo(f"{n:8d}  {where}")
