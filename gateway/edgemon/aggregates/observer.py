"""The aggregates' gateway observer (observer thread, observers.py): counts the records the gateway
accepted, computes the periods that are over every `compute_every_s`, spools their `aggregate` points
(line spool `aggregate_lines.json`, written to InfluxDB by its own thread) and hands them to the
listeners (the HJ 212 forwarder, which queues them durably) before they leave the outbox."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from ..contract import Record, Status
from ..linesink import LineSink
from .engine import Aggregator, Point
from .lines import point_line

log = logging.getLogger(__name__)
SPOOL = "aggregate_lines.json"


class AggregateObserver:
    def __init__(self, aggregator: Aggregator, state_dir: Path, influx_write: Callable[[list[str]], None], *,
                 compute_every_s: float = 5.0, clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000):
        self.aggregator = aggregator
        self.lines = LineSink(Path(state_dir), influx_write, SPOOL, "edgemon-aggregate-lines").start()
        self.listeners: list[Callable[[list[Point]], None]] = []
        self.every_ms = int(compute_every_s * 1000)
        self.clock_ms = clock_ms
        self._last = 0

    def on_records(self, site: str, node: str, records: list[Record], receive_ms: int) -> None:
        self.aggregator.add(site, node, records, self.clock_ms())

    def on_status(self, site: str, node: str, status: Status, receive_ms: int) -> None:
        pass

    def on_tick(self, now_ms: int) -> None:
        if now_ms - self._last < self.every_ms:
            return
        self._last = now_ms
        self.flush(now_ms)

    def flush(self, now_ms: int) -> list[Point]:
        """Compute what is over and hand it on; returns the points handed on."""
        self.aggregator.compute(now_ms)
        points = self.aggregator.pending()
        if not points:
            return []
        self.lines.put([point_line(p) for p in points])
        for listener in self.listeners:
            listener(points)  # raises: the points stay in the outbox and are handed on again next time
        self.aggregator.handed_on(points)
        log.debug("aggregates: %d points handed on", len(points))
        return points

    def stop(self, timeout_s: float = 5.0) -> None:
        self.lines.stop(timeout_s)
        self.aggregator.store.close()


def units() -> dict[str, str]:
    """code -> unit, from data/params.toml."""
    import tomllib
    table = tomllib.loads((Path(__file__).parents[1] / "data" / "params.toml").read_text("utf-8"))
    return {code: str(entry.get("unit", "")) for code, entry in table.items()}


def build_observer(loaded, influx_write: Callable[[list[str]], None]) -> AggregateObserver | None:
    """The observer for a loaded gateway.toml (config.LoadedConfig), or None when [aggregates] enabled = false."""
    from .engine import SiteSettings
    from .store import AggregateStore
    a = loaded.aggregates
    if not a.get("enabled", True):
        return None
    state_dir = loaded.gateway.state_dir / "aggregates"
    sites = {site: SiteSettings(medium=s["medium"], flow=s["flow"], poll_s=s["poll_s"])
             for site, s in loaded.sites.items()}
    default = SiteSettings(poll_s=loaded.gateway.default_poll_s)
    aggregator = Aggregator(AggregateStore(state_dir), sites, units=units(), tz=a.get("timezone", "Asia/Shanghai"),
                            close_after_s=a.get("close_after_s", 60.0), retention_days=a.get("retention_days", 40.0),
                            default_site=default)
    return AggregateObserver(aggregator, state_dir, influx_write)
