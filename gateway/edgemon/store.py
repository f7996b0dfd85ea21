"""The gateway's durable store: an append-only, fsync'd log of frames on local disk (a write-ahead
log). A message is acknowledged to the broker only once its frame is on disk; a writer drains the
log into InfluxDB and records how far it got in a cursor file.

Layout under `<state_dir>/wal/`: segment files `00000000000000000001.seg`, ... each a run of frames
`<u32 body length><u32 crc32(body)><body>`, and `cursor.json` (segment, offset, plus whatever state
the drain keeps beside it, written atomically). A crash may leave a torn frame at the end of the
last segment: opening the store cuts it off (it was never acknowledged). Frames between the cursor
and the end are drained again after a restart; InfluxDB writes are idempotent, so that is harmless.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HEADER = struct.Struct("<II")
SEGMENT_SUFFIX = ".seg"
CURSOR_FILE = "cursor.json"
MAX_FRAME = 256 * 1024 * 1024


class StoreError(RuntimeError):
    pass


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


def _segment_name(number: int) -> str:
    return f"{number:020d}{SEGMENT_SUFFIX}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _valid_length(path: Path) -> int:
    """Length of the run of whole, checksummed frames at the start of a segment file."""
    good = 0
    with open(path, "rb") as f:
        while True:
            head = f.read(HEADER.size)
            if len(head) < HEADER.size:
                return good
            length, crc = HEADER.unpack(head)
            if length > MAX_FRAME:
                return good
            body = f.read(length)
            if len(body) < length or zlib.crc32(body) != crc:
                return good
            good += HEADER.size + length


class Store:
    """Thread-safe for one appender and one reader (the drain)."""

    def __init__(self, directory: str | Path, segment_bytes: int = 64 * 1024 * 1024, fsync: bool = True):
        self.dir = Path(directory)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._appended = threading.Condition(self._lock)
        segments = self.segments()
        if segments:
            last = segments[-1]
            path = self.dir / _segment_name(last)
            size = path.stat().st_size
            good = _valid_length(path)
            if good != size:
                log.warning("wal: cut a torn frame off %s (%d of %d bytes kept; never acknowledged)",
                            path.name, good, size)
                with open(path, "r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
            self._segment = last
            self._size = good
        else:
            self._segment = 1
            self._size = 0
        self._file = open(self.dir / _segment_name(self._segment), "ab")
        if not segments:
            _fsync_dir(self.dir)
        self._end = Position(self._segment, self._size)
        self._closed = False

    # ------------------------------------------------------------------ appending

    def append(self, bodies: list[bytes]) -> Position:
        """Append frames and make them durable (one fsync for all). Returns the new end."""
        with self._lock:
            if self._closed:
                raise StoreError("store closed")
            if self._size >= self.segment_bytes:
                self._rotate()
            chunks = []
            for body in bodies:
                chunks.append(HEADER.pack(len(body), zlib.crc32(body)))
                chunks.append(body)
            data = b"".join(chunks)
            try:
                self._file.write(data)
                self._file.flush()
                if self.fsync:
                    os.fdatasync(self._file.fileno())
            except BaseException:
                # A write that failed part-way (disk full) must not leave a torn frame for the retry
                # to land behind: cut the file back to the last whole frame before re-raising.
                self._discard_tail()
                raise
            self._size += len(data)
            self._end = Position(self._segment, self._size)
            self._appended.notify_all()
            return self._end

    def _discard_tail(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass  # its buffer could not be flushed either: the truncate below drops it
        path = self.dir / _segment_name(self._segment)
        with open(path, "r+b") as f:
            f.truncate(self._size)
            f.flush()
            os.fsync(f.fileno())
        self._file = open(path, "ab")

    def _rotate(self) -> None:
        self._file.close()
        self._segment += 1
        self._size = 0
        self._file = open(self.dir / _segment_name(self._segment), "ab")
        _fsync_dir(self.dir)

    @property
    def end(self) -> Position:
        with self._lock:
            return self._end

    def wait_for_data(self, after: Position, timeout: float) -> Position:
        """Block until the durable end is past `after` (or timeout); returns the end."""
        with self._lock:
            if self._end <= after:
                self._appended.wait(timeout)
            return self._end

    def wake(self) -> None:
        with self._lock:
            self._appended.notify_all()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._file.close()
                self._appended.notify_all()

    # ------------------------------------------------------------------ reading (the drain)

    def segments(self) -> list[int]:
        out = []
        for p in self.dir.iterdir():
            if p.name.endswith(SEGMENT_SUFFIX):
                try:
                    out.append(int(p.name[: -len(SEGMENT_SUFFIX)]))
                except ValueError:
                    continue
        return sorted(out)

    def read(self, start: Position, end: Position, max_bytes: int = 8 * 1024 * 1024) -> tuple[list[bytes], Position]:
        """Frames from `start` up to at most `end` (a durable end), about max_bytes of them.
        Returns (bodies, position after the last one returned)."""
        pos = start
        bodies: list[bytes] = []
        taken = 0
        while pos < end and taken < max_bytes:
            limit = end.offset if pos.segment == end.segment else None
            path = self.dir / _segment_name(pos.segment)
            if not path.exists():
                if pos.segment < end.segment:
                    pos = Position(pos.segment + 1, 0)
                    continue
                break
            with open(path, "rb") as f:
                f.seek(pos.offset)
                offset = pos.offset
                while (limit is None or offset < limit) and taken < max_bytes:
                    head = f.read(HEADER.size)
                    if len(head) < HEADER.size:
                        break
                    length, crc = HEADER.unpack(head)
                    body = f.read(length)
                    if len(body) < length or zlib.crc32(body) != crc:
                        raise StoreError(f"wal: corrupt frame in {path.name} at offset {offset}")
                    bodies.append(body)
                    offset += HEADER.size + length
                    taken += HEADER.size + length
            if limit is None and offset >= path.stat().st_size and pos.segment < end.segment:
                pos = Position(pos.segment + 1, 0)
            else:
                pos = Position(pos.segment, offset)
                break
        return bodies, pos

    def backlog_bytes(self, cursor: Position) -> int:
        """Bytes of frames between the cursor and the durable end."""
        end = self.end
        if cursor >= end:
            return 0
        total = 0
        for number in self.segments():
            if number < cursor.segment or number > end.segment:
                continue
            size = end.offset if number == end.segment else (self.dir / _segment_name(number)).stat().st_size
            total += size - (cursor.offset if number == cursor.segment else 0)
        return max(0, total)

    def drop_before(self, cursor: Position) -> int:
        """Delete segments wholly before the cursor's segment. Returns how many."""
        n = 0
        for number in self.segments():
            if number < cursor.segment:
                (self.dir / _segment_name(number)).unlink(missing_ok=True)
                n += 1
        return n

    # ------------------------------------------------------------------ the cursor

    def load_cursor(self) -> tuple[Position, dict[str, Any]]:
        path = self.dir / CURSOR_FILE
        if not path.exists():
            first = self.segments()
            return Position(first[0] if first else 1, 0), {}
        try:
            doc = json.loads(path.read_text("utf-8"))
            pos = Position(int(doc["segment"]), int(doc["offset"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{path}: unreadable cursor ({exc}); move it away to drain the whole log again") from exc
        return pos, doc.get("state") or {}

    def save_cursor(self, pos: Position, state: dict[str, Any]) -> None:
        """Atomically replace the cursor (and the drain's state saved with it)."""
        path = self.dir / CURSOR_FILE
        tmp = path.with_suffix(".tmp")
        data = json.dumps({"segment": pos.segment, "offset": pos.offset, "state": state},
                          separators=(",", ":")).encode("utf-8")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
