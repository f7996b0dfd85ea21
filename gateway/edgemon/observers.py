"""Observers (the alarm engine) see what the gateway durably accepted. run() below runs on the
observer thread (thread "edgemon-observer", started by Gateway.start); the journal thread
(journal.py) queues ("records" | "status" | "event", site, node, what, receive_ms) once a group is
stored, and ("tick", now_ms) about once a second. An observer that raises is logged and counted
(observer_errors); the others, and the gateway, go on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from .contract import Record, Status

if TYPE_CHECKING:
    from .ingest import Gateway

log = logging.getLogger("edgemon.ingest")  # all the ingest's parts log as before the split

STOP = object()  # queued by Gateway.stop(): run() returns


class Observer(Protocol):
    """What the gateway calls, from its observer thread, after data is durably accepted."""

    def on_records(self, site: str, node: str, records: list[Record], receive_ms: int) -> None: ...

    def on_status(self, site: str, node: str, status: Status, receive_ms: int) -> None: ...

    def on_tick(self, now_ms: int) -> None: ...

    # Optional: on_event(site, node, event: Event, receive_ms), called for each accepted node event.


def run(gw: Gateway) -> None:
    """The observer thread's loop: returns at STOP."""
    while True:
        event = gw._obs_queue.get()
        if event is STOP:
            return
        if not gw._observers:
            continue
        kind = event[0]
        for obs in gw._observers:
            try:
                if kind == "records":
                    obs.on_records(event[1], event[2], event[3], event[4])
                elif kind == "status":
                    obs.on_status(event[1], event[2], event[3], event[4])
                elif kind == "event":
                    on_event = getattr(obs, "on_event", None)
                    if on_event is not None:
                        on_event(event[1], event[2], event[3], event[4])
                elif kind == "tick":
                    obs.on_tick(event[1])
            except Exception:  # noqa: BLE001 - an observer's bug must not stop the gateway
                gw._count("observer_errors")
                log.exception("observer %r failed on %s", obs, kind)
