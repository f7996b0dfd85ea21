"""The `edgemon` command: one entry point; each concern's commands live in its own module.

Commands are imported only when invoked, so `edgemon gateway run` (the service the systemd unit
starts) loads the runtime modules alone, never the development tools in `edgemon.dev` or the
benchmarks in `edgemon.bench` (tests/gateway/test_rooms.py checks it against a running gateway).
"""

import importlib

import click

from . import __version__

# command name -> "module:attribute", relative to this package
COMMANDS = {
    "gateway": "gateway_cli:gateway",        # runtime: the gateway service and its state
    "quarantine": "gateway_cli:quarantine",  # runtime: inspect quarantined payloads
    "alarms": "alarm_cli:alarms",            # runtime: alarm state and history
    "sms": "alarm_cli:sms",                  # runtime: the SMS modem and outbox
    "config": "config_cli:config",           # runtime: JSON Schemas of the config files
    "node": "node_cli:node",                 # runtime: commands to a node (signed, acknowledged)
    "hj212": "hj212_cli:hj212",              # runtime: HJ 212 packets (check a platform link)
    "report": "report_cli:report",           # runtime: the daily compliance report (PDF, PNG)
    "dashboards": "dashboards_cli:dashboards",  # runtime: the inspectors' Grafana dashboards (build, publish)
    "broker": "broker_cli:broker",           # server setup: CA, certificates, accounts, revoking
    "stack": "dev.stack_cli:stack",          # development: local Mosquitto + InfluxDB
    "simulate": "dev.stack_cli:simulate",    # development: simulated analyzers
    "demo": "dev.stack_cli:demo",            # development: the whole system locally
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(f".{module}", __package__), attr)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="edgemon")
def main():
    """Outfall edge monitoring: gateway, alarms and SMS; simulated analyzers, local stack and demo."""


if __name__ == "__main__":
    main()
