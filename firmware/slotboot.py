"""Which romfs partition (slot) a boot mounts at /rom: A/B images for the update op (fwupdate.py).
Not in the image it chooses: on a board it is /slotboot.py on the filesystem, run by the /main.py
that `edgemon node deploy` writes; on a PC, firmware/romboot.py runs it. One file, "slot":
  "0", "1"      the confirmed image
  "1?0 300"     an update is waiting: its first boot mounts 1 and marks it "1!0 300"
  "1!0 300"     image 1 booted and has not confirmed itself (node.py does, after its health
                check, within 300 s): this boot, the next, mounts 0 again and writes "0"
so an image that cannot start, hangs, or never reaches the broker is left by the next reset; the
watchdog or the node's own deadline provides that reset."""


def choose(n, path="slot"):
    """The slot to mount, of n; writes the file's next state first (a cut after it: the same)."""
    try:
        f = open(path)
        s = f.read()
        f.close()
    except OSError:
        s = "0"
    if s[1:2] == "?":
        _write(path, s[0] + "!" + s[2:])
    elif s[1:2] == "!":
        print("slot: image %s did not confirm itself: back to image %s" % (s[0], s[2]))
        s = s[2]
        _write(path, s)
    s = s[:1]
    return int(s) if s.isdigit() and int(s) < n else 0


def _write(path, s):
    f = open(path, "w")
    f.write(s)
    f.close()
