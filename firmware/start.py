"""Startup of the node: command line, config validation (config.py, unloaded after), the imports and
the Node. main.py imports this module for the start only and drops it: none of it is needed while
the node polls."""
import sys


def usage(msg):
    print("usage: main.py CONFIG.json [--cycles N] [--state-dir DIR] [--lean]\n"
          "  --lean: a config checked on this boot is kept and the node resets (exit 75, as a board\n"
          "          does), so it never runs beside the validator's interned names\n" + msg, file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    path = None
    cycles = None
    state_dir = None
    lean = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--lean":
            lean = True
            i += 1
            continue
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
    return path, cycles, state_dir, lean


def load(path, trial=None, lean=False):
    """(the validated config, None), (None, the ConfigError text), or (None, None): reset now.

    The validator (config.py, cfgcheck.py, analyzer_profile.py: ~10 KB of bytecode) is unloaded
    afterwards, but every name it loaded stays interned for good, about 100 of the 620 a 64k node
    has room for. So a validated config is kept beside the file (<path>.checked: the digest of the
    file and the firmware version, then the checked JSON); a boot that finds it loads that and never
    loads the validator. A config sent by the config op (cfgswap.py, <path>.config-trial) is checked
    on one boot, and the node resets into a lean boot that runs the trial; one that does not load
    brings the previous one back at once. lean (a board's boot, main.py --lean): any config checked
    on this boot is kept and the node resets, so it never runs beside the validator's names. The config carries "_trial": (path, the seconds the node
    has to reach the broker with it, 0 when not on trial)."""
    if trial is None:
        try:
            open(path + ".config-trial").close()
            trial = 1
        except OSError:
            trial = None
        if trial:  # (outside the try: an error of the trial's own is not "no trial")
            trial = __import__("compat").call_once("cfgswap", "trial", path)  # -seconds: swapped; 0: restored
    try:
        f = open(path, "rb")
        text = f.read()
        f.close()
        f = __import__("hashlib").sha256(text)
        f.update(__import__("record").FW_VERSION.encode())
        text = __import__("binascii").hexlify(f.digest()).decode() + "\n"
        cfg = _checked(path, text)
    except OSError:  # unreadable: the validator says so, naming the file
        cfg = text = None
    f = None
    if cfg is not None:
        if trial is not None and trial < 0:  # the new config, checked by the boot before: its trial begins
            __import__("compat").call_once("cfgswap", "begin", path)
            trial = -trial
        cfg["_trial"] = (path, trial or 0)
        return cfg, None
    had = "config" in sys.modules  # (only when something else loaded it first, as a test may)
    from config import load_config, ConfigError
    try:
        cfg = load_config(path)
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
        return load(path, 0, lean)
    try:  # kept for the next boots (a read-only folder: checked again each boot, nothing else lost)
        f = open(path + ".checked", "w")
        f.write(text)
        __import__("json").dump(cfg, f)
        f.close()
        f = None
        # (a swapped config, new or the old one back: always) run it from a lean boot, once the copy
        # is seen to load (one that does not would reset the node for ever)
        if lean or trial is not None:
            try:
                f = _checked(path, text)
            except MemoryError:
                pass
            if f is not None:
                _rearm()
                return None, None
    except (OSError, TypeError):  # (TypeError: the file became unreadable after its check)
        pass
    f = None
    if trial is not None and trial < 0:  # no usable checked copy: the trial runs from this boot
        __import__("compat").call_once("cfgswap", "begin", path)
        trial = -trial
    cfg = _copy(cfg)
    cfg["_trial"] = (path, trial or 0)
    return cfg, None


def _rearm():
    """A new image on trial (slotboot.py: slot "1!0 s") whose first boot only checked the config:
    its trial is the next boot's ("1?0 s" again), not this one's (a boot that fails before this
    point is not re-armed, so an image that cannot check its config still goes back)."""
    try:
        f = open("slot")
        s = f.read()
        f.close()
    except OSError:
        return
    if s[1:2] == "!":
        f = open("slot", "w")
        f.write(s[0] + "?" + s[2:])
        f.close()


def _checked(path, digest):
    """The config kept by an earlier boot when it was checked from this very file by this firmware."""
    try:
        f = open(path + ".checked")
    except OSError:
        return None
    try:
        if f.readline() == digest:
            # The keys become the names the node reads them by, not strings of their own (about
            # 4 KB at 4 x 5 values): a parsed string that is already an interned name is that name.
            __import__("nodesetup")
            cfg = __import__("json").load(f)
            sys.modules.pop("nodesetup")
            for a in cfg["analyzers"]:  # JSON keys are strings; a code status map's codes are ints
                a = a.get("status")
                if a and a.get("kind", "code") == "code":
                    a["map"] = {int(k): a["map"][k] for k in a["map"]}
            return cfg
    except ValueError:  # cut while it was written: checked again
        pass
    finally:
        f.close()
    return None


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
    path, cycles, state_dir, lean = parse_args(argv)
    cfg, err = load(path, None, lean)
    if err:
        print(err, file=sys.stderr)
        sys.exit(2)
    if cfg is None:  # a swapped config was checked: the node runs it from a fresh boot
        raise SystemExit(75)  # (hw_unix.UnixHW.reset: its runner starts it again)
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
    cfg, err = load(path, None, True)
    if err:
        print(err)
        return None
    if cfg is None:  # a swapped config was checked: the node runs it from a fresh boot
        __import__("machine").reset()
    cfg["_once"] = 1  # Node may drop each analyzer's config once it is built (nodesetup.init_node)
    _import_small_first()
    from hw_esp32 import Esp32HW
    return cfg, Esp32HW(cfg)
