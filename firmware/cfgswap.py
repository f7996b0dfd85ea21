"""The boot's half of the config op (docs/ARCHITECTURE.md section 3). cmdchan.new_config leaves the
new config at <path>.config-new and the marker <path>.config-trial ("0<seconds>"), then resets; at
boot, while the heap is free, start.load calls trial() (swap, trial begins) and, when the new config
does not load, restore(); node.py removes the marker once connected with it. Loaded for the call only
(compat.call_once) and dropped after.

Every step survives a power cut: the marker is written last by the op and removed last here, and
each boot finds from the files alone where the swap stopped."""
import os


def trial(path):
    """At boot, when <path>.config-trial is there. First boot of a new config ("0"): the running one
    becomes <path>.config-old, the new one <path>, the marker "1" (a swap cut half way is completed
    by the next boot); returns the seconds the node has to reach the broker with it (else it resets).
    A later boot with the marker still there ("1": it never connected) brings the old one back and
    returns 0. (The marker is handled as bytes and the moves written out: every name and short
    string here is interned for good at 64k, beside the command channel's.)"""
    t = path + ".config-trial"
    f = open(t, "rb")
    s = bytearray(f.read())
    f.close()
    if s[0] != 48:  # not "0"
        restore(path)
        return 0
    try:
        os.stat(path + ".config-new")
        try:
            os.stat(path)
            restore(path, path + ".config-old")
        except OSError:  # cut after the first move: the running one is already the old one
            pass
        restore(path + ".config-new", path)
    except OSError:  # no new one: swapped already (cut before the marker said so)
        pass
    s[0] = 49  # "1": on trial
    f = open(t, "wb")
    f.write(s)
    f.close()
    return int(bytes(s[1:]))


def restore(path, b=None):
    """The previous config back (<path>.config-old), the trial over. restore(a, b): a moved to b
    (rename does not replace a file on every filesystem: FAT)."""
    if b is not None:
        try:
            os.remove(b)
        except OSError:
            pass
        os.rename(path, b)
        return
    try:
        os.stat(path + ".config-old")
        restore(path + ".config-old", path)
    except OSError:  # nothing to bring back (cut after the move of an earlier restore)
        pass
    os.remove(path + ".config-trial")
    print("config: the new config did not come up: the previous one is back")
