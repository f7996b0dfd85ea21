"""The update op (docs/ARCHITECTURE.md section 3): a new firmware image into the romfs partition the
node is not running from, checked twice, and mounted by the next boot on trial (slotboot.py). Loaded
for the call (cmdchan, compat.call_once) and dropped after; the node resets after the ack.

args, the manifest, signed with the command (the node's key): {"url": "http://host:port/path",
"version": "...", "bytes": n, "sha256": "<hex of the image>", "trial_s": s}. The image (one hash
covers every file in it) is streamed from the gateway host in 512-byte pieces into the partition and
hashed as it goes, then read back from the partition and hashed again; either mismatch leaves the
running image and the slot file as they were. On a board the partitions are the romfs ones
(vfs.rom_ioctl: the partition table needs two); on a PC, romfs.img and romfs-1.img in the working
directory (the virtual board's folder).

The image on trial confirms itself (updated(), called by node.py at its first record PUBACK): the
broker reached, a record delivered, an analyzer answering, the flash queue opened with nothing to
repair. Not within trial_s: node.py resets and slotboot.py mounts the previous image."""
import sys
import hashlib
from binascii import hexlify
import sockio

_BOARD = sys.platform == "esp32"


def fetch(node, args):
    url = args.get("url")
    n = args.get("bytes")
    want = args.get("sha256")
    s = args.get("trial_s", 300)
    if type(url) is not str or url[:7] != "http://" or type(n) is not int or n <= 0 or type(want) is not str \
            or len(want) != 64 or type(s) is not int or not 30 <= s <= 3600:
        raise ValueError("args: url http://..., bytes, sha256 (64 hex digits) and trial_s 30..3600 expected")
    old = _slot()
    new = 1 - old
    host, _, path = url[7:].partition("/")
    host, _, port = host.partition(":")
    if _BOARD:
        vfs = __import__("vfs")
        if vfs.rom_ioctl(1) < 2:
            raise ValueError("this board has one romfs partition: an update needs two (A/B partition table)")
        if vfs.rom_ioctl(3, new, n) < 0:  # erased for n bytes; negative: the partition is smaller
            raise ValueError("the image (%d bytes) does not fit romfs partition %d" % (n, new))
        f = None
    else:
        f = open(_image(new), "wb")
    h = hashlib.sha256()
    sock = sockio.open_tcp(host, int(port or 80), 10000)
    try:
        sockio.send_all(sock, ("GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, host)).encode(), "closed")
        poll = sockio.poller(sock)
        head = b""
        while head[-4:] != b"\r\n\r\n":  # (the header, a byte at a time: a few hundred bytes)
            head += sockio.recv_exact(sock, poll, 1, 10000, OSError, "closed")
            if len(head) > 2048:
                raise ValueError("HTTP: a header over 2 KB")
        head = head.decode().lower()
        if head[9:12] != "200":
            raise ValueError("HTTP: " + head.split("\r\n", 1)[0])
        i = head.find("\r\ncontent-length:")
        if i < 0 or int(head[i + 17:].split("\r\n", 1)[0]) != n:
            raise ValueError("HTTP: the server does not serve %d bytes (the manifest's)" % n)
        head = None
        off = 0
        while off < n:
            b = sockio.recv_exact(sock, poll, min(512, n - off), 10000, OSError, "closed")
            h.update(b)
            if f is None:
                vfs.rom_ioctl(4, new, off, b)
            else:
                f.write(b)
            off += len(b)
            node._feed()  # the watchdog, over a slow link
    finally:
        sockio.close_quietly(sock)
        if f is not None:
            f.close()
    h = hexlify(h.digest()).decode()  # (a MicroPython hash gives its digest once)
    if h != want:
        raise ValueError("the image's SHA-256 is not the manifest's: not switched (got %s...)" % h[:12])
    h = hashlib.sha256()  # again, from the partition: what the next boot mounts
    if f is None:
        vfs.rom_ioctl(5, new)
        f = vfs.rom_ioctl(2, new)  # the partition, memory-mapped
        for off in range(0, n, 512):
            h.update(f[off:off + 512 if off + 512 < n else n])
    else:
        f = open(_image(new), "rb")
        b = f.read(512)
        while b:
            h.update(b)
            b = f.read(512)
        f.close()
    f = None
    if hexlify(h.digest()).decode() != want:
        raise ValueError("the image reads back wrong from partition %d: not switched" % new)
    f = open("slot", "w")
    f.write("%d?%d %d" % (new, old, s))
    f.close()
    return '{"slot":%d,"bytes":%d,"trial_s":%d}' % (new, n, s)


def updated(node):
    """At a record's PUBACK, on an image on trial: confirmed when an analyzer answers and the flash
    queue opened with nothing to repair; then the slot file names this image for good."""
    if node.queue.repaired or not [a for a in node.analyzers if not a.fails]:
        return
    s = node._trial[3]
    f = open("slot", "w")
    f.write(s)
    f.close()
    node._trial[2] = None
    node.log("update: image %s confirmed: a record delivered, the analyzers answering" % s)
    node._event("update", '{"fw":"%s","slot":%s,"state":"confirmed"}', (__import__("record").FW_VERSION, s))


def _slot():
    try:
        f = open("slot")
        s = f.read(1)
        f.close()
    except OSError:
        s = "0"
    return 1 if s == "1" else 0


def _image(n):
    return "romfs-1.img" if n else "romfs.img"
