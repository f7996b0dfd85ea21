"""`edgemon report daily`: the daily compliance report (PDF and PNG per site) for enforcement staff."""

from __future__ import annotations

import click


def _day(ctx, param, value):
    from .report import ReportError
    from .report.days import parse_day
    try:
        return parse_day(value)
    except ReportError as exc:
        raise click.BadParameter(str(exc)) from None


def _tz(ctx, param, value):
    if value is None:
        return None
    from .report import ReportError
    from .report.days import zone
    try:
        zone(value)
    except ReportError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.group()
def report():
    """Reports for enforcement staff and inspectors."""


@report.command("daily")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="gateway.toml: the sites, their nodes and poll_s, InfluxDB, the keys and the alarms config.")
@click.option("--site", "sites", multiple=True, metavar="SITE", help="A site id from gateway.toml (repeatable).")
@click.option("--all", "all_sites", is_flag=True, help="Every site in gateway.toml.")
@click.option("--date", "day", required=True, metavar="YYYY-MM-DD", callback=_day, help="The calendar day, in --tz.")
@click.option("--tz", default=None, callback=_tz, metavar="ZONE",
              help="The time zone of the day (IANA name); default: gateway.toml [aggregates] timezone "
                   "(Asia/Shanghai), the calendar the day values are computed on.")
@click.option("--out", "out_dir", default="reports", show_default=True, type=click.Path(file_okay=False),
              help="Folder for <site>_<date>.pdf and .png.")
def daily(config_path, sites, all_sites, day, tz, out_dir):
    """Write the day's compliance report of each site: a PDF (A4, Chinese, text searchable) and a
    PNG. It holds each parameter's daily mean against its limit (达标 / 超标 / 无效), an hourly chart
    per parameter with the limit line and flagged or invalid hours shaded, completeness per node
    (records received / expected at the site's poll_s, and the gaps), the day's alarms, and the
    signature check (records accepted, refused for a missing or bad signature).

    \b
    Examples:
      edgemon report daily --config /etc/edgemon/gateway.toml --site qd-plant --date 2026-12-07
      edgemon report daily --config gateway.toml --all --date 2026-12-07 --out /srv/reports

    Exit 0 written (the paths are printed), 1 a config error, an unknown site, a missing font or
    InfluxDB unreachable, 2 bad usage (a bad date or time zone).
    """
    from .configschema import ConfigError
    from .configschema import report as config_report
    from .report import ReportError
    from .report.daily import write_daily_reports

    if bool(sites) == all_sites:
        raise click.UsageError("give --site SITE (one or more) or --all")
    try:
        paths = write_daily_reports(config_path, day, out_dir, sites=None if all_sites else list(sites), tz=tz)
    except ConfigError as exc:
        raise click.ClickException(config_report(exc)) from None
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None
    for p in paths:
        click.echo(str(p))
