"""Node liveness and clock trust, as `node` points (docs/ARCHITECTURE.md section 3). Pure: times are passed in.

- Silence: a node that sent no data for `silent_periods` poll periods gets `online=false` with a
  `reason`; its next record gets `online=true` again. The retained status / last will is handled by
  the ingest (a `node` point per status) and also updates the state here.
- Clock: a record's `ts` is never rewritten. A node whose `ts` runs ahead of the receive time by more
  than `future_tolerance_ms`, or behind by more than `past_tolerance_ms` in a single (non-batch)
  record, or that says `clk: none`, gets a `node` point with `clock_offset_ms` (ts - receive time)
  and `clock` = "future" / "past" / "none" when that changes, and every `report_ms` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import lineproto
from .contract import Record


@dataclass
class _Node:
    poll_ms: int
    last_data_ms: int
    online: bool = True  # as far as data and status tell
    silent: bool = False
    clock: str | None = None  # last reported clock verdict
    clock_offset_ms: int | None = None
    clock_reported_ms: int = 0


def clock_verdict(record: Record, receive_ms: int, in_batch: bool, future_ms: int, past_ms: int) -> str:
    offset = record.ts - receive_ms
    if offset > future_ms:
        return "future"
    if record.clk == "none":
        return "none"
    if not in_batch and -offset > past_ms:
        return "past"
    return "ok"


class Liveness:
    def __init__(self, *, default_poll_s: float = 10.0, silent_periods: float = 3.0,
                 future_tolerance_ms: int = 60_000, past_tolerance_ms: int = 600_000,
                 report_ms: int = 60_000):
        self.default_poll_ms = int(default_poll_s * 1000)
        self.silent_periods = silent_periods
        self.future_ms = future_tolerance_ms
        self.past_ms = past_tolerance_ms
        self.report_ms = report_ms
        self.poll_ms: dict[str, int] = {}
        self.nodes: dict[str, _Node] = {}
        self.skewed_records = 0

    def configure(self, site: str, node: str, poll_s: float, now_ms: int) -> None:
        """A node the config names: watched for silence from now on, even before its first record."""
        key = f"{site}/{node}"
        self.poll_ms[key] = int(poll_s * 1000)
        self.nodes.setdefault(key, _Node(self.poll_ms[key], now_ms))

    def _node(self, site: str, node: str, now_ms: int) -> _Node:
        key = f"{site}/{node}"
        n = self.nodes.get(key)
        if n is None:
            n = self.nodes[key] = _Node(self.poll_ms.get(key, self.default_poll_ms), now_ms)
        return n

    def on_data(self, site: str, node: str, records: list[Record], receive_ms: int, in_batch: bool) -> list[str]:
        n = self._node(site, node, receive_ms)
        n.last_data_ms = receive_ms
        out = []
        verdict, newest = "ok", records[-1]
        for record in records:
            v = clock_verdict(record, receive_ms, in_batch, self.future_ms, self.past_ms)
            if v != "ok":
                self.skewed_records += 1
                verdict, newest = v, record
        offset = newest.ts - receive_ms
        resumed = n.silent or not n.online
        n.online, n.silent = True, False
        due = verdict != n.clock or (verdict != "ok" and receive_ms - n.clock_reported_ms >= self.report_ms)
        if in_batch and verdict == "ok" and n.clock is not None:
            due = due and n.clock != "ok"  # a replay batch alone says little about the clock now
        if due or resumed:
            fields: dict[str, object] = {"online": True}
            if due:
                fields["clock_offset_ms"] = float(offset)
                fields["clock"] = verdict
                n.clock, n.clock_offset_ms, n.clock_reported_ms = verdict, offset, receive_ms
            if resumed:
                fields["reason"] = "data resumed"
            out.append(lineproto.line("node", {"site": site, "node": node}, fields, receive_ms))
        return out

    def on_status(self, site: str, node: str, online: bool, receive_ms: int) -> None:
        n = self._node(site, node, receive_ms)
        n.online = online
        if online:
            n.last_data_ms = max(n.last_data_ms, receive_ms)  # give it a fresh silence window

    def tick(self, now_ms: int) -> list[str]:
        """`node online=false` points for nodes that went silent since the last tick."""
        out = []
        for key, n in self.nodes.items():
            if n.silent or not n.online:
                continue
            silent_ms = now_ms - n.last_data_ms
            if silent_ms > self.silent_periods * n.poll_ms:
                n.silent = True
                site, node = key.split("/", 1)
                reason = (f"silent: no data for {silent_ms / 1000:.0f} s "
                          f"({self.silent_periods:g} poll periods of {n.poll_ms / 1000:g} s)")
                out.append(lineproto.line("node", {"site": site, "node": node},
                                          {"online": False, "reason": reason}, now_ms))
        return out
