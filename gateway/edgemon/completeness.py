"""Per-node record completeness from `seq`: how many records a node has produced (by its counter),
how many arrived, which are missing and how many came more than once. Pure; the state is plain
JSON so the drain saves it atomically with its cursor and it survives restarts.

A node's state keeps its first and highest seq and the gaps below the highest (ranges not received
yet): a late record (a replay batch) fills its gap; a seq that is neither new nor in a gap is a
duplicate. Gaps are few in practice; past MAX_GAPS the oldest are given up on (still missing).
A record that turns up later from a given-up range counts as received, not as a duplicate: replays
of old records are what fills such ranges, while a node resends (duplicates) only recent records.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import lineproto

MAX_GAPS = 1000


class NodeCompleteness:
    __slots__ = ("first", "last", "received", "duplicates", "gaps", "given_up", "given_up_hi")

    def __init__(self, first: int | None = None, last: int | None = None, received: int = 0,
                 duplicates: int = 0, gaps: list[list[int]] | None = None, given_up: int = 0,
                 given_up_hi: int | None = None):
        self.first = first
        self.last = last
        self.received = received
        self.duplicates = duplicates
        self.gaps = gaps if gaps is not None else []  # sorted [lo, hi] inclusive, all < last
        self.given_up = given_up  # missing records in gaps no longer tracked
        self.given_up_hi = given_up_hi  # the highest seq of those gaps (None: none given up)

    @property
    def expected(self) -> int:
        return 0 if self.first is None else self.last - self.first + 1

    @property
    def missing(self) -> int:
        return self.given_up + sum(hi - lo + 1 for lo, hi in self.gaps)

    def add(self, seq: int) -> bool:
        """Take one record's seq; False when it is a duplicate."""
        if self.first is None:
            self.first = self.last = seq
            self.received = 1
            return True
        if seq > self.last:
            if seq > self.last + 1:
                self.gaps.append([self.last + 1, seq - 1])
                if len(self.gaps) > MAX_GAPS:
                    lo, hi = self.gaps.pop(0)
                    self.given_up += hi - lo + 1
                    self.given_up_hi = hi
            self.last = seq
            self.received += 1
            return True
        if seq < self.first:
            # Older than anything seen (the node replays from before we started): widen the range.
            if seq < self.first - 1:
                self.gaps.insert(0, [seq + 1, self.first - 1])
            self.first = seq
            self.received += 1
            return True
        for i, (lo, hi) in enumerate(self.gaps):
            if lo <= seq <= hi:
                if lo == hi:
                    del self.gaps[i]
                elif seq == lo:
                    self.gaps[i][0] = seq + 1
                elif seq == hi:
                    self.gaps[i][1] = seq - 1
                else:
                    self.gaps[i : i + 1] = [[lo, seq - 1], [seq + 1, hi]]
                self.received += 1
                return True
            if lo > seq:
                break
        if self.given_up and self.given_up_hi is not None and seq <= self.given_up_hi:
            self.given_up -= 1  # late from a range no longer tracked (see the module docstring)
            self.received += 1
            return True
        self.duplicates += 1
        return False

    def to_json(self) -> list[Any]:
        return [self.first, self.last, self.received, self.duplicates, self.gaps, self.given_up, self.given_up_hi]

    @classmethod
    def from_json(cls, doc: list[Any]) -> NodeCompleteness:
        first, last, received, duplicates, gaps, given_up = doc[:6]
        given_up_hi = doc[6] if len(doc) > 6 else None  # state saved before this field existed
        return cls(first, last, received, duplicates, [list(g) for g in gaps], given_up, given_up_hi)


class Completeness:
    """All nodes, keyed "site/node"; `dirty` holds the nodes changed since the last points."""

    def __init__(self, state: dict[str, Any] | None = None):
        self.nodes: dict[str, NodeCompleteness] = {
            key: NodeCompleteness.from_json(doc) for key, doc in (state or {}).items()
        }
        self.dirty: set[str] = set()

    def add(self, site: str, node: str, seqs: Iterable[int]) -> int:
        """Returns how many of the seqs were duplicates."""
        key = f"{site}/{node}"
        nc = self.nodes.get(key)
        if nc is None:
            nc = self.nodes[key] = NodeCompleteness()
        dups = 0
        for seq in seqs:
            if not nc.add(seq):
                dups += 1
        self.dirty.add(key)
        return dups

    def to_json(self) -> dict[str, Any]:
        return {key: nc.to_json() for key, nc in self.nodes.items()}

    def lines(self, time_ms: int, only_dirty: bool = True) -> list[str]:
        """`completeness` points (tags site, node; fields expected, received, missing, duplicates)."""
        keys = sorted(self.dirty) if only_dirty else sorted(self.nodes)
        self.dirty = set()
        out = []
        for key in keys:
            site, node = key.split("/", 1)
            nc = self.nodes[key]
            out.append(lineproto.line(
                "completeness", {"site": site, "node": node},
                {"expected": nc.expected, "received": nc.received, "missing": nc.missing,
                 "duplicates": nc.duplicates, "last_seq": nc.last},
                time_ms,
            ))
        return out
