"""Entry point. On the ESP32 (run after boot.py): /node.json, state on flash, runs forever.
On a PC: micropython -X heapsize=64k firmware/main.py node.json [--cycles N] [--state-dir DIR].
Validates the config first: a bad config stops before any network access (exit 2 on a PC)."""
import sys


def usage(msg):
    print("usage: main.py CONFIG.json [--cycles N] [--state-dir DIR]\n" + msg, file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    path = None
    cycles = None
    state_dir = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--cycles", "--state-dir"):
            if i + 1 >= len(argv):
                usage(a + " needs a value")
            val = argv[i + 1]
            if a == "--cycles":
                if not val.isdigit():
                    usage("--cycles needs a whole number")
                cycles = int(val)
            else:
                state_dir = val
            i += 2
            continue
        if a.startswith("-") or path is not None:
            usage("unexpected argument " + a)
        path = a
        i += 1
    if path is None:
        usage("missing config path")
    return path, cycles, state_dir


def load(path):
    """The validated config, or (ConfigError text, None). config.py is unloaded afterwards: its
    ~10 KB of bytecode are not needed again, and the heap is the budget."""
    from config import load_config, ConfigError
    try:
        return load_config(path), None
    except ConfigError as e:
        return None, "config error: %s" % e
    finally:
        del sys.modules["config"]


def _import_small_first():
    # Loading the node's modules one by one with a collection in between keeps the compile-time
    # peak (the unix port compiles .py in its heap) from fragmenting it.
    import gc
    for m in ("compat", "record", "reccodec", "pointer", "flashqueue", "backoff", "mqtt", "analyzer", "node"):
        gc.collect()
        __import__(m)
    gc.collect()


def main(argv):
    path, cycles, state_dir = parse_args(argv)
    cfg, err = load(path)
    if err:
        print(err, file=sys.stderr)
        sys.exit(2)
    if state_dir is not None:
        cfg["state_dir"] = state_dir
    # Imported only now: nothing network-related is even loaded for a bad config.
    _import_small_first()
    from hw_unix import UnixHW
    from node import Node
    node = Node(cfg, UnixHW(cfg["state_dir"] + "/" + cfg["site"] + "/" + cfg["node"]))
    print("node %s/%s fw %s: %d analyzer(s), poll %ss, broker %s:%d"
          % (cfg["site"], cfg["node"], __import__("record").FW_VERSION, len(cfg["analyzers"]),
             cfg["poll_s"], cfg["mqtt"]["host"], cfg["mqtt"]["port"]))
    node.run(cycles)


def board_main(path="/node.json"):
    """ESP32: a bad config leaves the board at the REPL with the reason (no watchdog armed yet);
    anything escaping the node's loop resets the board, which then replays from flash."""
    cfg, err = load(path)
    if err:
        print(err)
        return
    from hw_esp32 import Esp32HW
    from node import Node
    hw = Esp32HW(cfg)
    try:
        Node(cfg, hw).run()
    except BaseException as e:  # KeyboardInterrupt from a technician's Ctrl-C ends here too
        sys.print_exception(e)
        if not isinstance(e, KeyboardInterrupt):
            hw.reset()


if sys.platform == "esp32":
    board_main()
else:
    main(sys.argv[1:])
