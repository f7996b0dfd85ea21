"""Logging for edgemon's long-running commands: one concise line per event on stderr."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"
_HANDLER_NAME = "edgemon-stderr"


def setup_logging(level: int | str = "INFO") -> None:
    """Configure the root logger (idempotent: calling again only changes the level)."""
    if isinstance(level, str):
        number = logging.getLevelName(level.upper())
        if not isinstance(number, int):
            raise ValueError(f"unknown log level {level!r}")
        level = number
    root = logging.getLogger()
    if not any(h.get_name() == _HANDLER_NAME for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
        root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter only when debugging.
    for noisy in ("urllib3", "paho"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
