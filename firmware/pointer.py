"""One small integer kept on flash across power cuts (the queue's ack pointer), replaced atomically:
write <path>.tmp, then rename over <path>. No fsync exists in MicroPython; rename is the commit."""
import os


def _read(path):
    # A value counts only when complete: the trailing newline is written last.
    try:
        with open(path) as f:
            s = f.read()
    except OSError:
        return None
    if not s.endswith("\n") or not s[:-1].isdigit():
        return None
    return int(s[:-1])


class Pointer:
    def __init__(self, path):
        self.path = path
        self.tmp = path + ".tmp"
        v = _read(path)
        # A complete tmp outlives its rename only if power failed in between: it is the newer value.
        t = _read(self.tmp)
        if t is not None and (v is None or t > v):
            v = t
        self.value = v or 0

    def store(self, n):
        with open(self.tmp, "w") as f:
            f.write("%d\n" % n)
        try:
            os.rename(self.tmp, self.path)
        except OSError:
            # FAT cannot rename over a file; the complete tmp covers the window where path is gone.
            os.remove(self.path)
            os.rename(self.tmp, self.path)
        self.value = n
