"""Limits, alarms and their SMS: limit profiles as data, rule kinds (rules/), the alarm state
machine (engine.py), the gateway observer (observer.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def build_observer(config_path: Path, state_dir: Path, influx_write: Callable[[list[str]], None]):
    """The observer `gateway run` registers when gateway.toml has `[alarms] config = ...`.
    Raises ConfigError (file and field named) on a bad alarms config or limit profile."""
    from .config import load
    from .observer import AlarmObserver

    return AlarmObserver(load(Path(config_path)), Path(state_dir), influx_write)


__all__ = ["build_observer"]
