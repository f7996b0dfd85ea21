"""Per-node record completeness from `seq`: how many records a node has produced (by its counter),
how many arrived, which are missing and how many came more than once. Pure; the state is plain
JSON so the drain saves it atomically with its cursor and it survives restarts.

A node's state keeps its first and highest seq and the gaps below the highest (ranges not received
yet): a late record (a replay batch) fills its gap; a seq that is neither new nor in a gap is a
duplicate. Gaps are few in practice; past MAX_GAPS the oldest are given up on (still missing).
A record that turns up later from a given-up range counts as received, not as a duplicate: replays
of old records are what fills such ranges, while a node resends (duplicates) only recent records.

One wild record does not move the baseline: a seq more than MAX_JUMP beyond the known range (the
contract already refuses anything a node's 32-bit counter cannot produce) is an incident, counted in
`seq_jumps` and reported (Completeness.incidents, logged by the gateway), not taken into expected or
missing. Only when REBASE_AFTER such records continue each other (a node whose counter really
jumped, e.g. a restored flash) does a new range start; the old one's expected and missing are kept.

`lost` is what the node itself reported dropping (queue_overflow events): its own count since its
queue began when the event carries `lost` (firmware >= 0.3.0; the largest seen, so an event sent
twice or one that repeats an earlier one's loss counts once), else the sum of the events' `dropped`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import lineproto

MAX_GAPS = 1000
# A jump beyond the known range by more than this is an incident, not a gap: 11.6 days of records
# at one a second (a node's queue holds about 30 days of 1-minute records).
MAX_JUMP = 1_000_000
REBASE_AFTER = 10  # jumped records continuing each other before they start a new range
LOSS_KEYS = 8  # queue_overflow events remembered per node to drop a repeat (events without `lost`)


class NodeCompleteness:
    __slots__ = ("first", "last", "received", "duplicates", "gaps", "given_up", "given_up_hi",
                 "jumps", "jump", "lost", "loss_keys", "base_expected", "base_missing", "rebased")

    def __init__(self, first: int | None = None, last: int | None = None, received: int = 0,
                 duplicates: int = 0, gaps: list[list[int]] | None = None, given_up: int = 0,
                 given_up_hi: int | None = None, jumps: int = 0, jump: list[int] | None = None,
                 lost: int = 0, loss_keys: list[Any] | None = None, base_expected: int = 0,
                 base_missing: int = 0, rebased: int = 0):
        self.first = first
        self.last = last
        self.received = received
        self.duplicates = duplicates
        self.gaps = gaps if gaps is not None else []  # sorted [lo, hi] inclusive, all < last
        self.given_up = given_up  # missing records in gaps no longer tracked
        self.given_up_hi = given_up_hi  # the highest seq of those gaps (None: none given up)
        self.jumps = jumps  # records whose seq jumped more than MAX_JUMP beyond the range (incidents)
        self.jump = jump  # [lo, hi, count] of the latest run of such records
        self.lost = lost  # records the node reported dropping (queue_overflow events)
        self.loss_keys = loss_keys if loss_keys is not None else []
        self.base_expected = base_expected  # of the ranges before a rebase
        self.base_missing = base_missing
        self.rebased = rebased

    @property
    def expected(self) -> int:
        return self.base_expected + (0 if self.first is None else self.last - self.first + 1)

    @property
    def missing(self) -> int:
        return self.base_missing + self.given_up + sum(hi - lo + 1 for lo, hi in self.gaps)

    def add(self, seq: int, start: int | None = None) -> bool | None:
        """Take one record's seq; False when it is a duplicate, None when it jumped (an incident).
        start: where a node never seen before is expected to begin (Completeness.starts)."""
        if self.first is None:
            self.first = self.last = seq
            if start is not None and start < seq <= start + MAX_JUMP:
                # Expected from start, not from the first seq that happened to arrive: records lost
                # before this gateway saw any (a broker that lost its session) count as missing.
                self.first = start
                self.gaps.append([start, seq - 1])
            self.received += 1
            return True
        if seq > self.last + MAX_JUMP or seq < self.first - MAX_JUMP:
            return self._jumped(seq)
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

    def _jumped(self, seq: int) -> None:
        self.jumps += 1
        j = self.jump
        if j is not None and j[1] < seq <= j[1] + MAX_JUMP:
            j[1] = seq
            j[2] += 1
        elif j is None or not j[0] <= seq <= j[1]:  # inside the run: sent again, nothing new
            j = self.jump = [seq, seq, 1]
        if j[2] >= REBASE_AFTER:
            # The node's counter really is out there now: a new range, the old one's figures kept.
            lo, hi, n = j
            self.base_expected, self.base_missing = self.expected, self.missing
            self.first, self.last, self.gaps = lo, hi, []
            self.given_up = hi - lo + 1 - n
            self.given_up_hi = hi if self.given_up else None
            self.received += n
            self.jump = None
            self.rebased += 1
        return None

    def add_loss(self, dropped: int, lost: int | None, key: Any) -> int:
        """A queue_overflow event: returns by how much `lost` grew."""
        if lost is not None:
            new = max(self.lost, lost)
        else:
            if key in self.loss_keys:
                return 0  # the same event delivered again
            self.loss_keys = (self.loss_keys + [key])[-LOSS_KEYS:]
            new = self.lost + dropped
        grew, self.lost = new - self.lost, new
        return grew

    def to_json(self) -> list[Any]:
        return [self.first, self.last, self.received, self.duplicates, self.gaps, self.given_up, self.given_up_hi,
                self.jumps, self.jump, self.lost, self.loss_keys, self.base_expected, self.base_missing,
                self.rebased]

    @classmethod
    def from_json(cls, doc: list[Any]) -> NodeCompleteness:
        first, last, received, duplicates, gaps, given_up = doc[:6]
        given_up_hi = doc[6] if len(doc) > 6 else None  # state saved before this field existed
        more = list(doc[7:14]) + [0, None, 0, None, 0, 0, 0][len(doc[7:14]):]  # likewise
        jumps, jump, lost, loss_keys, base_expected, base_missing, rebased = more
        return cls(first, last, received, duplicates, [list(g) for g in gaps], given_up, given_up_hi,
                   jumps, list(jump) if jump else None, lost, [list(k) if isinstance(k, list) else k
                                                                for k in (loss_keys or [])],
                   base_expected, base_missing, rebased)


class Completeness:
    """All nodes, keyed "site/node"; `dirty` holds the nodes changed since the last points."""

    def __init__(self, state: dict[str, Any] | None = None, starts: dict[str, int] | None = None):
        # A node never seen is expected from seq 1, or from where the gateway last confirmed it
        # (starts: "site/node" -> first seq expected).
        self.starts = dict(starts or {})
        self.nodes: dict[str, NodeCompleteness] = {
            key: NodeCompleteness.from_json(doc) for key, doc in (state or {}).items()
        }
        self.dirty: set[str] = set()
        # (site/node, seq, first, last) of each jumped record since the caller last emptied it
        self.incidents: list[tuple[str, int, int | None, int | None]] = []

    def _node(self, site: str, node: str) -> NodeCompleteness:
        key = f"{site}/{node}"
        nc = self.nodes.get(key)
        if nc is None:
            nc = self.nodes[key] = NodeCompleteness()
        self.dirty.add(key)
        return nc

    def add(self, site: str, node: str, seqs: Iterable[int]) -> int:
        """Returns how many of the seqs were duplicates; jumped seqs go to `incidents`."""
        nc = self._node(site, node)
        dups = 0
        for seq in seqs:
            first, last = nc.first, nc.last
            took = nc.add(seq, self.starts.get(f"{site}/{node}", 1) if first is None else None)
            if took is None:
                self.incidents.append((f"{site}/{node}", seq, first, last))
            elif not took:
                dups += 1
        return dups

    def add_loss(self, site: str, node: str, dropped: int, lost: int | None, key: Any) -> int:
        """A node's queue_overflow event; returns by how much its `lost` grew."""
        return self._node(site, node).add_loss(dropped, lost, key)

    def to_json(self) -> dict[str, Any]:
        return {key: nc.to_json() for key, nc in self.nodes.items()}

    def lines(self, time_ms: int, only_dirty: bool = True) -> list[str]:
        """`completeness` points (tags site, node; fields expected, received, missing, duplicates,
        last_seq, lost, seq_jumps)."""
        keys = sorted(self.dirty) if only_dirty else sorted(self.nodes)
        self.dirty = set()
        out = []
        for key in keys:
            site, node = key.split("/", 1)
            nc = self.nodes[key]
            fields = {"expected": nc.expected, "received": nc.received, "missing": nc.missing,
                      "duplicates": nc.duplicates, "last_seq": nc.last, "lost": nc.lost, "seq_jumps": nc.jumps}
            if nc.last is None:
                del fields["last_seq"]  # only loss events from this node so far
            out.append(lineproto.line("completeness", {"site": site, "node": node}, fields, time_ms))
        return out
