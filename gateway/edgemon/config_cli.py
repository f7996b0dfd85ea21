"""`edgemon config schema`: the JSON Schemas of the config files, for editors (e.g. Taplo / Even Better
TOML: a `#:schema ./gateway.schema.json` first line in gateway.toml)."""

from __future__ import annotations

import json

import click

KINDS = ("gateway", "alarms", "profile")


@click.group()
def config():
    """The config files: gateway.toml, alarms.toml, limit profiles."""


@config.command("schema")
@click.argument("kind", type=click.Choice(KINDS))
def schema(kind: str):
    """Print the JSON Schema of gateway.toml (gateway), alarms.toml (alarms) or a limit profile (profile).

    \b
    Example:
      edgemon config schema gateway > gateway.schema.json"""
    if kind == "gateway":
        from .config import schema as make
    else:
        from .alarms.config import schema as alarms_schema

        def make():
            return alarms_schema(kind)
    click.echo(json.dumps(make(), indent=2, ensure_ascii=False))
