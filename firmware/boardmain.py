"""The ESP32's entry (main.py imports it there, after boot.py): /node.json, state on flash, runs
forever; anything escaping the node's loop resets the board, which then replays from flash. A
module of its own so that none of it is in a PC node's heap; on a PC it runs only under
hil_tests/board_emulation (romboot.py with EDGEMON_MAIN=boardmain, the config path as argument)."""
import sys
from compat import call_once


def _board_node(path):
    # As main._node: start.py is unloaded (call_once) before the Node is built, in a frame that
    # holds nothing once it returns.
    got = call_once("start", "board_node", path)
    if got is None:
        return None
    cfg, hw = got
    got = None
    __import__("gc").collect()
    return __import__("node").Node(cfg, hw), hw


def board_main(path="/node.json"):
    got = _board_node(path)
    if got is None:
        return  # the config error is printed; the board stays at the REPL, no watchdog armed
    node, hw = got
    got = None
    __import__("gc").collect()
    try:
        node.run()
    except BaseException as e:  # KeyboardInterrupt from a technician's Ctrl-C ends here too
        sys.print_exception(e)
        if not isinstance(e, KeyboardInterrupt):
            hw.reset()


board_main(sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else "/node.json")
