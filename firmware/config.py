"""Loads and validates the node configuration (JSON), filling defaults.
Errors name the exact field path and say how to fix it, for technicians on site."""
import json

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
TYPES = ("float32", "int16", "uint16", "int32", "uint32")
FLAGS = "NFMSDCTB"

_TOP = ("site", "node", "poll_s", "mqtt", "analyzers", "state_dir", "status_s", "outbox_max")
_MQTT = ("host", "port", "user", "password", "keepalive", "client_id", "timeout_ms", "clean_session")
_ANALYZER = ("name", "transport", "unit", "timeout_ms", "values", "status")
_TRANSPORT = ("kind", "host", "port")
_VALUE = ("param", "fc", "addr", "type", "order", "scale", "offset")
_STATUS = ("fc", "addr", "flags")


class ConfigError(Exception):
    """args = (field_path, reason)."""

    @property
    def field(self):
        return self.args[0]

    @property
    def reason(self):
        return self.args[1]

    def __str__(self):
        return "%s: %s" % (self.args[0], self.args[1])


def _is_int(x):
    return type(x) is int  # bool is excluded on purpose: `"port": true` is a typo, not 1


def _is_num(x):
    return type(x) is int or type(x) is float


def is_identifier(s):
    """[A-Za-z0-9_-]{1,64}, checked by hand (MicroPython's re lacks some features)."""
    if not isinstance(s, str) or not 1 <= len(s) <= 64:
        return False
    for ch in s:
        if not (("a" <= ch <= "z") or ("A" <= ch <= "Z") or ("0" <= ch <= "9") or ch == "_" or ch == "-"):
            return False
    return True


def is_param_code(s):
    """HJ 212 pollutant code: one lowercase letter and 5 digits, e.g. w01018."""
    if not isinstance(s, str) or len(s) != 6 or not ("a" <= s[0] <= "z"):
        return False
    for ch in s[1:]:
        if not "0" <= ch <= "9":
            return False
    return True


def _obj(d, path):
    if not isinstance(d, dict):
        raise ConfigError(path, "must be an object {...}")
    return d


def _known(d, allowed, path):
    # Sorted so the message is the same under both interpreters (MicroPython dicts are unordered).
    for k in sorted(d.keys()):
        if k not in allowed:
            raise ConfigError(_join(path, k), "unknown key (typo?); allowed keys: " + ", ".join(allowed))


def _join(path, key):
    return key if not path else path + "." + key


def _req(d, key, path):
    if key not in d:
        raise ConfigError(_join(path, key), "missing (required)")
    return d[key]


def _int_range(d, key, path, lo, hi, default=None):
    p = _join(path, key)
    if key not in d:
        if default is None:
            raise ConfigError(p, "missing (required), an integer %d-%d" % (lo, hi))
        d[key] = default
        return default
    v = d[key]
    if not _is_int(v) or not lo <= v <= hi:
        raise ConfigError(p, "must be an integer %d-%d, got %s" % (lo, hi, _show(v)))
    return v


def _show(v):
    try:
        return json.dumps(v)
    except Exception:
        return str(v)


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


def validate_config(cfg):
    """Returns cfg (modified in place) with defaults filled; raises ConfigError on the first problem."""
    _obj(cfg, "(top level)")
    _known(cfg, _TOP, "")
    for key in ("site", "node"):
        v = _req(cfg, key, "")
        if not is_identifier(v):
            raise ConfigError(key, "must be 1-64 characters from A-Z a-z 0-9 _ -, got %s" % _show(v))
    _pos_num(cfg, "poll_s", "")
    _pos_num(cfg, "status_s", "", 60)
    _int_range(cfg, "outbox_max", "", 1, 10000, 100)
    _str(cfg, "state_dir", "", "state", optional=True)

    m = _obj(_req(cfg, "mqtt", ""), "mqtt")
    _known(m, _MQTT, "mqtt")
    _str(m, "host", "mqtt")
    _int_range(m, "port", "mqtt", 1, 65535, 1883)
    _str(m, "user", "mqtt", optional=True)
    _str(m, "password", "mqtt", optional=True)
    if m["password"] is not None and m["user"] is None:
        raise ConfigError("mqtt.user", "missing: MQTT 3.1.1 needs a user name when a password is set")
    _int_range(m, "keepalive", "mqtt", 0, 65535, 60)
    _pos_num(m, "timeout_ms", "mqtt", 5000)
    _str(m, "client_id", "mqtt", cfg["site"] + "-" + cfg["node"], optional=True)
    if "clean_session" in m:
        if type(m["clean_session"]) is not bool:
            raise ConfigError("mqtt.clean_session", "must be true or false")
    else:
        m["clean_session"] = True

    ans = _req(cfg, "analyzers", "")
    if not isinstance(ans, list) or not ans:
        raise ConfigError("analyzers", "must be a non-empty list of analyzers [{...}]")
    params = {}
    for i, a in enumerate(ans):
        _validate_analyzer(a, "analyzers[%d]" % i, params)
    return cfg


def _validate_analyzer(a, path, params):
    _obj(a, path)
    _known(a, _ANALYZER, path)
    name = _req(a, "name", path)
    if not is_identifier(name):
        raise ConfigError(path + ".name", "must be 1-64 characters from A-Z a-z 0-9 _ -, got %s" % _show(name))
    t = _obj(_req(a, "transport", path), path + ".transport")
    tp = path + ".transport"
    _known(t, _TRANSPORT, tp)
    kind = _req(t, "kind", tp)
    if kind != "rtu_tcp":
        raise ConfigError(tp + ".kind", 'must be "rtu_tcp" (Modbus RTU over TCP; the only kind supported so far), got %s'
                          % _show(kind))
    _str(t, "host", tp)
    _int_range(t, "port", tp, 1, 65535)
    _int_range(a, "unit", path, 1, 247)
    _pos_num(a, "timeout_ms", path, 1000)

    vals = _req(a, "values", path)
    if not isinstance(vals, list) or not vals:
        raise ConfigError(path + ".values", "must be a non-empty list of values [{...}]")
    for j, v in enumerate(vals):
        vp = "%s.values[%d]" % (path, j)
        _obj(v, vp)
        _known(v, _VALUE, vp)
        param = _req(v, "param", vp)
        if not is_param_code(param):
            raise ConfigError(vp + ".param", "must be an HJ 212 code: one lowercase letter and 5 digits, e.g. w01018; got %s"
                              % _show(param))
        if param in params:
            raise ConfigError(vp + ".param", "%s is already read at %s; each parameter once per node" % (param, params[param]))
        params[param] = vp
        _fc(v, vp)
        _int_range(v, "addr", vp, 0, 65535)
        typ = _req(v, "type", vp)
        if typ not in TYPES:
            raise ConfigError(vp + ".type", "must be one of " + ", ".join(TYPES) + "; got %s" % _show(typ))
        n = 1 if typ in ("int16", "uint16") else 2
        if v["addr"] + n > 65536:
            raise ConfigError(vp + ".addr", "value runs past register 65535")
        if "order" not in v:
            v["order"] = "ABCD"
        elif v["order"] not in ORDERS:
            raise ConfigError(vp + ".order", "must be one of " + ", ".join(ORDERS) + "; got %s" % _show(v["order"]))
        for key, dflt in (("scale", 1), ("offset", 0)):
            if key not in v:
                v[key] = dflt
            elif not _is_num(v[key]):
                raise ConfigError(vp + "." + key, "must be a number, got %s" % _show(v[key]))

    if "status" in a and a["status"] is not None:
        sp = path + ".status"
        s = _obj(a["status"], sp)
        _known(s, _STATUS, sp)
        _fc(s, sp)
        _int_range(s, "addr", sp, 0, 65535)
        fl = _obj(_req(s, "flags", sp), sp + ".flags")
        for k in sorted(fl.keys()):
            kp = "%s.flags.%s" % (sp, k)
            if not (isinstance(k, str) and k.isdigit() and len(k) <= 5 and int(k) <= 65535):
                raise ConfigError(kp, "key must be a register value written as a decimal string 0-65535, e.g. \"1\"")
            f = fl[k]
            if not (isinstance(f, str) and len(f) == 1 and f in FLAGS):
                raise ConfigError(kp, "must be one HJ 212 flag letter of N F M S D C T B; got %s" % _show(f))
    else:
        a["status"] = None


def _fc(d, path):
    if "fc" not in d:
        d["fc"] = 3
    elif d["fc"] != 3 and d["fc"] != 4 or not _is_int(d["fc"]):
        raise ConfigError(path + ".fc", "must be 3 (holding registers) or 4 (input registers); got %s" % _show(d["fc"]))


def load_config(path):
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
    return validate_config(cfg)
