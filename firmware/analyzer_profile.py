"""Analyzer profiles: the register map of one analyzer model as data (profiles/<name>.json), validated
into the compact form the Analyzer polls; per-node overrides. Errors name the file, field and fix."""
import json
from cfgcheck import (ConfigError, _join, FLAGS, _obj, _known, _req, _int_range, _show, _is_num, _is_int,
                      is_param_code, is_identifier, _check, _raise_all)

# float32 first: the order the error message lists them in.
TYPES = ("float32", "int16", "uint16", "int32", "uint32", "float64", "bit")
ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
_NREGS = {"int16": 1, "uint16": 1, "float32": 2, "int32": 2, "uint32": 2, "float64": 4, "bit": 1}
_PROFILE = ("model", "note", "values", "status", "max_regs")
_VALUE = ("param", "name", "unit", "fc", "addr", "type", "order", "scale", "offset", "range", "bit")
_STATUS = ("kind", "fc", "addr", "map", "bits", "default", "flags")
_OVERRIDE = ("param", "order", "scale", "offset", "range", "off")
KINDS = ("code", "bits", "ascii_flag")


def _flag(f, p):
    if not (isinstance(f, str) and len(f) == 1 and f in FLAGS):
        raise ConfigError(p, "must be one HJ 212 flag letter of N F M S D C T B; got %s" % _show(f))
    return f


def _num(d, key, p, dflt):
    if key not in d:
        d[key] = dflt
    elif not _is_num(d[key]):
        raise ConfigError(p + "." + key, "must be a number, got %s" % _show(d[key]))


def _range(d, p):
    r = d.get("range")
    if r is None:
        d["range"] = None
        return
    if not (isinstance(r, list) and len(r) == 2 and _is_num(r[0]) and _is_num(r[1]) and r[0] < r[1]):
        raise ConfigError(_join(p, "range"), "must be [low, high], two numbers with low < high; got %s" % _show(r))


def check_value(v, vp):
    """Validate one value entry in place, filling defaults (fc 3, order ABCD, scale 1, offset 0); one
    ConfigError lists every problem of it (the end register once fc, type and addr are right)."""
    _obj(v, vp)
    errs = []
    _check(errs, _known, v, _VALUE, vp)
    _check(errs, _param, v, vp)
    for key in ("name", "unit"):
        if key in v and not isinstance(v[key], str):
            errs.append((vp + "." + key, "must be a text string (documentation only)"))
    if _check(errs, _fc_type, v, vp) & _check(errs, _int_range, v, "addr", vp, 0, 65535):
        if v["addr"] + _NREGS[v["type"]] > 65536:
            errs.append((_join(vp, "addr"), "value runs past register 65535"))
    if "order" not in v:
        v["order"] = "ABCD"
    elif v["order"] not in ORDERS:
        errs.append((_join(vp, "order"), "must be one of " + ", ".join(ORDERS) + "; got %s" % _show(v["order"])))
    _check(errs, _scaling, v, vp)
    _check(errs, _range, v, vp)
    _raise_all(errs)
    return v


def _param(v, vp):
    param = _req(v, "param", vp)
    if not is_param_code(param):
        raise ConfigError(_join(vp, "param"), "must be an HJ 212 code: one lowercase letter and 5 digits, e.g. w01018; got %s"
                          % _show(param))


def _fc_type(v, vp):
    fc = v.get("fc", 3)
    if not (_is_int(fc) and 1 <= fc <= 4):
        raise ConfigError(_join(vp, "fc"), "must be 3 (holding registers), 4 (input registers), 1 (coils) or "
                          "2 (discrete inputs); got %s" % _show(fc))
    v["fc"] = fc
    typ = _req(v, "type", vp)
    if typ not in TYPES:
        raise ConfigError(_join(vp, "type"), "must be one of " + ", ".join(TYPES) + "; got %s" % _show(typ))
    if fc <= 2 and typ != "bit":
        raise ConfigError(_join(vp, "type"), "fc 1 and 2 (coils, discrete inputs) read single bits: type bit")
    if "bit" in v or (typ == "bit" and fc > 2):
        # A bit field of a register (a pump-running or alarm bit in a holding/input register).
        if typ != "bit" or fc <= 2:
            raise ConfigError(_join(vp, "bit"), "only with type bit and fc 3 or 4 (one bit of a register); "
                              "a coil or discrete input is fc 1 or 2 without bit")
        if "bit" not in v:
            raise ConfigError(_join(vp, "bit"), "missing: type bit with fc 3 or 4 is one bit of a register, give its "
                              "number 0-15 (a coil or discrete input is fc 1 or 2)")
        _int_range(v, "bit", vp, 0, 15)


def _scaling(v, vp):
    _num(v, "scale", vp, 1)
    if v["scale"] == 0:
        raise ConfigError(_join(vp, "scale"), "must not be 0")
    _num(v, "offset", vp, 0)
    if v.get("type") == "bit" and (v["scale"] != 1 or v["offset"] != 0):
        raise ConfigError(_join(vp, "scale" if v["scale"] != 1 else "offset"), "a bit value is 0 or 1: no scale "
                          "or offset")


def check_status(s, sp):
    """Validate a status entry; returns {"kind", "fc", "addr", "map", "bits", "default"}.
    The old inline form {"fc", "addr", "flags": {...}} is kind "code" with map = flags."""
    _obj(s, sp)
    _known(s, _STATUS, sp)
    if "flags" in s:
        if "map" in s or s.get("kind", "code") != "code":
            raise ConfigError(_join(sp, "flags"), "old name of map (kind code); give either flags or map")
        s["map"] = s.pop("flags")
        mp_path = _join(sp, "flags")
    else:
        mp_path = _join(sp, "map")
    kind = s.get("kind", "code")
    if kind not in KINDS:
        raise ConfigError(_join(sp, "kind"), "must be one of " + ", ".join(KINDS) + "; got %s" % _show(kind))
    fc = s.get("fc", 3)
    if fc != 3 and fc != 4 or not _is_int(fc):
        raise ConfigError(_join(sp, "fc"), "must be 3 (holding registers) or 4 (input registers); got %s" % _show(fc))
    _int_range(s, "addr", sp, 0, 65535)
    out = {"kind": kind, "fc": fc, "addr": s["addr"], "map": {}, "bits": [],
           "default": "D" if kind == "ascii_flag" else "N"}
    if "default" in s:
        out["default"] = _flag(s["default"], _join(sp, "default"))
    mp = s.get("map", {})
    if kind == "bits":
        if "map" in s:
            raise ConfigError(_join(sp, "map"), "kind bits takes bits: [{\"bit\": 0-15, \"flag\": \"D\"}, ...], not map")
        bits = s.get("bits")
        if not isinstance(bits, list) or not bits:
            raise ConfigError(_join(sp, "bits"), "must be a non-empty list [{\"bit\": 0-15, \"flag\": \"D\"}, ...], "
                              "first set bit wins")
        for i, b in enumerate(bits):
            bp = "%s.bits[%d]" % (sp, i)
            _obj(b, bp)
            _known(b, ("bit", "flag"), bp)
            _int_range(b, "bit", bp, 0, 15)
            out["bits"].append((b["bit"], _flag(_req(b, "flag", bp), _join(bp, "flag"))))
        return out
    if "bits" in s:
        raise ConfigError(_join(sp, "bits"), "only for kind bits")
    _obj(mp, mp_path)
    for k in sorted(mp.keys()):
        kp = "%s.%s" % (mp_path, k)
        if kind == "code":
            if not (isinstance(k, str) and k.isdigit() and len(k) <= 5 and int(k) <= 65535):
                raise ConfigError(kp, "key must be a register value written as a decimal string 0-65535, e.g. \"1\"")
            out["map"][int(k)] = _flag(mp[k], kp)
        else:
            if not (1 <= len(k) <= 2 and " " < k[0] <= "~" and k[-1] > " " and k[-1] <= "~"):
                raise ConfigError(kp, "key must be the vendor's 1 or 2 ASCII letters as sent, e.g. \"L\" or \"cz\"")
            out["map"][k] = _flag(mp[k], kp)
    return out


def check_overlap(values, st, sp):
    """The status register must not be one of a value's own registers (a typo in addr, usually);
    a bit value may sit in it (one bit of the status word read as a value)."""
    if st is None:
        return
    for v in values:
        if (v["fc"] == st["fc"] and v["type"] != "bit"
                and v["addr"] <= st["addr"] < v["addr"] + _NREGS[v["type"]]):
            raise ConfigError(_join(sp, "addr"), "register %d (fc %d) is also part of value %s (%s at %d); the "
                              "status needs a register of its own" % (st["addr"], st["fc"], v["param"], v["type"],
                                                                      v["addr"]))


def validate_profile(obj, where):
    """Validate a parsed profile; `where` (its file) prefixes every error field; one ConfigError lists
    every problem (the status-inside-a-value check once the values and the status are right)."""
    if not isinstance(obj, dict):
        raise ConfigError(where, "must be a JSON object {...}")
    errs = []
    _check(errs, _known, obj, _PROFILE, "")
    m = obj.get("model")
    if not isinstance(m, str) or not m:
        errs.append(("model", "missing (required)" if "model" not in obj else
                     "must be a non-empty text string naming the analyzer model"))
    vals = obj.get("values")
    if not isinstance(vals, list) or not vals:
        errs.append(("values", "missing (required)" if "values" not in obj else
                     "must be a non-empty list of values [{...}]"))
        vals = []
    n = len(errs)
    seen = {}
    for j, v in enumerate(vals):
        vp = "values[%d]" % j
        if _check(errs, check_value, v, vp):
            if v["param"] in seen:
                errs.append((_join(vp, "param"), "%s is already at %s" % (v["param"], seen[v["param"]])))
            else:
                seen[v["param"]] = vp
    st = obj.get("status")
    obj["status"] = None
    if st is not None:
        try:
            obj["status"] = check_status(st, "status")
        except ConfigError as e:
            errs.extend(e.errors)
    if len(errs) == n:
        _check(errs, check_overlap, vals, obj["status"], "status")
    _check(errs, _int_range, obj, "max_regs", "", 1, 125, 125)
    _raise_all([(where + ": " + f if f else where, r) for f, r in errs])
    return obj


def profile_names(profiles_dir):
    import os
    try:
        return sorted([n[:-5] for n in os.listdir(profiles_dir) if n.endswith(".json")])
    except OSError:
        return []


def load_profile(name, profiles_dir, field="profile"):
    """Read and validate <profiles_dir>/<name>.json; a missing file is reported at `field`."""
    path = profiles_dir + "/" + _join(name, "json")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError(field, "no profile file %s (profiles there: %s)"
                          % (path, ", ".join(profile_names(profiles_dir)) or "none"))
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise ConfigError(path, "not valid JSON (%s)" % e)
    return validate_profile(obj, path)


def apply_profile(a, path, profiles_dir, cache):
    """Fill analyzer a's values/status/max_regs from the profile it names, then apply overrides:
    "override": {"<param>": {"param", "order", "scale", "offset", "range", "off": true}}."""
    name = a["profile"]
    if not is_identifier(name):
        raise ConfigError(_join(path, "profile"), "must be a profile name (file name without .json), got %s" % _show(name))
    prof = cache.get(name)
    if prof is None:
        prof = load_profile(name, profiles_dir, _join(path, "profile"))
        cache[name] = prof
    op = _join(path, "override")
    ov = a.get("override") or {}
    _obj(ov, op)
    errs = []
    by_param = {}
    for v in prof["values"]:
        by_param[v["param"]] = v
    for k in sorted(ov.keys()):
        if k not in by_param:
            errs.append((_join(op, k), "profile %s has no value %s (it has %s)"
                         % (name, k, ", ".join(sorted(by_param.keys())))))
        elif _check(errs, _obj, ov[k], _join(op, k)):
            _check(errs, _known, ov[k], _OVERRIDE, _join(op, k))
    vals = []
    for v in prof["values"]:
        o = ov.get(v["param"])
        # A copy per analyzer (two analyzers of one model may override differently), without the
        # documentation-only keys: the node keeps only what it polls with.
        c = {}
        for key in v:
            if key != "name" and key != "unit":
                c[key] = v[key]
        if o and isinstance(o, dict):  # one that is not is reported above
            if o.get("off") is True:
                continue
            for key in _OVERRIDE[:-1]:
                if key in o:
                    c[key] = o[key]
            _check(errs, check_value, c, _join(op, v["param"]))
        vals.append(c)
    if not vals:
        errs.append((op, "every value of profile %s is switched off" % name))
    a["values"] = vals
    if "status" not in a:
        a["status"] = prof["status"]
    elif a["status"] is not None:  # the site's own wiring of the status word wins over the profile's
        try:
            a["status"] = check_status(a["status"], _join(path, "status"))
        except ConfigError as e:
            errs.extend(e.errors)
    _raise_all(errs)
    a["max_regs"] = prof["max_regs"]
    a.pop("override", None)
