"""Logging for edgemon's long-running commands: one line per event on stderr, either key=value
(`kv`, the default: easy to read and to grep) or one JSON object per line (`json`, for journald /
log shippers)."""

from __future__ import annotations

import json
import logging
import sys
import time

FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"
_HANDLER_NAME = "edgemon-stderr"


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        msg = record.getMessage().replace("\n", " | ")
        text = f'ts={ts} level={record.levelname.lower()} logger={record.name} msg="{msg}"'
        if record.exc_info:
            text += ' exc="' + self.formatException(record.exc_info).replace("\n", " | ") + '"'
        return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage()}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(level: int | str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger (idempotent: calling again changes the level and format).
    fmt: "text" (human, for the demo), "kv" or "json"."""
    if isinstance(level, str):
        number = logging.getLevelName(level.upper())
        if not isinstance(number, int):
            raise ValueError(f"unknown log level {level!r}")
        level = number
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_HANDLER_NAME)
        root.addHandler(handler)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif fmt == "kv":
        handler.setFormatter(KeyValueFormatter())
    else:
        handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    root.setLevel(level)
    # Third-party chatter only when debugging.
    for noisy in ("urllib3", "paho", "influxdb_client"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
