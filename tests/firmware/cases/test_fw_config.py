import json
from config import validate_config, load_config, ConfigError, is_identifier, is_param_code
from fakes import good_config, make_tmpdir, rmtree


def _err(mutate):
    cfg = good_config()
    mutate(cfg)
    try:
        validate_config(cfg)
    except ConfigError as e:
        return e
    raise AssertionError("config accepted")


def test_good_config_gets_defaults():
    cfg = validate_config(good_config())
    assert cfg["mqtt"]["port"] == 1883 and cfg["mqtt"]["keepalive"] == 60
    assert cfg["mqtt"]["client_id"] == "demo-site-cod-1"
    assert cfg["status_s"] == 60 and cfg["outbox_max"] == 100 and cfg["state_dir"] == "state"
    v = cfg["analyzers"][0]["values"][0]
    assert v["scale"] == 1 and v["offset"] == 0 and v["order"] == "ABCD"


def test_minimal_value_defaults():
    def m(c):
        c["analyzers"][0]["values"] = [{"param": "w21003", "addr": 10, "type": "uint16"}]
        del c["analyzers"][0]["status"]
        del c["analyzers"][0]["timeout_ms"]
    cfg = good_config()
    m(cfg)
    cfg = validate_config(cfg)
    a = cfg["analyzers"][0]
    assert a["values"][0]["fc"] == 3 and a["status"] is None and a["timeout_ms"] == 1000


def test_identifiers():
    assert is_identifier("a") and is_identifier("A_b-9" * 12 + "abcd")
    assert not is_identifier("") and not is_identifier("a" * 65) and not is_identifier("a b")
    assert not is_identifier("a/b") and not is_identifier("a+") and not is_identifier(5)
    assert is_param_code("w01018") and is_param_code("a21026")
    assert not is_param_code("W01018") and not is_param_code("w0101") and not is_param_code("w0101x")


def test_bad_fields_name_the_field():
    def setv(path_fn, key, val):
        def m(c):
            path_fn(c)[key] = val
        return m
    top = lambda c: c
    mq = lambda c: c["mqtt"]
    an = lambda c: c["analyzers"][0]
    tr = lambda c: c["analyzers"][0]["transport"]
    v0 = lambda c: c["analyzers"][0]["values"][0]
    st = lambda c: c["analyzers"][0]["status"]
    cases = [
        (setv(top, "site", "bad site"), "site", "A-Z"),
        (setv(top, "node", ""), "node", "1-64"),
        (setv(top, "poll_s", 0), "poll_s", "> 0"),
        (setv(top, "poll_s", "5"), "poll_s", "number"),
        (setv(top, "polls", 5), "polls", "unknown key"),
        (setv(mq, "port", 70000), "mqtt.port", "1-65535"),
        (setv(mq, "port", True), "mqtt.port", "integer"),
        (setv(mq, "host", ""), "mqtt.host", "text"),
        (setv(top, "analyzers", []), "analyzers", "non-empty"),
        (setv(an, "name", "a b"), "analyzers[0].name", "A-Z"),
        (setv(tr, "kind", "serial"), "analyzers[0].transport.kind", "rtu_tcp"),
        (setv(tr, "port", 0), "analyzers[0].transport.port", "1-65535"),
        (setv(an, "unit", 248), "analyzers[0].unit", "1-247"),
        (setv(an, "timeout_ms", -1), "analyzers[0].timeout_ms", "> 0"),
        (setv(an, "values", []), "analyzers[0].values", "non-empty"),
        (setv(v0, "param", "COD"), "analyzers[0].values[0].param", "w01018"),
        (setv(v0, "fc", 6), "analyzers[0].values[0].fc", "3"),
        (setv(v0, "addr", 65536), "analyzers[0].values[0].addr", "0-65535"),
        (setv(v0, "type", "float"), "analyzers[0].values[0].type", "float32, int16"),
        (setv(v0, "order", "ACBD"), "analyzers[0].values[0].order", "must be one of ABCD, CDAB, BADC, DCBA"),
        (setv(v0, "scale", "x"), "analyzers[0].values[0].scale", "number"),
        (setv(v0, "adr", 1), "analyzers[0].values[0].adr", "unknown key"),
        (setv(st, "fc", 5), "analyzers[0].status.fc", "3"),
        (setv(st, "flags", {"one": "M"}), "analyzers[0].status.flags.one", "decimal"),
        (setv(st, "flags", {"1": "X"}), "analyzers[0].status.flags.1", "N F M S D C T B"),
    ]
    for mutate, field, hint in cases:
        e = _err(mutate)
        assert e.field == field, (field, str(e))
        assert hint in e.reason, (hint, str(e))
        assert str(e).startswith(field + ": ")


def test_second_value_error_path_and_duplicates():
    def m(c):
        c["analyzers"][0]["values"].append({"param": "w21003", "addr": 4, "type": "float32", "order": "XYZW"})
    assert _err(m).field == "analyzers[0].values[1].order"

    def d(c):
        c["analyzers"][0]["values"].append({"param": "w01018", "addr": 4, "type": "float32"})
    e = _err(d)
    assert e.field == "analyzers[0].values[1].param" and "already" in e.reason


def test_missing_required():
    def m(c):
        del c["mqtt"]["host"]
    e = _err(m)
    assert e.field == "mqtt.host" and "missing" in e.reason

    def n(c):
        del c["analyzers"][0]["values"][0]["type"]
    assert _err(n).field == "analyzers[0].values[0].type"


def test_load_config_file():
    d = make_tmpdir()
    try:
        p = d + "/node.json"
        with open(p, "w") as f:
            f.write(json.dumps(good_config()))
        assert load_config(p)["node"] == "cod-1"
        with open(p, "w") as f:
            f.write("{not json")
        try:
            load_config(p)
            assert False
        except ConfigError as e:
            assert "JSON" in str(e)
    finally:
        rmtree(d)
