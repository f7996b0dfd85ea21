"""Startup of the node: command line, config validation (config.py, unloaded after), the imports and
the Node. main.py imports this module for the start only and drops it: none of it is needed while
the node polls."""
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


def load(path, trial=None):
    """(the validated config, None), or (None, the ConfigError text). config.py (and cfgcheck.py)
    are unloaded afterwards: their ~10 KB of bytecode are not needed again, and the heap is the
    budget. A config sent by the config op is on trial (<path>.config-trial, cfgswap.trial): one
    that does not load brings the previous one back at once. The config carries "_trial": (path,
    seconds the node has to reach the broker with it, 0 when not on trial)."""
    if trial is None:
        try:
            open(path + ".config-trial").close()
            trial = 1
        except OSError:
            trial = 0
        if trial:  # (outside the try: an error of the trial's own is not "no trial")
            trial = __import__("compat").call_once("cfgswap", "trial", path)
    had = "config" in sys.modules  # (only when something else loaded it first, as a test may)
    from config import load_config, ConfigError
    try:
        cfg = load_config(path)
        cfg["_trial"] = (path, trial)
    except ConfigError as e:  # every error, one line each, each naming the file
        cfg = "\n".join("config error: %s: %s" % fr for fr in e.errors)
        if not trial:
            return None, cfg
        print(cfg)
        cfg = None
    finally:
        m = sys.modules.pop("config")
        if not had:
            # Out of sys.modules was not enough: config's module stayed reachable all the same
            # (a 3 KB bytearray put into config.py stayed in the heap for the whole run, one put
            # into any other startup module did not; walking sys.modules, the config and the hw
            # finds no reference to it: a stale word the conservative GC still sees, presumably).
            # Emptying its dict frees what it held whoever keeps the module object: 6 KB less
            # live heap from the start and in the poll loop (4 x 5 values, ROMFS, unix port).
            m.__dict__.clear()
            sys.modules.pop("cfgcheck", None)  # the checks config.py shares with analyzer_profile.py
        m = None
    # Validation leaves the config's dicts and lists scattered between the holes of its garbage;
    # a fresh copy, made once that garbage is collected, packs them, so the imports that follow
    # find whole blocks (without it a 64k heap failed to start on some path lengths).
    import gc
    gc.collect()
    if cfg is None:  # the config on trial does not load: the previous one, at once
        __import__("compat").call_once("cfgswap", "restore", path)
        return load(path, 0)
    return _copy(cfg), None


def _copy(o):
    if type(o) is dict:
        return {k: _copy(o[k]) for k in o}
    if type(o) is list:
        return [_copy(v) for v in o]
    return o


def _import_small_first():
    # Loading the node's modules one by one with a collection in between keeps the compile-time
    # peak (the unix port compiles .py in its heap) from fragmenting it.
    import gc
    # The queue and MQTT modules come later, in nodesetup.init_node, once the analyzers' config is freed.
    for m in ("compat", "record", "analyzer", "node"):
        gc.collect()
        __import__(m)
    gc.collect()


def _start(argv):
    """The validated config and the hw for the node; main.py drops the config dict once the node is
    built (about 11 KB for 4 analyzers x 5 values that the poll loop never reads again)."""
    path, cycles, state_dir = parse_args(argv)
    cfg, err = load(path)
    if err:
        print(err, file=sys.stderr)
        sys.exit(2)
    if state_dir is not None:
        cfg["state_dir"] = state_dir
    cfg["_once"] = 1  # Node may drop each analyzer's config once it is built (nodesetup.init_node)
    # Imported only now: nothing network-related is even loaded for a bad config.
    _import_small_first()
    from hw_unix import UnixHW
    print("node %s/%s fw %s: %d analyzer(s), poll %ss, broker %s:%d"
          % (cfg["site"], cfg["node"], __import__("record").FW_VERSION, len(cfg["analyzers"]),
             cfg["poll_s"], cfg["mqtt"]["host"], cfg["mqtt"]["port"]))
    return cfg, UnixHW(cfg["state_dir"] + "/" + cfg["site"] + "/" + cfg["node"]), cycles


def start(argv):
    """PC: (config, hw, cycles) from the command line; exits 2 on a bad config or bad arguments.
    main.py builds the Node once this module is unloaded (its code is not in the startup peak).
    config.py is unloaded by load() itself."""
    return _start(argv)


def board_node(path="/node.json"):
    """ESP32: (config, hw) from /node.json, or None after printing why the config is bad (the board
    then stays at the REPL with the reason; no watchdog armed yet). boardmain.py builds the Node
    once this module is unloaded, as main.py does on a PC."""
    cfg, err = load(path)
    if err:
        print(err)
        return None
    cfg["_once"] = 1  # Node may drop each analyzer's config once it is built (nodesetup.init_node)
    _import_small_first()
    from hw_esp32 import Esp32HW
    return cfg, Esp32HW(cfg)
