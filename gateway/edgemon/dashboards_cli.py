"""`edgemon dashboards build|publish`: the inspectors' Grafana dashboards from the gateway's config."""

from __future__ import annotations

import os

import click


def _setup(config_path: str | None, demo: bool):
    from .configschema import ConfigError
    from .configschema import report as config_report
    from .dashboards import demo_setup, load_setup
    if bool(config_path) == demo:
        raise click.UsageError("give --config gateway.toml (the sites, limits and time zone come from it) "
                               "or --demo (the sites of make demo)")
    try:
        return demo_setup() if demo else load_setup(config_path)
    except ConfigError as exc:
        raise click.ClickException(config_report(exc)) from None


@click.group()
def dashboards():
    """Grafana dashboards (InfluxQL) for inspectors: overview, site detail, alarms, data completeness
    and fleet health. Limits and colours come from each site's limit profile and overrides in the
    alarms config, Chinese names and units from params.toml: rebuild after changing them."""


@dashboards.command("build")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="gateway.toml: its [sites], [liveness], [aggregates] timezone and the alarms.toml it names.")
@click.option("--demo", is_flag=True, help="The three sites of make demo (what dashboards/ in the repository holds).")
@click.option("--out", "out_dir", default="dashboards", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the JSON files (a Grafana file provider reads it: server/grafana/provisioning).")
def build(config_path, demo, out_dir):
    """Write the five dashboards as Grafana JSON into --out.

    \b
    Examples:
      edgemon dashboards build --config /etc/edgemon/gateway.toml --out /var/lib/grafana/dashboards/edgemon
      edgemon dashboards build --demo            # regenerates the repository's dashboards/

    Exit 0 written (the paths are printed), 1 a config error (file, field and fix), 2 bad usage.
    """
    from .dashboards import write_dashboards
    setup = _setup(config_path, demo)
    for path in write_dashboards(setup, out_dir):
        click.echo(str(path))


@dashboards.command("publish")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="gateway.toml (sites, limits; [influx] url, database, username and the password's variable).")
@click.option("--demo", is_flag=True, help="The sites of make demo.")
@click.option("--grafana-url", default=lambda: os.environ.get("GRAFANA_URL", "http://127.0.0.1:3000"),
              show_default="$GRAFANA_URL or http://127.0.0.1:3000", help="Grafana's address.")
@click.option("--influx-url", default=None,
              help="InfluxDB's address as Grafana reaches it (default: gateway.toml [influx] url).")
@click.option("--database", default=None, help="The InfluxDB database (default: gateway.toml [influx] database).")
@click.option("--folder", "folder_uid", default="edgemon", show_default=True, help="Uid of the Grafana folder.")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds per HTTP request.")
def publish(config_path, demo, grafana_url, influx_url, database, folder_uid, timeout):
    """Push the InfluxDB datasource and the five dashboards to a running Grafana (HTTP API).

    Grafana credentials come from the environment, never from a file: GRAFANA_TOKEN (a service
    account token; Admin role, since datasources need it) or GRAFANA_USER and GRAFANA_PASSWORD.
    The InfluxDB password (for InfluxDB 2.x: a token) comes from the variable that gateway.toml's
    [influx] password_env or token_env names, or EDGEMON_INFLUX_PASSWORD.

    \b
    Examples:
      GRAFANA_TOKEN=glsa_... edgemon dashboards publish --config /etc/edgemon/gateway.toml \\
          --grafana-url http://127.0.0.1:3000 --influx-url http://influxdb:8086
      edgemon dashboards publish --demo --influx-url http://127.0.0.1:8086

    The datasource keeps uid edgemon-influx (the dashboards name it), the dashboards go into the
    folder --folder, overwriting earlier versions. Exit 0 published (the URLs are printed), 1 a
    config error, Grafana unreachable, a refused token or a refused payload (one line with the fix).
    """
    from .dashboards import build_all
    from .dashboards.publish import PublishError, publish as push, secret_from_env
    setup = _setup(config_path, demo)
    token = os.environ.get("GRAFANA_TOKEN")
    user, password = os.environ.get("GRAFANA_USER"), os.environ.get("GRAFANA_PASSWORD")
    if not token and not user:
        raise click.ClickException("no Grafana credentials: export GRAFANA_TOKEN=<service account token> "
                                   "(or GRAFANA_USER and GRAFANA_PASSWORD)")
    influx_password = secret_from_env(setup.influx_password_env) or os.environ.get("EDGEMON_INFLUX_PASSWORD")
    if setup.influx_password_env and influx_password is None:
        raise click.ClickException(f"{setup.source}: influx: environment variable {setup.influx_password_env} "
                                   f"is not set; fix: export {setup.influx_password_env}=... (the password "
                                   "Grafana's datasource will use)")
    try:
        done = push(build_all(setup), grafana_url, influx_url=influx_url or setup.influx_url,
                    database=database or setup.influx_db, influx_user=setup.influx_user,
                    influx_password=influx_password, token=token, user=user, password=password,
                    folder_uid=folder_uid, timeout=timeout)
    except PublishError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"datasource {done.datasource}; folder {folder_uid} {done.folder}")
    for url in done.dashboards:
        click.echo(url)
