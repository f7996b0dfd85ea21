"""What config.py and analyzer_profile.py share while a config is checked: ConfigError, the HJ 212
flag letters, and the field checks both use (each error names the field path and says how to fix it).
A module of its own so that neither imports the other back (no import cycle); start-up only: start.py
drops it with config.py once the config is checked. The helpers keep their leading underscore: they
are the two checkers' own, not an API (and a renamed helper would be a new name in the heap)."""
import json
from compat import FLAGS  # the node's one definition


class ConfigError(Exception):
    """args = (field_path, reason[, [(field, reason), ...] every error found]). field and reason are
    the first error's; str() lists every error, one "field: reason" a line."""

    @property
    def field(self):
        return self.args[0]

    @property
    def reason(self):
        return self.args[1]

    @property
    def errors(self):
        return self.args[2] if len(self.args) > 2 else [(self.args[0], self.args[1])]

    def __str__(self):
        return "\n".join("%s: %s" % e for e in self.errors)


def _check(out, fn, *args):
    """fn(*args), its ConfigError added to out instead of raised: validation goes on and reports
    every independent error at once. True when fn passed."""
    try:
        fn(*args)
        return True
    except ConfigError as e:
        out.extend(e.errors)
        return False


def _raise_all(out):
    if out:
        u = []  # each once: two analyzers naming one broken profile report it once
        for e in out:
            if e not in u:
                u.append(e)
        raise ConfigError(u[0][0], u[0][1], u)


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
    out = [(_join(path, k), "unknown key (typo?); allowed keys: " + ", ".join(allowed))
            for k in sorted(d.keys()) if k not in allowed]
    _raise_all(out)


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
