"""Persistent record sequence number: survives reboots, starts at 1 on a fresh node.
Stored as decimal text in <state_dir>/seq, replaced atomically (write tmp, then rename)."""
import os


class SeqStore:
    def __init__(self, state_dir, name="seq"):
        self.path = state_dir.rstrip("/") + "/" + name
        self.tmp = self.path + ".tmp"
        self.last = self._load()

    def _read(self, path):
        try:
            with open(path) as f:
                s = f.read().strip()
            return int(s) if s.isdigit() else None
        except OSError:
            return None

    def _load(self):
        v = self._read(self.path)
        # The tmp file only outlives a rename if power failed between write and rename; it holds a
        # complete value then only if it parses, and is never older than the main file.
        t = self._read(self.tmp)
        if t is not None and (v is None or t > v):
            v = t
        return v or 0

    def next(self):
        n = self.last + 1
        self._store(n)  # persist before use: a reboot may skip a number but never repeats one
        self.last = n
        return n

    def _store(self, n):
        with open(self.tmp, "w") as f:
            f.write("%d\n" % n)
        os.rename(self.tmp, self.path)
