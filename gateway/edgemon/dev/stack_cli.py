"""CLI commands for the local stack, the analyzer simulator and the demo."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import click


@click.command()
@click.option("--run-dir", type=click.Path(path_type=Path), default=Path("run/stack"), show_default=True,
              help="Folder for the servers' configs, data and logs.")
@click.option("--node", "nodes", multiple=True, metavar="SITE/NODE",
              help="Also make this node's broker account (user SITE.NODE); repeat for several nodes.")
def stack(run_dir: Path, nodes):
    """Start our own Mosquitto and InfluxDB on free loopback ports until Ctrl-C.

    \b
    Example:
      edgemon stack --node siteA/n1 --node siteA/n2   # prints each account's user and password"""
    from ..contract import ID_RE
    from .stack import LocalStack

    pairs = []
    for spec in nodes:  # checked before anything starts
        site, _, node = spec.partition("/")
        if not ID_RE.fullmatch(site) or not ID_RE.fullmatch(node):
            raise click.BadParameter(f"{spec!r}: expected SITE/NODE, each 1-64 of A-Z a-z 0-9 _ - (e.g. siteA/n1)",
                                     param_hint="--node")
        pairs.append((site, node))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with LocalStack(run_dir) as s:
        for k, v in s.describe().items():
            click.echo(f"{k:10} {v}")
        click.echo(f"{'gateway':10} user {s.gateway_user} password {s.gateway_password}")
        for site, node in pairs:
            user, password = s.add_node(site, node)
            click.echo(f"{'node':10} {site}/{node}: user {user} password {password} (mqtt.user / mqtt.password "
                       "in its node.json)")
        _wait_for_signal()


@click.command()
@click.option("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: a free one, printed).")
@click.option("--unit", type=click.IntRange(1, 247), default=1, show_default=True, help="Modbus unit id.")
@click.option("--base", type=float, default=30.0, show_default=True, help="Mean COD, mg/L.")
@click.option("--amplitude", type=float, default=8.0, show_default=True, help="Daily swing, mg/L.")
@click.option("--period", type=float, default=86400.0, show_default=True, help="Length of the 'day', s.")
@click.option("--word-order", type=click.Choice(["ABCD", "CDAB", "BADC", "DCBA"]), default="ABCD",
              show_default=True)
@click.option("--fixed", type=float, default=None, help="Serve exactly this value instead of the waveform.")
@click.option("--profile", "profiles", multiple=True, metavar="NAME[@UNIT]",
              help="Serve an analyzer from firmware/profiles/NAME.json instead of the COD demo map; repeat for "
                   "several analyzers on one bus (units --unit, --unit+1, ... unless given as NAME@UNIT).")
@click.option("--framing", type=click.Choice(["rtu", "tcp"]), default="rtu", show_default=True,
              help="With --profile: Modbus RTU over TCP (serial server) or Modbus TCP.")
@click.option("--set", "sets", multiple=True, metavar="PARAM=VALUE", help="With --profile: serve this value.")
@click.option("--status", default=None, metavar="FLAG", help="With --profile: serve the status meaning this "
              "HJ 212 flag (N M C D T F), on every unit whose profile can say it.")
@click.option("--list-profiles", is_flag=True, help="List the profiles and exit.")
def simulate(port, unit, base, amplitude, period, word_order, fixed, profiles, framing, sets, status, list_profiles):
    """Serve simulated analyzers (the COD demo map, or firmware profiles) until Ctrl-C."""
    from .bussim import profile_names
    from .simulator import AnalyzerSimulator, cod_profile

    if list_profiles:
        for name in profile_names():
            click.echo(name)
        return
    if profiles:
        _simulate_profiles(port, unit, profiles, framing, sets, status)
        return

    sim = AnalyzerSimulator(cod_profile(base, amplitude, period_s=period, word_order=word_order),
                            port=port, unit=unit)
    sim.set_value(fixed)
    with sim:
        click.echo(f"COD analyzer, unit {unit}, Modbus RTU over TCP on 127.0.0.1:{sim.port} ({word_order})")
        _wait_for_signal()


def _simulate_profiles(port, first_unit, profiles, framing, sets, status):
    from .bussim import BusSimulator, profile_names

    bus = BusSimulator(port=port, framing=framing)
    known = profile_names()
    for i, spec in enumerate(profiles):
        name, _, at = spec.partition("@")
        if name not in known:
            raise click.BadParameter(f"no profile {name!r}; profiles: {', '.join(known)}", param_hint="--profile")
        bus.add(int(at) if at else first_unit + i, name)
    for item in sets:
        param, _, value = item.partition("=")
        units = [u for u in bus.units.values() if param in u.values]
        if not units or not value:
            raise click.BadParameter(f"{item!r}: expected PARAM=VALUE for a value of the served profiles",
                                     param_hint="--set")
        for u in units:
            bus.set_value(u.unit, param, float(value))
    if status:
        for u in bus.units.values():
            if u.profile.get("status"):
                bus.set_status(u.unit, status)
    with bus:
        kind = "Modbus RTU over TCP" if framing == "rtu" else "Modbus TCP"
        click.echo(f"{kind} on 127.0.0.1:{bus.port}")
        for u in bus.units.values():
            click.echo(f"  unit {u.unit:3}  {u.profile_name:20} " +
                       " ".join(f"{p}={v:g}" for p, v in u.values.items()))
        _wait_for_signal()


@click.command()
@click.option("--run-dir", type=click.Path(path_type=Path), default=Path("run/demo"), show_default=True,
              help="Folder for every config, data file and log of the demo (relative to the current folder).")
@click.option("--duration", type=float, default=None, help="Stop by itself after this many seconds.")
@click.option("--poll", type=float, default=2.0, show_default=True, help="Node poll period, s.")
@click.option("--breach-at", type=float, default=20.0, show_default=True,
              help="Seconds after start when the enterprise outfall's COD is pushed over its limit.")
@click.option("--breach-for", type=float, default=20.0, show_default=True, help="How long the exceedance lasts, s.")
@click.option("--first-record-timeout", type=float, default=60.0, show_default=True,
              help="Fail when no record has reached InfluxDB after this many seconds.")
def demo(run_dir: Path, duration, poll, breach_at, breach_for, first_record_timeout):
    """Run the whole system locally with three simulated sites and show a live view.

    \b
    Examples:
      edgemon demo                              # until Ctrl-C; everything under run/demo/
      edgemon demo --duration 90 | tee demo.log # piped: plain progress lines instead of the live view
      edgemon demo --run-dir /tmp/demo --breach-at 10 --breach-for 15

    Exit code 0 when stopped (Ctrl-C, SIGTERM, --duration); 1 when a process died or no record
    reached InfluxDB in time (the reason, with the log line that explains it, is printed)."""
    from .demo import run_demo

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = run_demo(run_dir, duration_s=duration, poll_s=poll, breach_at_s=breach_at, breach_for_s=breach_for,
                       first_record_timeout_s=first_record_timeout)
    peaks = summary.get("heap_peak") or {}
    if peaks:
        click.echo(f"firmware heap peak (gc.mem_alloc, of {summary.get('heap_limit', 0)} B): "
                   + ", ".join(f"{k} {b} B" for k, b in peaks.items()))
    for number, text in summary.get("sms") or []:
        click.echo(f"SMS to {number}: {text}")
    if summary.get("failure"):
        click.echo(f"demo failed: {summary['failure']}", err=True)
        raise SystemExit(1)


def _wait_for_signal():
    stop = {"flag": False}

    def handler(*_):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, handler)
    try:
        while not stop["flag"]:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
