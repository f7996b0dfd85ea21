"""The durable store: round trip, cursor and segments, a torn frame after a crash, a failed append."""

from edgemon.store import Position, Store


def test_store_round_trip_cursor_and_segments(tmp_path):
    s = Store(tmp_path, segment_bytes=100)
    ends = [s.append([f"frame {i}".encode() * 5]) for i in range(10)]
    assert len(s.segments()) > 3  # rotated
    bodies, pos = s.read(Position(1, 0), s.end, max_bytes=10**6)
    assert bodies == [f"frame {i}".encode() * 5 for i in range(10)] and pos == ends[-1]
    s.save_cursor(ends[4], {"completeness": {"a/b": [1, 2, 2, 0, [], 0]}})
    s.close()
    s2 = Store(tmp_path, segment_bytes=100)
    cursor, state = s2.load_cursor()
    assert cursor == ends[4] and state["completeness"]["a/b"][1] == 2
    rest, _ = s2.read(cursor, s2.end)
    assert rest == [f"frame {i}".encode() * 5 for i in range(5, 10)]
    assert s2.backlog_bytes(cursor) == sum(8 + len(b) for b in rest)
    assert s2.drop_before(cursor) >= 1 and min(s2.segments()) == cursor.segment


def test_store_cuts_a_torn_frame_after_a_crash(tmp_path):
    s = Store(tmp_path)
    s.append([b"one", b"two"])
    s.close()
    seg = tmp_path / f"{1:020d}.seg"
    with open(seg, "ab") as f:
        f.write(b"\x10\x00\x00\x00\xde\xad")  # a header cut short: the power went mid-write
    s2 = Store(tmp_path)
    bodies, _ = s2.read(Position(1, 0), s2.end)
    assert bodies == [b"one", b"two"]
    s2.append([b"three"])
    assert s2.read(Position(1, 0), s2.end)[0] == [b"one", b"two", b"three"]


_DISK_FULL_SCRIPT = """
import resource, signal, sys
from edgemon.store import Position, Store
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, like a full disk
s = Store(sys.argv[1])
s.append([b"before" * 100])
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
try:
    s.append([b"x" * 50_000])
    print("append did not fail")
except OSError:
    pass
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
s.append([b"x" * 50_000])  # the journal's retry of the same frame
s.append([b"after"])
bodies, _ = s.read(Position(1, 0), s.end)
print([len(b) for b in bodies])
s.close()
s2 = Store(sys.argv[1])
print([len(b) for b in s2.read(Position(1, 0), s2.end)[0]])
"""


def test_store_append_that_fails_part_way_leaves_no_torn_frame(tmp_path):
    """Disk full mid-write (a real EFBIG from RLIMIT_FSIZE, in a child process): the retry must not
    land behind a torn frame, or the next start would cut off every acknowledged frame after it."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _DISK_FULL_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["[600, 50000, 5]", "[600, 50000, 5]"], r.stdout + r.stderr
