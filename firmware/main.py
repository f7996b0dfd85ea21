"""Entry point. On the ESP32 (run after boot.py): /node.json, state on flash, runs forever.
On a PC: micropython -X heapsize=256k firmware/main.py node.json (from .mpy: 80k; from a ROMFS image: 64k) [--cycles N] [--state-dir DIR].
Validates the config first: a bad config stops before any network access (exit 2 on a PC).
Kept this small on purpose: the startup code is in start.py, which is unloaded once the node is built."""
import sys


def _boot(fn, *args):
    # start.<fn>(*args), then start.py leaves sys.modules: once this frame is gone nothing refers
    # to its bytecode (nor to the config dict), and the collection below frees both.
    try:
        return getattr(__import__("start"), fn)(*args)
    finally:
        sys.modules.pop("start", None)
        sys.modules.pop("config", None)


def _node(argv):
    # In a frame of its own: once it returns, nothing (not even a stale stack slot) holds the config.
    cfg, hw, cycles = _boot("start", argv)
    __import__("gc").collect()  # start.py is gone before the node is built: a lower startup peak
    return __import__("node").Node(cfg, hw), cycles


def _board_node(path):
    # As _node, for the board: start.py is unloaded before the Node is built.
    got = _boot("board_node", path)
    if got is None:
        return None
    cfg, hw = got
    got = None
    __import__("gc").collect()
    return __import__("node").Node(cfg, hw), hw


def main(argv):
    node, cycles = _node(argv)
    from compat import collect, mem_alloc
    collect()
    # What the poll loop starts from, and which modules it holds (the bench weighs their code).
    print("started: heap_live=%d modules=%s" % (mem_alloc(), ",".join(sorted(sys.modules.keys()))))
    node.run(cycles)


def board_main(path="/node.json"):
    """ESP32: anything escaping the node's loop resets the board, which then replays from flash."""
    got = _board_node(path)
    if got is None:
        return
    node, hw = got
    got = None
    import gc
    gc.collect()
    try:
        node.run()
    except BaseException as e:  # KeyboardInterrupt from a technician's Ctrl-C ends here too
        sys.print_exception(e)
        if not isinstance(e, KeyboardInterrupt):
            hw.reset()


if sys.platform == "esp32":
    board_main()
elif sys.argv[1:2] == ["--board"]:
    # The board's own path (hw_esp32) on a PC: hil_tests/board_emulation provides machine, network
    # and ntptime on the unix port. Not a device: see that folder's README.
    board_main(sys.argv[2] if len(sys.argv) > 2 else "/node.json")
else:
    main(sys.argv[1:])
