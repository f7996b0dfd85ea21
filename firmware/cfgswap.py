"""The boot's half of the config op (docs/ARCHITECTURE.md section 3). cmdchan.new_config leaves the
new config at <path>.config-new and the marker <path>.config-trial ("0<seconds>"), then resets. At
boot, while the heap is free, start.load calls trial() (the swap), checks the new config, keeps the
checked copy and resets; the next boot loads that copy and calls begin() (the trial), and node.py
removes the marker once connected with it. A new config that does not load, or a trial that ends
unconfirmed, brings the old one back (restore()). Loaded for the call only (compat.call_once).

Every step survives a power cut: the marker is written last by the op and removed last here, and
each boot finds from the files alone where the swap stopped."""
import os


def trial(path):
    """At boot, when <path>.config-trial is there. A new config ("0<s>"): the running one becomes
    <path>.config-old, the new one <path> (a swap cut half way is completed by the next boot);
    returns -s: start.load checks it, and the boot after that begins its trial (begin). A boot with
    the trial still on ("1<s>": the node never reached the broker with it, node.py would have
    removed the marker) brings the old one back and returns 0. (The marker is read as bytes and
    written without short strings: every name and short string here is interned for good at 64k.)"""
    s = _marker(path)
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
    except OSError:  # no new one: swapped already (cut before the boot checked it)
        pass
    return -int(bytes(s[1:]))


def begin(path):
    """The trial of the new config begins (checked by the boot before): marker "1<s>"."""
    s = _marker(path)
    s[0] = 49
    f = open(path + ".config-trial", "wb")
    f.write(s)
    f.close()


def _marker(path):
    f = open(path + ".config-trial", "rb")
    s = bytearray(f.read())
    f.close()
    return s


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
