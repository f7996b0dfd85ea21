"""End-to-end confirmation, the gateway's half (docs/ARCHITECTURE.md section 6.1): which of each
node's records are durably in a gateway's store, as the node is told. Pure; the journal thread
feeds it (records stored, after the fsync) and publishes what it says is due.

A node frees a record from flash only when a confirmation covers it; a broker's PUBACK means no
more than "the broker holds it", and a broker kill -9 loses what it held. Per node:

- `upto`: every seq <= upto is in a store (this gateway's, or a peer's that claimed it);
- `own`: this gateway's stored seqs above upto, as sorted inclusive ranges [lo, hi];
- `peers`: the same ranges claimed by each peer gateway (several gateways sharing a subscription:
  a node's records pass through any of them, so no one gateway's ranges are contiguous).

The confirmation a node gets: {"upto": U, "ranges": [[lo, hi], ...], "again": 0|1, "gw": id,
"ts": ms}, signed with the node's key (retained, QoS 1, on edge/v1/{site}/{node}/confirm). The
node frees up to U, and further through any of the ranges that continue from its own floor (so a
node whose first records this gateway never saw - they were freed by an older gateway's PUBACK -
still gets its later ones confirmed). "again": 1 asks the node to send every unconfirmed record
now (the gateway has just (re)connected: what was sent while it was away may have had no
subscriber).

A claim, for peer gateways only: {"gw": id, "upto": U, "ranges": own ranges} on
edge/v1/{site}/{node}/stored/{gw}, retained and signed with the node's key: each gateway merges the
others' claims with its own ranges, so the confirmation is exact per node whichever gateway stored
which record. Claims are only ever true (made after the fsync), so losing one (a broker crash) only
delays a confirmation; a record is never confirmed that no store holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .keys import signed_payload

MAX_RANGES = 256  # a claim's ranges (beyond: not claimed yet, the peers confirm less, never more)
# Ranges above upto in a confirmation (the firmware reads a few): the highest ones, since a range
# that continues the node's own floor is above any gap the node skipped (a queue overflow).
NODE_RANGES = 4


def add_range(ranges: list[list[int]], lo: int, hi: int) -> None:
    """Merge [lo, hi] into sorted, disjoint, non-adjacent ranges, in place."""
    i = 0
    while i < len(ranges) and ranges[i][1] < lo - 1:
        i += 1
    j = i
    while j < len(ranges) and ranges[j][0] <= hi + 1:
        lo = min(lo, ranges[j][0])
        hi = max(hi, ranges[j][1])
        j += 1
    ranges[i:j] = [[lo, hi]]


def to_ranges(seqs: Iterable[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def _above(ranges: list[list[int]], upto: int) -> list[list[int]]:
    return [[max(lo, upto + 1), hi] for lo, hi in ranges if hi > upto]


class NodeConfirm:
    __slots__ = ("upto", "own", "peers", "dirty", "again", "published_ms")

    def __init__(self, upto: int = 0):
        self.upto = upto
        self.own: list[list[int]] = []
        self.peers: dict[str, list[list[int]]] = {}
        self.dirty = False  # changed since the last confirmation published
        self.again = False  # the next confirmation asks the node to resend what is unconfirmed
        self.published_ms = 0

    def union(self) -> list[list[int]]:
        out = [r[:] for r in self.own]
        for ranges in self.peers.values():
            for lo, hi in ranges:
                add_range(out, lo, hi)
        return out

    def stored(self, seqs: Iterable[int]) -> None:
        for lo, hi in to_ranges(s for s in seqs if s > self.upto):
            add_range(self.own, lo, hi)
            self.dirty = True
        self._advance()

    def peer(self, gw: str, upto: int, ranges: list[list[int]]) -> None:
        if upto > self.upto:
            self.upto = upto
            self.dirty = True
        kept: list[list[int]] = []
        for lo, hi in ranges:
            add_range(kept, lo, hi)
        if kept != self.peers.get(gw):
            self.peers[gw] = kept
            self.dirty = True
        self._advance()

    def _advance(self) -> None:
        for lo, hi in self.union():
            if lo <= self.upto + 1 and hi > self.upto:
                self.upto = hi
                self.dirty = True
        self.own = _above(self.own, self.upto)
        for gw in self.peers:
            self.peers[gw] = _above(self.peers[gw], self.upto)


class Confirmer:
    """Every node's NodeConfirm, and the messages that are due (journal thread)."""

    def __init__(self, gateway_id: str, interval_ms: int = 1000, state: dict[str, int] | None = None):
        self.gateway_id = gateway_id
        self.interval_ms = interval_ms
        self.nodes: dict[str, NodeConfirm] = {name: NodeConfirm(upto) for name, upto in (state or {}).items()}

    def node(self, site: str, node: str) -> NodeConfirm:
        name = f"{site}/{node}"
        n = self.nodes.get(name)
        if n is None:
            n = self.nodes[name] = NodeConfirm()
        return n

    def stored(self, site: str, node: str, seqs: Iterable[int]) -> None:
        self.node(site, node).stored(seqs)

    def peer_claim(self, site: str, node: str, payload: bytes) -> str | None:
        """A peer's claim (already signature-checked); returns a reason when it is not one."""
        try:
            doc = json.loads(payload)
            gw, upto, ranges = doc["gw"], doc["upto"], doc["ranges"]
            if not isinstance(gw, str) or type(upto) is not int or upto < 0 or not isinstance(ranges, list) or \
                    not all(isinstance(r, list) and len(r) == 2 and all(type(x) is int for x in r) and r[0] <= r[1]
                            for r in ranges):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return "a claim is {gw, upto, ranges: [[lo, hi], ...]}"
        if gw != self.gateway_id:  # our own retained claim, back from the broker: nothing new
            self.node(site, node).peer(gw, upto, ranges)
        return None

    def ask_again(self) -> None:
        """The gateway (re)connected: every known node is told, and asked to resend what waits."""
        for n in self.nodes.values():
            n.again = n.dirty = True

    def due(self, now_ms: int) -> list[tuple[str, NodeConfirm]]:
        """Nodes whose confirmation changed and whose last one is at least interval_ms old."""
        return [(name, n) for name, n in self.nodes.items()
                if n.dirty and now_ms - n.published_ms >= self.interval_ms]

    def confirmation(self, n: NodeConfirm, now_ms: int, key: bytes) -> bytes:
        body = {"upto": n.upto, "ranges": n.union()[-NODE_RANGES:], "again": 1 if n.again else 0,
                "gw": self.gateway_id, "ts": now_ms}
        return signed_payload(json.dumps(body, separators=(",", ":")).encode(), key)

    def claim(self, n: NodeConfirm, key: bytes) -> bytes:
        body = {"gw": self.gateway_id, "upto": n.upto, "ranges": n.own[:MAX_RANGES]}
        return signed_payload(json.dumps(body, separators=(",", ":")).encode(), key)

    def published(self, n: NodeConfirm, now_ms: int) -> None:
        n.dirty = n.again = False
        n.published_ms = now_ms

    def state(self) -> dict[str, Any]:
        """What is saved (the confirmed point per node); ranges above it are not: a restart only
        makes the nodes send those records again."""
        return {name: n.upto for name, n in self.nodes.items()}


def confirm_topic(site: str, node: str) -> str:
    return f"edge/v1/{site}/{node}/confirm"


def claim_topic(site: str, node: str, gateway_id: str) -> str:
    return f"edge/v1/{site}/{node}/stored/{gateway_id}"


CLAIM_SUBSCRIPTION = "edge/v1/+/+/stored/+"
