"""Analyzer profiles as data: every shipped profile validates; node configs reference them with
overrides; a bad profile or reference is refused naming the file, the field and the reason."""
import json
import os
from config import validate_config, load_config, ConfigError, default_profiles_dir
from analyzer_profile import load_profile, validate_profile, profile_names
from fakes import good_config, make_tmpdir, rmtree, raises

DIR = default_profiles_dir()


def _cfg(*analyzers):
    c = good_config()
    c["analyzers"] = list(analyzers)
    return c


def _an(name, profile, unit=1, **kw):
    a = {"name": name, "profile": profile, "unit": unit,
         "transport": {"kind": "rtu_tcp", "host": "bus", "port": 5020}}
    for k in kw:
        a[k] = kw[k]
    return a


def test_every_shipped_profile_is_valid():
    names = profile_names(DIR)
    for want in ("cod_generic", "cod_hach_cdab", "cod_yiwen_abcd", "nh3n_xinruipeng", "tptn_thermo", "ph_temp",
                 "flow_lmag", "logger_multi", "cems_flue_gas", "energy_meter_3ph"):
        assert want in names, want
    kinds = {}
    for n in names:
        p = load_profile(n, DIR)
        assert p["model"] and p["values"], n
        for v in p["values"]:
            assert v["param"][0] in "wap" and len(v["param"]) == 6, (n, v["param"])
        if p["status"] is not None:
            kinds[p["status"]["kind"]] = True
    assert sorted(kinds.keys()) == ["ascii_flag", "bits", "code"]


def test_profile_fills_values_and_status():
    c = validate_config(_cfg(_an("nh3n", "nh3n_xinruipeng", 2), _an("flow", "flow_lmag", 3)))
    a = c["analyzers"][0]
    assert a["values"] == [{"param": "w21003", "fc": 3, "addr": 4101, "type": "float32", "order": "ABCD",
                            "scale": 1, "offset": 0, "range": [0, 100]}]
    assert a["status"]["kind"] == "ascii_flag" and a["status"]["addr"] == 4103
    assert a["status"]["map"]["L"] == "T" and a["status"]["default"] == "D"
    f = c["analyzers"][1]
    assert [(v["param"], v["fc"], v["type"]) for v in f["values"]] == [("w00000", 4, "float32"),
                                                                     ("w00001", 4, "float64")]
    assert f["status"]["bits"][0] == (1, "D")
    assert a["poll_s"] == c["poll_s"] and a["retries"] == 1 and a["max_regs"] == 125


def test_overrides_per_value():
    c = validate_config(_cfg(_an("cod", "cod_generic", override={"w01018": {"order": "CDAB", "range": [0, 2000]}}),
                             _an("log", "logger_multi", 7, override={"w01018": {"off": True},
                                                                     "w21017": {"param": "w21016", "scale": 0.5}})))
    v = c["analyzers"][0]["values"][0]
    assert v["order"] == "CDAB" and v["range"] == [0, 2000]
    params = [v["param"] for v in c["analyzers"][1]["values"]]
    assert "w01018" not in params and "w21016" in params and "w21017" not in params
    assert c["analyzers"][1]["values"][-1]["scale"] == 0.5
    # The profile itself is untouched for the next analyzer that uses it.
    c2 = validate_config(_cfg(_an("a", "cod_generic"), _an("b", "cod_generic", 2, override={
        "w01018": {"param": "w01019"}})))
    assert c2["analyzers"][0]["values"][0]["order"] == "ABCD"
    assert c2["analyzers"][1]["values"][0]["param"] == "w01019"


def _err(cfg, profiles_dir=None):
    try:
        validate_config(cfg, profiles_dir)
    except ConfigError as e:
        return e
    raise AssertionError("accepted")


def test_bad_references_name_the_config_field():
    e = _err(_cfg(_an("x", "no_such_analyzer")))
    assert e.field == "analyzers[0].profile" and "no_such_analyzer.json" in e.reason and "cod_generic" in e.reason
    e = _err(_cfg(_an("x", "../etc/passwd")))
    assert e.field == "analyzers[0].profile"
    e = _err(_cfg(_an("x", "cod_generic", override={"w99999": {"scale": 2}})))
    assert e.field == "analyzers[0].override.w99999" and "w01018" in e.reason
    e = _err(_cfg(_an("x", "cod_generic", override={"w01018": {"adr": 2}})))
    assert e.field == "analyzers[0].override.w01018.adr" and "unknown key" in e.reason
    e = _err(_cfg(_an("x", "cod_generic", override={"w01018": {"order": "XYZW"}})))
    assert e.field == "analyzers[0].override.w01018.order"
    e = _err(_cfg(_an("x", "cod_generic", override={"w01018": {"off": True}})))
    assert "switched off" in e.reason
    both = _an("x", "cod_generic")
    both["values"] = [{"param": "w01018", "addr": 0, "type": "float32"}]
    assert _err(_cfg(both)).field == "analyzers[0].profile"
    neither = _an("x", "cod_generic")
    del neither["profile"]
    assert _err(_cfg(neither)).field == "analyzers[0].profile"
    e = _err(_cfg(_an("a", "cod_generic"), _an("b", "logger_multi", 2)))
    assert e.field == "analyzers[1].values[0].param" and "analyzers[0].values[0]" in e.reason


def _write(d, name, obj):
    with open(d + "/" + name + ".json", "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def _prof(**status):
    p = {"model": "test", "values": [{"param": "w01018", "addr": 0, "type": "float32"}]}
    if status:
        p["status"] = status
    return p


def test_bad_profiles_name_the_file_the_field_and_the_reason():
    d = make_tmpdir()
    try:
        cases = [
            ("{not json", "", "not valid JSON"),
            ({"values": []}, "model", "missing"),
            ({"model": "m", "values": []}, "values", "non-empty"),
            ({"model": "m", "values": [{"param": "w01018", "addr": 0, "type": "real"}]}, "values[0].type",
             "float32, int16"),
            ({"model": "m", "values": [{"param": "w01018", "addr": 0, "type": "float32", "range": [5, 1]}]},
             "values[0].range", "low < high"),
            ({"model": "m", "values": [{"param": "w01018", "addr": 0, "type": "bit"}]}, "values[0].bit",
             "number 0-15"),
            ({"model": "m", "values": [{"param": "w01018", "fc": 3, "addr": 0, "type": "bit", "bit": 16}]},
             "values[0].bit", "0-15"),
            ({"model": "m", "values": [{"param": "w01018", "fc": 3, "addr": 0, "type": "int16", "bit": 3}]},
             "values[0].bit", "only with type bit"),
            ({"model": "m", "values": [{"param": "w01018", "fc": 1, "addr": 0, "type": "bit", "bit": 3}]},
             "values[0].bit", "only with type bit and fc 3 or 4"),
            ({"model": "m", "values": [{"param": "w01018", "fc": 2, "addr": 0, "type": "int16"}]},
             "values[0].type", "type bit"),
            ({"model": "m", "values": [{"param": "w01018", "addr": 0, "type": "int16", "scale": 0}]},
             "values[0].scale", "not be 0"),
            ({"model": "m", "values": [{"param": "w01018", "addr": 0, "type": "int16"},
                                       {"param": "w01018", "addr": 1, "type": "int16"}]}, "values[1].param", "already"),
            ({"model": "m", "values": [{"param": "w01018", "addr": 0, "type": "int16"}], "colour": 1}, "colour",
             "unknown key"),
            (_prof(kind="morse", addr=2), "status.kind", "code, bits, ascii_flag"),
            (_prof(kind="code", addr=0), "status.addr", "also part of value w01018"),
            (_prof(kind="code", addr=2, map={"x": "M"}), "status.map.x", "decimal"),
            (_prof(kind="code", addr=2, map={"1": "Q"}), "status.map.1", "N F M S D C T B"),
            (_prof(kind="bits", addr=2, bits=[{"bit": 16, "flag": "D"}]), "status.bits[0].bit", "0-15"),
            (_prof(kind="bits", addr=2), "status.bits", "non-empty"),
            (_prof(kind="bits", addr=2, map={"1": "M"}), "status.map", "bits"),
            (_prof(kind="ascii_flag", addr=2, map={"abc": "T"}), "status.map.abc", "1 or 2 ASCII"),
            (_prof(kind="ascii_flag", addr=2, default="x"), "status.default", "flag letter"),
        ]
        for obj, field, hint in cases:
            _write(d, "bad", obj)
            e = _err(_cfg(_an("x", "bad")), d)
            path = d + "/bad.json"
            want = path + ": " + field if field else path
            assert e.field == want, (want, str(e))
            assert hint in e.reason, (hint, str(e))
            assert str(e).startswith(want + ": ")
    finally:
        rmtree(d)


def test_profile_read_once_for_many_analyzers():
    d = make_tmpdir()
    try:
        _write(d, "p", _prof(kind="ascii_flag", addr=2))
        c = _cfg(_an("a", "p", 1, override={"w01018": {"param": "w01019"}}), _an("b", "p", 2))
        c["profiles_dir"] = d
        c = validate_config(c)
        assert c["analyzers"][0]["status"] is c["analyzers"][1]["status"]  # one copy in RAM
        os.remove(d + "/p.json")
    finally:
        rmtree(d)


def test_transport_kinds():
    c = validate_config(_cfg(_an("a", "cod_generic", transport={"kind": "tcp", "host": "10.0.0.5", "port": 502}),
                             _an("b", "ph_temp", 2, transport={"kind": "rtu", "uart": 2, "tx": 17, "rx": 16, "de": 4})))
    t = c["analyzers"][1]["transport"]
    assert (t["baud"], t["parity"], t["stop"]) == (9600, "N", 1)
    for tr, field, hint in (({"kind": "rtu", "uart": 1, "parity": "X"}, "parity", "N"),
                            ({"kind": "rtu", "uart": 1, "baud": 300}, "baud", "1200-115200"),
                            ({"kind": "rtu", "uart": 3}, "uart", "0-2"),
                            ({"kind": "rtu", "uart": 1, "host": "x"}, "host", "unknown key"),
                            ({"kind": "tcp", "host": "x"}, "port", "missing"),
                            ({"kind": "can", "host": "x"}, "kind", "rtu_tcp")):
        e = _err(_cfg(_an("a", "cod_generic", transport=tr)))
        assert e.field == "analyzers[0].transport." + field and hint in e.reason, str(e)


def test_per_analyzer_poll_and_retries():
    c = validate_config(_cfg(_an("a", "cod_generic", poll_s=60, retries=0)))
    assert c["analyzers"][0]["poll_s"] == 60 and c["analyzers"][0]["retries"] == 0
    assert _err(_cfg(_an("a", "cod_generic", retries=9))).field == "analyzers[0].retries"
    assert _err(_cfg(_an("a", "cod_generic", poll_s=0))).field == "analyzers[0].poll_s"


def test_load_config_uses_profiles_beside_the_firmware():
    d = make_tmpdir()
    try:
        p = d + "/node.json"
        with open(p, "w") as f:
            f.write(json.dumps(_cfg(_an("cems", "cems_flue_gas"))))
        c = load_config(p)
        assert [v["param"] for v in c["analyzers"][0]["values"]][:2] == ["a21026", "a21002"]
        assert validate_profile(json.loads(json.dumps(_prof())), "x")["status"] is None
    finally:
        rmtree(d)
