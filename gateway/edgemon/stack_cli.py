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
def stack(run_dir: Path):
    """Start our own Mosquitto and InfluxDB on free loopback ports until Ctrl-C."""
    from .stack import LocalStack

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with LocalStack(run_dir) as s:
        for k, v in s.describe().items():
            click.echo(f"{k:10} {v}")
        click.echo(f"{'gateway':10} user {s.gateway_user} password {s.gateway_password}")
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
def simulate(port, unit, base, amplitude, period, word_order, fixed):
    """Serve a simulated COD analyzer (Modbus RTU over TCP) until Ctrl-C."""
    from .simulator import AnalyzerSimulator, cod_profile

    sim = AnalyzerSimulator(cod_profile(base, amplitude, period_s=period, word_order=word_order),
                            port=port, unit=unit)
    sim.set_value(fixed)
    with sim:
        click.echo(f"COD analyzer, unit {unit}, Modbus RTU over TCP on 127.0.0.1:{sim.port} ({word_order})")
        _wait_for_signal()


@click.command()
@click.option("--run-dir", type=click.Path(path_type=Path), default=Path("run/demo"), show_default=True)
@click.option("--duration", type=float, default=None, help="Stop by itself after this many seconds.")
@click.option("--poll", type=float, default=2.0, show_default=True, help="Node poll period, s.")
def demo(run_dir: Path, duration, poll):
    """Run the whole system locally with three simulated sites and show a live table."""
    from .demo import run_demo

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = run_demo(run_dir, duration_s=duration, poll_s=poll)
    peaks = summary.get("heap_peak") or {}
    if peaks:
        click.echo("firmware heap peak (gc.mem_alloc): " +
                   ", ".join(f"{site} {b} B" for site, b in peaks.items()))


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
