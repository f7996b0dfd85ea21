"""pointer.py: one integer on flash, replaced atomically (tmp + rename), robust to a torn write."""
import os
from pointer import Pointer
from fakes import make_tmpdir, rmtree


def test_pointer_starts_at_zero_and_persists():
    d = make_tmpdir()
    try:
        p = Pointer(d + "/ack")
        assert p.value == 0
        p.store(7)
        p.store(8)
        assert Pointer(d + "/ack").value == 8  # "reboot"
        assert "ack.tmp" not in os.listdir(d)
        with open(d + "/ack") as f:
            assert f.read() == "8\n"
    finally:
        rmtree(d)


def test_pointer_survives_torn_writes():
    d = make_tmpdir()
    try:
        Pointer(d + "/ack").store(5)
        for torn in ("", "1", "12", "9x\n"):
            with open(d + "/ack.tmp", "w") as f:
                f.write(torn)  # power lost while writing the tmp file
            assert Pointer(d + "/ack").value == 5, torn
        with open(d + "/ack.tmp", "w") as f:
            f.write("9\n")  # power lost after the write, before the rename
        assert Pointer(d + "/ack").value == 9
        with open(d + "/ack.tmp", "w") as f:
            f.write("3\n")  # stale, older than the main file: ignored
        assert Pointer(d + "/ack").value == 5
        os.remove(d + "/ack")
        with open(d + "/ack.tmp", "w") as f:
            f.write("6\n")  # FAT path: main removed, rename not done yet
        assert Pointer(d + "/ack").value == 6
    finally:
        rmtree(d)
