"""The v1 contract's vocabulary: identifier and code patterns, topic kinds, HJ 212 flag letters, clock
words, the bounds of ts, seq and cn, the parsed values (Topic, Reading, Record, Status, Event) and
ContractError. docs/ARCHITECTURE.md section 3 is the contract in words."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
PARAM_RE = re.compile(r"[a-z][0-9]{5}")
SIG_RE = re.compile(r"[0-9a-fA-F]{64}")

TOPIC_PREFIX = ("edge", "v1")
KINDS = ("data", "status", "event", "cmd", "cmd/ack")
FLAGS = ("N", "F", "M", "S", "D", "C", "T", "B")
CLOCKS = ("ntp", "rtc", "none")

# A plausible sample time, in ms: 2000-01-01T00:00:00Z <= ts < 2100-01-01T00:00:00Z.
TS_MIN_MS = 946_684_800_000
TS_MAX_MS = 4_102_444_800_000

# seq as a node can produce it: the firmware's counter is an unsigned 32-bit integer (its flash
# queue keeps seqs in uint32 arrays and names segments by 8 hex digits).
SEQ_MAX = 2**32 - 1
# A connection id [boot, connection] (status `cn`): two counters of the node, below 2^53.
CN_MAX = 2**53 - 1
EVENT_MAX_BYTES = 16 * 1024  # an event is a small notice; larger ones are quarantined unread


class ContractError(ValueError):
    """A topic or payload that breaks the v1 contract; `reason` says which member and why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Topic:
    site: str
    node: str
    kind: str  # one of KINDS


@dataclass(frozen=True, slots=True)
class Reading:
    value: float | None  # None: the node had no value (JSON null)
    flag: str  # one of FLAGS


@dataclass(frozen=True, slots=True)
class Record:
    ts: int  # sample time, ms since the Unix epoch (UTC)
    seq: int
    clk: str | None  # one of CLOCKS, or None when the node did not say
    readings: dict[str, Reading]


@dataclass(frozen=True, slots=True)
class Status:
    state: str  # "online" / "offline" (the last will); other words are kept as sent
    fw: str | None = None
    up: float | None = None
    heap: float | None = None
    rssi: float | None = None
    queue: float | None = None
    clk: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    cn: tuple[int, int] | None = None  # connection id (boot, connection); firmware >= 0.3.0

    @property
    def online(self) -> bool:
        return self.state == "online"


@dataclass(frozen=True, slots=True)
class Event:
    ts: int  # when the node noticed it, ms since the Unix epoch (the node's clock)
    kind: str  # "boot", "queue_overflow", "analyzer_fault", ... (an identifier)
    detail: Any = None  # any JSON value; for queue_overflow {"dropped", "total", "lost"}
