"""Entry point. On the ESP32 (run after boot.py): boardmain.py (/node.json, state on flash, forever).
On a PC: micropython -X heapsize=256k firmware/main.py node.json (from .mpy: 88k; from a ROMFS image: 64k) [--cycles N] [--state-dir DIR].
Validates the config first: a bad config stops before any network access (exit 2 on a PC).
Kept this small on purpose: the startup code is in start.py, which is unloaded once the node is built."""
import sys


def _node(argv):
    # In a frame of its own: once it returns, nothing (not even a stale stack slot) holds the config.
    # start.py is imported for the call and unloaded after (call_once): gone before the node is built.
    cfg, hw, cycles = __import__("compat").call_once("start", "start", argv)
    __import__("gc").collect()  # a lower startup peak
    return __import__("node").Node(cfg, hw), cycles


def main(argv):
    node, cycles = _node(argv)
    from compat import collect, mem_alloc
    collect()
    # What the poll loop starts from, and which modules it holds (the bench weighs their code).
    print("started: heap_live=%d modules=%s" % (mem_alloc(), ",".join(sorted(sys.modules.keys()))))
    node.run(cycles)


if sys.platform == "esp32":
    import boardmain  # noqa: F401  (the board's entry, boardmain.py: runs the node from /node.json)
else:
    main(sys.argv[1:])
