"""Loads and validates the node configuration (JSON), filling defaults.
Errors name the exact field path and say how to fix it, for technicians on site; every error is
reported in one run.
Over 400 lines on purpose: it is loaded once at start-up and dropped, and each further module (and
each function name) would stay interned in the board's 64 KiB heap; the profile checks are already
apart, in analyzer_profile.py, and what both use (ConfigError, the field checks) in cfgcheck.py."""
import json
from cfgcheck import (ConfigError, _check, _raise_all, _is_num, is_identifier, _obj, _known, _join, _req,
                      _int_range, _show)

_TOP = ("site", "node", "poll_s", "mqtt", "analyzers", "state_dir", "status_s", "outbox_max", "profiles_dir",
        "key", "queue", "wifi", "ntp", "watchdog_s")
_QUEUE = ("max_kb", "segment_kb", "batch_max", "batch_bytes", "confirm_s")
_WIFI = ("ssid", "password")
_NTP = ("host", "sync_s")
_MQTT = ("host", "port", "user", "password", "keepalive", "client_id", "timeout_ms", "clean_session", "tls")
_TLS = ("ca", "cert", "key", "server_hostname")
_ANALYZER = ("name", "transport", "unit", "timeout_ms", "values", "status", "profile", "override", "poll_s",
             "retries")
TRANSPORTS = ("rtu_tcp", "tcp", "rtu")
_TCP = ("kind", "host", "port")
_UART = ("kind", "uart", "baud", "parity", "stop", "tx", "rx", "de")


def _str(d, key, path, default=None, optional=False):
    p = _join(path, key)
    if key not in d:
        if optional:
            d[key] = default
            return default
        raise ConfigError(p, "missing (required), a text string")
    v = d[key]
    if v is None and optional:
        d[key] = default
        return default
    if not isinstance(v, str) or not v:
        raise ConfigError(p, "must be a non-empty text string, got %s" % _show(v))
    return v


def _pos_num(d, key, path, default=None):
    p = _join(path, key)
    if key not in d:
        if default is None:
            raise ConfigError(p, "missing (required), a number > 0")
        d[key] = default
        return default
    v = d[key]
    if not _is_num(v) or not v > 0:
        raise ConfigError(p, "must be a number > 0, got %s" % _show(v))
    return v


def default_profiles_dir():
    """profiles/ beside this module (on the board: /profiles)."""
    f = globals().get("__file__") or ""
    return (f.rsplit("/", 1)[0] if "/" in f else ".") + "/profiles"


def validate_config(cfg, profiles_dir=None):
    """Returns cfg (modified in place) with defaults filled; raises one ConfigError listing every
    problem found (checks that depend on a broken part are left for the next run).
    Analyzers naming a "profile" get its values/status from <profiles_dir>/<profile>.json."""
    _obj(cfg, "(top level)")
    out = []
    _check(out, _known, cfg, _TOP, "")
    ids_ok = True
    for key in ("site", "node"):
        v = cfg.get(key)
        if not is_identifier(v):
            ids_ok = False
            out.append((key, "missing (required)" if v is None else
                         "must be 1-64 characters from A-Z a-z 0-9 _ -, got %s" % _show(v)))
    _check(out, _pos_num, cfg, "poll_s", "")
    _check(out, _pos_num, cfg, "status_s", "", 60)
    _check(out, _int_range, cfg, "outbox_max", "", 1, 10000, 100)
    _check(out, _str, cfg, "state_dir", "", "state", True)
    _validate_uplink(cfg, out)
    # mqtt, inline: each new function name would stay interned in the heap after config.py is dropped
    m = cfg.get("mqtt")
    if not isinstance(m, dict):
        out.append(("mqtt", "missing (required)" if m is None else "must be an object {...}"))
    else:
        _check(out, _known, m, _MQTT, "mqtt")
        _check(out, _str, m, "host", "mqtt")
        tl = m.get("tls")
        if tl is not None:
            if not isinstance(tl, dict):
                out.append(("mqtt.tls", 'must be an object {"ca": "/certs/ca.der", ...}, got %s; fix: give the broker\'s CA '
                             '(TLS is only ever used with the CA pinned), or leave mqtt.tls out for plain MQTT' % _show(tl)))
            else:
                _check(out, _known, tl, _TLS, "mqtt.tls")
                if "ca" not in tl:
                    out.append(("mqtt.tls.ca", "missing: TLS without a pinned CA is refused (the node would trust any "
                                 'broker); fix: the path of the broker\'s CA certificate on the node, e.g. "ca": '
                                 '"/certs/ca.der" (edgemon.pki\'s ca.crt, DER or PEM), or its PEM text inline'))
                for k in ("ca", "cert", "key"):
                    v = tl.get(k)
                    if k in tl and (not isinstance(v, str) or not v):
                        out.append(("mqtt.tls." + k, "must be the path of a file on the node or inline PEM text, got %s; "
                                     'fix: e.g. "/certs/%s.der"' % (_show(v), k)))
                    elif isinstance(v, str) and v[:5] == "-----" and ("-----BEGIN " not in v or "-----END " not in v):
                        out.append(("mqtt.tls." + k, "inline PEM must hold a whole -----BEGIN ...----- to -----END "
                                     "...----- block (newlines as \\n in JSON); fix: paste the whole file, or give its path"))
                if ("cert" in tl) != ("key" in tl):
                    k = "key" if "cert" in tl else "cert"
                    out.append(("mqtt.tls." + k, "missing: mutual TLS needs both the node's certificate (cert) and "
                                 "its private key (key); fix: give both (edgemon.pki's <site>.<node>.crt and .key), or "
                                 "neither for TLS with a password"))
                _check(out, _str, tl, "server_hostname", "mqtt.tls", None, True)
        # 8883 with TLS (IANA's MQTT over TLS), 1883 without
        _check(out, _int_range, m, "port", "mqtt", 1, 65535, 8883 if isinstance(tl, dict) else 1883)
        if _check(out, _str, m, "user", "mqtt", None, True) & _check(out, _str, m, "password", "mqtt", None, True):
            if m["password"] is not None and m["user"] is None:
                out.append(("mqtt.user", "missing: MQTT 3.1.1 needs a user name when a password is set"))
        _check(out, _int_range, m, "keepalive", "mqtt", 0, 65535, 60)
        _check(out, _pos_num, m, "timeout_ms", "mqtt", 5000)
        if ids_ok or "client_id" in m:
            _check(out, _str, m, "client_id", "mqtt", (cfg["site"] + "-" + cfg["node"]) if ids_ok else None, True)
        if "clean_session" in m:
            if type(m["clean_session"]) is not bool:
                out.append(("mqtt.clean_session", "must be true or false"))
        else:
            m["clean_session"] = True

    ans = cfg.get("analyzers")
    if not isinstance(ans, list) or not ans:
        out.append(("analyzers", "missing (required)" if ans is None else
                     "must be a non-empty list of analyzers [{...}]"))
        _raise_all(out)
    if not _check(out, _str, cfg, "profiles_dir", "", profiles_dir or default_profiles_dir(), True):
        cfg["profiles_dir"] = None  # no profile can be read: analyzers naming one are not checked further
    params = {}
    cache = {}  # profile name -> validated profile: each file is read once however many analyzers use it
    import gc
    for i, a in enumerate(ans):
        gc.collect()  # this analyzer's filled-in config then lands in the holes of the last one's garbage
        _validate_analyzer(a, "analyzers[%d]" % i, params, cfg, cache, out)
    if not out and _check(out, _check_buses, ans):  # these need every part whole
        _check(out, _check_watchdog, cfg)
    import sys
    sys.modules.pop("analyzer_profile", None)  # needed only to validate: let its bytecode be freed
    _raise_all(out)
    return cfg


def _regs(a):
    """[(fc, first, last register), ...] that analyzer a reads (bit values aside: bits may share)."""
    from analyzer_profile import _NREGS
    out = []
    for v in a["values"]:
        if v["type"] != "bit":
            out.append((v["fc"], v["addr"], v["addr"] + _NREGS[v["type"]] - 1, v["param"]))
    st = a["status"]
    if st is not None:
        out.append((st["fc"], st["addr"], st["addr"], "status"))
    return out


def _check_buses(ans):
    """Analyzers sharing a bus (one UART, one host:port) agree on how to drive it and have distinct
    names. One device may be split over several entries (its COD every 5 min, its flow every 10 s:
    one unit id twice), but two entries of one unit id must not read the same registers: that is two
    devices configured at one address (they would garble each other's frames) or a copy-paste slip
    (the status word aside, which every entry of the device may read)."""
    names = {}
    buses = {}  # bus key -> (path of its first analyzer, its transport, {unit: [(path, regs), ...]})
    for i, a in enumerate(ans):
        path = "analyzers[%d]" % i
        if a["name"] in names:
            raise ConfigError(_join(path, "name"), "%s is already the name of %s; each analyzer needs its own "
                              "(it keys the status health member)" % (_show(a["name"]), names[a["name"]]))
        names[a["name"]] = path
        t = a["transport"]
        key = ("uart %d" % t["uart"]) if t["kind"] == "rtu" else "%s:%d" % (t["host"], t["port"])
        if key not in buses:
            buses[key] = (path, t, {a["unit"]: [(path, _regs(a))]})
            continue
        first, t0, units = buses[key]
        for k in ("kind", "baud", "parity", "stop", "tx", "rx", "de"):
            if t.get(k) != t0.get(k):
                raise ConfigError(_join(_join(path, "transport"), k), "%s is shared with %s, which has %s %s: "
                                  "one bus has one setting; make them equal or use another bus"
                                  % (key, first, k, _show(t0.get(k))))
        mine = _regs(a)
        for other, regs in units.get(a["unit"], ()):
            for fc, lo, hi, what in mine:
                for fc2, lo2, hi2, what2 in regs:
                    # Both reading the device's status word is fine: its entries share it.
                    if fc == fc2 and lo <= hi2 and lo2 <= hi and not (what == what2 == "status"):
                        raise ConfigError(_join(path, "unit"), "unit %d on %s is also %s, which reads register %d "
                                          "(fc %d, its %s) as well (here: %s); give each device on a bus its own "
                                          "unit id (set on the analyzer's panel)"
                                          % (a["unit"], key, other, max(lo, lo2), fc, what2, what))
        units.setdefault(a["unit"], []).append((path, mine))


def _check_watchdog(cfg):
    """No stretch between two watchdog feeds may outlast watchdog_s. The node feeds it after each
    analyzer and after each MQTT exchange, so the longest stretches are the slowest analyzer (every
    read timing out with all its retries, plus its wire time on RS-485 or a TCP connect) and one
    MQTT exchange (plus an NTP sync). Otherwise the board resets before it stores a record."""
    wd = cfg["watchdog_s"] * 1000
    if not wd:
        return
    import sys
    had = "blockplan" in sys.modules
    from blockplan import plan_blocks
    if not had:
        sys.modules.pop("blockplan", None)  # needed only now: its bytecode can be freed
    fix = "; lower %s, or raise watchdog_s"
    mq = cfg["mqtt"]["timeout_ms"]
    if mq + 2000 >= wd:
        raise ConfigError("mqtt.timeout_ms", "%s ms + 2000 ms for an NTP sync is not below watchdog_s (%d s): the "
                          "watchdog would reset the board while it waits" % (_show(mq), cfg["watchdog_s"])
                          + fix % "mqtt.timeout_ms")
    ans = cfg["analyzers"]
    for i in range(len(ans)):
        a = ans[i]
        t = a["transport"]
        blocks = plan_blocks(a["values"], a["status"], a["max_regs"])
        worst = 0 if t["kind"] == "rtu" else 2000  # TcpTransport's connect timeout
        for fc, start, count, members in blocks:
            wire = 0
            if t["kind"] == "rtu":  # request and longest answer on the wire, 11 bits a byte
                wire = (8 + 5 + (2 * count if fc > 2 else (count + 7) // 8)) * 11000 // t["baud"] + 1
            worst += (1 + a["retries"]) * (a["timeout_ms"] + wire)
        if worst >= wd:
            raise ConfigError("analyzers[%d].timeout_ms" % i, "%s ms x (1 + %d retries) x %d read(s), with wire time "
                              "and connect, is %d ms, not below watchdog_s (%d s): the watchdog would reset the "
                              "board while it waits" % (_show(a["timeout_ms"]), a["retries"], len(blocks), worst,
                                                        cfg["watchdog_s"]) + fix % "timeout_ms or retries")


def _validate_analyzer(a, path, params, cfg, cache, out):
    """Every error of analyzer a added to out; the duplicate-parameter check only once it is whole."""
    from analyzer_profile import apply_profile, check_value, check_status, check_overlap
    if not _check(out, _obj, a, path):
        return
    bad = len(out)
    _check(out, _known, a, _ANALYZER, path)
    if _check(out, _req, a, "name", path) and not is_identifier(a["name"]):
        out.append((_join(path, "name"), "must be 1-64 characters from A-Z a-z 0-9 _ -, got %s" % _show(a["name"])))
    tp = _join(path, "transport")
    t = a.get("transport")
    kind = None
    if not isinstance(t, dict):
        out.append((tp, "missing (required)" if t is None else "must be an object {...}"))
    else:
        if t.get("kind") in TRANSPORTS:  # the unit id's range needs the kind only
            kind = t["kind"]
        _check(out, _validate_transport, t, tp)
    if kind:
        if kind == "tcp":  # Modbus TCP: many devices answer to 0 or 255 (the unit id is not an RTU address)
            _check(out, _int_range, a, "unit", path, 0, 255)
        else:
            _check(out, _int_range, a, "unit", path, 1, 247)
    _check(out, _pos_num, a, "timeout_ms", path, 1000)
    _check(out, _int_range, a, "retries", path, 0, 5, 1)
    p = cfg.get("poll_s")
    if _is_num(p) and p > 0 and _check(out, _pos_num, a, "poll_s", path, p) and a["poll_s"] < p:
        out.append((_join(path, "poll_s"), "%s is shorter than the node's poll_s (%s), which paces every "
                     "analyzer; lower the node's poll_s instead" % (_show(a["poll_s"]), _show(cfg["poll_s"]))))

    if ("profile" in a) == ("values" in a):
        out.append((_join(path, "profile"), 'give either "profile": "<name>" (a file in %s) or an inline '
                     '"values": [...] list' % cfg.get("profiles_dir")))
        return
    if "profile" in a:
        if cfg["profiles_dir"] is None or not _check(out, apply_profile, a, path, cfg["profiles_dir"], cache):
            return
    else:
        if "override" in a:
            out.append((_join(path, "override"), "only with a profile; edit the inline values instead"))
        vals = a["values"]
        if not isinstance(vals, list) or not vals:
            out.append((_join(path, "values"), "must be a non-empty list of values [{...}]"))
            return
        for j, v in enumerate(vals):
            _check(out, check_value, v, "%s.values[%d]" % (path, j))
        st = a.get("status")
        a["status"] = None
        if st is not None:
            box = []
            if _check(out, lambda: box.append(check_status(st, _join(path, "status")))):
                a["status"] = box[0]
        a["max_regs"] = 125
    if len(out) > bad:
        return
    if not _check(out, check_overlap, a["values"], a["status"], _join(path, "status")):
        return
    for j, v in enumerate(a["values"]):
        if v["param"] in params:
            out.append(("%s.values[%d].param" % (path, j), "%s is already read at %s; each parameter once per node"
                         % (v["param"], params[v["param"]])))
        else:
            params[v["param"]] = "%s.values[%d]" % (path, j)


def _validate_transport(t, tp):
    kind = _req(t, "kind", tp)
    if kind not in TRANSPORTS:
        raise ConfigError(_join(tp, "kind"), 'must be "rtu_tcp" (Modbus RTU over TCP, serial servers), "tcp" (Modbus TCP) '
                          'or "rtu" (RS-485 UART on the board); got %s' % _show(kind))
    out = []
    if kind != "rtu":
        _check(out, _known, t, _TCP, tp)
        _check(out, _str, t, "host", tp)
        _check(out, _int_range, t, "port", tp, 1, 65535)
        _raise_all(out)
        return kind
    _check(out, _known, t, _UART, tp)
    _check(out, _int_range, t, "uart", tp, 0, 2)
    _check(out, _int_range, t, "baud", tp, 1200, 115200, 9600)
    if t.setdefault("parity", "N") not in ("N", "E", "O"):
        out.append((_join(tp, "parity"), 'must be "N", "E" or "O" (9600 8N1 and 8O1 are both common)'))
    _check(out, _int_range, t, "stop", tp, 1, 2, 1)
    for pin in ("tx", "rx", "de"):
        if t.get(pin) is not None:
            _check(out, _int_range, t, pin, tp, 0, 48)
    _raise_all(out)
    return kind


def _validate_uplink(cfg, out):
    """key (HMAC), queue (flash store-and-forward), wifi, ntp, watchdog_s: defaults filled in, errors to out.
    One function on purpose: each function name stays interned in the heap after config.py is dropped."""
    k = cfg.get("key")
    if k is not None:
        ok = isinstance(k, str) and len(k) % 2 == 0 and 32 <= len(k) <= 128
        if ok:
            for ch in k:
                if ch not in "0123456789abcdefABCDEF":
                    ok = False
                    break
        if not ok:
            out.append(("key", "must be the node's HMAC-SHA256 key as hex: 32-128 hex digits (16-64 bytes), "
                         "the same value as the gateway's keys file; got %s"
                         % ("%d characters" % len(k) if isinstance(k, str) else _show(k))))
    q = cfg.get("queue")
    if q is None:
        q = cfg["queue"] = {}
    if _check(out, _obj, q, "queue"):
        _check(out, _known, q, _QUEUE, "queue")
        if _check(out, _int_range, q, "segment_kb", "queue", 1, 256, 32) & \
                _check(out, _int_range, q, "max_kb", "queue", 2, 65536, 1536):
            if q["max_kb"] < 2 * q["segment_kb"]:
                out.append(("queue.max_kb", "must be at least 2 x queue.segment_kb (%d), got %d"
                             % (2 * q["segment_kb"], q["max_kb"])))
        _check(out, _int_range, q, "batch_max", "queue", 1, 500, 50)
        _check(out, _int_range, q, "batch_bytes", "queue", 256, 65536, 32768)
        # no gateway confirmation in this many seconds (an older gateway): PUBACK frees records; 0: at once
        _check(out, _int_range, q, "confirm_s", "queue", 0, 432000, 600)  # (ticks_diff: under 6.2 days)
    w = cfg.get("wifi")
    if w is not None and _check(out, _obj, w, "wifi"):
        _check(out, _known, w, _WIFI, "wifi")
        _check(out, _str, w, "ssid", "wifi")
        _check(out, _str, w, "password", "wifi", None, True)
    n = cfg.get("ntp")
    if n is None:
        n = cfg["ntp"] = {}
    if _check(out, _obj, n, "ntp"):
        _check(out, _known, n, _NTP, "ntp")
        _check(out, _str, n, "host", "ntp", "pool.ntp.org", True)
        _check(out, _int_range, n, "sync_s", "ntp", 60, 604800, 3600)
    _check(out, _int_range, cfg, "watchdog_s", "", 0, 3600, 120)


def load_config(path, profiles_dir=None):
    """Read and validate a JSON config file. Unreadable or non-JSON files raise ConfigError too."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(path, "cannot read file (%s)" % e)
    try:
        cfg = json.loads(text)
    except ValueError as e:
        raise ConfigError(path, "not valid JSON (%s)" % e)
    try:
        return validate_config(cfg, profiles_dir)
    except ConfigError as e:  # every line names the file: a technician may have several open
        out = [(path + ": " + f, r) for f, r in e.errors]
        raise ConfigError(out[0][0], out[0][1], out)
