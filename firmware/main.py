"""Entry point on the unix port / PC: micropython -X heapsize=128k firmware/main.py node.json [--cycles N] [--state-dir DIR].
Validates the config first: a bad config exits 2 before any network access."""
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


def main(argv):
    path, cycles, state_dir = parse_args(argv)
    from config import load_config, ConfigError
    try:
        cfg = load_config(path)
    except ConfigError as e:
        print("config error: %s" % e, file=sys.stderr)
        sys.exit(2)
    if state_dir is not None:
        cfg["state_dir"] = state_dir
    # Imported only now: nothing network-related is even loaded for a bad config.
    from hw_unix import UnixHW
    from node import Node
    node = Node(cfg, UnixHW(cfg["state_dir"] + "/" + cfg["site"] + "/" + cfg["node"]))
    print("node %s/%s fw %s: %d analyzer(s), poll %ss, broker %s:%d"
          % (cfg["site"], cfg["node"], __import__("record").FW_VERSION, len(cfg["analyzers"]),
             cfg["poll_s"], cfg["mqtt"]["host"], cfg["mqtt"]["port"]))
    node.run(cycles)


main(sys.argv[1:])
