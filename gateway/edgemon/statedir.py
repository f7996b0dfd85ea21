"""Which gateway state folder a read-only command looks at: `--config gateway.toml` (its
[gateway] state_dir, relative to the file's folder) or `--state-dir`; refused, naming both, when the
folder does not exist (an empty answer from the wrong folder would read as "nothing to report")."""

from __future__ import annotations

import tomllib
from pathlib import Path

import click

DEFAULT_STATE_DIR = Path("run/gateway")


def state_dir_from_config(config: Path) -> Path:
    """[gateway] state_dir of gateway.toml, resolved as the gateway resolves it. Reads only that field,
    so a config with problems elsewhere (a missing keys file) still tells where its state is."""
    try:
        doc = tomllib.loads(Path(config).read_text("utf-8"))
    except FileNotFoundError:
        raise click.ClickException(f"{config}: file not found (--config takes the gateway's gateway.toml)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{config}: not valid TOML: {exc}") from None
    value = (doc.get("gateway") or {}).get("state_dir")
    if not isinstance(value, str) or not value:
        raise click.ClickException(f"{config}: gateway.state_dir: missing (the gateway's state folder)")
    path = Path(value)
    return path if path.is_absolute() else Path(config).parent / path


def resolve(config: Path | None, state_dir: Path | None, sub: str = "") -> Path:
    """The folder to read: from --config if given, else --state-dir, else ./run/gateway; plus `sub`.
    Exits with a clear message when it does not exist."""
    if config is not None:
        base, source = state_dir_from_config(config), f"gateway.state_dir in {config}"
    elif state_dir is not None:
        base, source = Path(state_dir), "--state-dir"
    else:
        base, source = DEFAULT_STATE_DIR, "the default --state-dir"
    folder = base / sub if sub else base
    if not folder.is_dir():
        raise click.ClickException(
            f"{folder}: no such folder (from {source}): the gateway has not run with this state folder yet; "
            "pass --config with the gateway's gateway.toml, or --state-dir with its state_dir")
    return folder


config_option = click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                             help="The gateway's gateway.toml: its [gateway] state_dir is the folder read.")
state_dir_option = click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                                help=f"The gateway's state folder (default {DEFAULT_STATE_DIR}/); "
                                     "--config overrides it.")
