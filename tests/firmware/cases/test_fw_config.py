import json
from config import validate_config, load_config, ConfigError
from cfgcheck import is_identifier, is_param_code
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


def _second(c, **kw):
    """A second analyzer like the first (another param), changed by kw."""
    a = json.loads(json.dumps(c["analyzers"][0]))
    a["name"] = "nh3n"
    a["unit"] = 2
    a["values"][0]["param"] = "w21003"
    for k in kw:
        a[k] = kw[k]
    c["analyzers"].append(a)
    return a


def test_analyzers_sharing_a_bus_must_agree():
    def same_name(c):
        _second(c, name="cod")
    e = _err(same_name)
    assert e.field == "analyzers[1].name" and "analyzers[0]" in e.reason

    def same_unit(c):
        _second(c, unit=1)
    e = _err(same_unit)
    assert e.field == "analyzers[1].unit" and "cod:5020" in e.reason and "analyzers[0]" in e.reason

    def other_framing(c):
        a = _second(c)
        a["transport"]["kind"] = "tcp"
    e = _err(other_framing)
    assert e.field == "analyzers[1].transport.kind" and '"rtu_tcp"' in e.reason

    def uart(c, **t):
        c["analyzers"][0]["transport"] = {"kind": "rtu", "uart": 2, "tx": 17, "rx": 16, "de": 4}
        a = _second(c)
        a["transport"] = {"kind": "rtu", "uart": 2, "tx": 17, "rx": 16, "de": 4}
        for k in t:
            a["transport"][k] = t[k]

    e = _err(lambda c: uart(c, baud=19200))
    assert e.field == "analyzers[1].transport.baud" and "uart 2" in e.reason and "9600" in e.reason
    assert _err(lambda c: uart(c, parity="E")).field == "analyzers[1].transport.parity"
    assert _err(lambda c: uart(c, de=5)).field == "analyzers[1].transport.de"
    ok = good_config()
    uart(ok)
    validate_config(ok)  # same settings, other unit: one bus, fine
    ok = good_config()
    _second(ok, unit=1, transport={"kind": "rtu_tcp", "host": "cod", "port": 5021})
    validate_config(ok)  # unit 1 again, but on another port: another bus
    # One device split over two entries (its own poll period each): one unit id, other registers,
    # both may read its status word.
    def split(c, addr, status):
        a = _second(c, unit=1, poll_s=300)
        a["values"][0]["addr"] = addr
        if not status:
            del a["status"]
    for status in (False, True):
        ok = good_config()
        split(ok, 10, status)
        validate_config(ok)
    e = _err(lambda c: split(c, 1, False))  # its value runs over the first entry's float at 0-1
    assert e.field == "analyzers[1].unit" and "register 1" in e.reason and "w01018" in e.reason, str(e)
    e = _err(lambda c: split(c, 2, False))  # its value is the first entry's status register
    assert e.field == "analyzers[1].unit" and "register 2" in e.reason and "its status" in e.reason, str(e)


def test_modbus_tcp_unit_ids_0_and_255_but_not_on_rtu():
    for unit in (0, 255):
        c = good_config()
        c["analyzers"][0]["transport"] = {"kind": "tcp", "host": "plc", "port": 502}
        c["analyzers"][0]["unit"] = unit
        assert validate_config(c)["analyzers"][0]["unit"] == unit
        e = _err(lambda c: c["analyzers"][0].update(unit=unit))
        assert e.field == "analyzers[0].unit" and "1-247" in e.reason


def test_timeouts_that_would_outlast_the_watchdog_are_refused():
    def slow(c):
        a = c["analyzers"][0]
        a["timeout_ms"] = 30000
        a["retries"] = 3
    e = _err(slow)  # 1 read (value + status together) x 4 tries x 30 s + 5 s MQTT > 120 s
    assert e.field == "analyzers[0].timeout_ms", str(e)
    assert "30000 ms x (1 + 3 retries) x 1 read(s)" in e.reason and "watchdog_s (120 s)" in e.reason

    def two_reads(c):
        a = c["analyzers"][0]
        a["timeout_ms"] = 20000
        a["retries"] = 2
        a["values"].append({"param": "w21003", "addr": 50, "type": "float32"})
    assert "x 2 read(s)" in _err(two_reads).reason  # 2 x 3 x 20 s > 120 s; one read would pass
    c = good_config()
    c["analyzers"][0]["timeout_ms"] = 20000
    c["analyzers"][0]["retries"] = 2
    validate_config(c)
    # One MQTT exchange (and an NTP sync) between two feeds must fit too.
    e = _err(lambda c: c.update(watchdog_s=6, mqtt={"host": "b", "timeout_ms": 4000}))
    assert e.field == "mqtt.timeout_ms" and "watchdog_s (6 s)" in e.reason
    # On RS-485 the wire time counts: 6 tries x (1000 ms + 175 ms of wire at 1200 baud) = 7050 ms is
    # not below 7 s, where 6 x 1000 ms alone would be.
    def slow_line(c):
        c["watchdog_s"] = 7
        c["mqtt"]["timeout_ms"] = 1000
        a = c["analyzers"][0]
        a["transport"] = {"kind": "rtu", "uart": 1, "baud": 1200}
        a["timeout_ms"] = 1000
        a["retries"] = 5
    e = _err(slow_line)
    assert e.field == "analyzers[0].timeout_ms" and "x 1 read(s)" in e.reason, str(e)
    c = good_config()
    slow(c)
    c["watchdog_s"] = 0  # no watchdog: nothing to outlast
    validate_config(c)
    c = good_config()
    slow(c)
    c["watchdog_s"] = 300
    validate_config(c)


def test_status_register_inside_a_value_is_refused():
    def inside(c):
        c["analyzers"][0]["status"]["addr"] = 1  # the float's second register
    e = _err(inside)
    assert e.field == "analyzers[0].status.addr" and "w01018" in e.reason and "float32 at 0" in e.reason
    c = good_config()
    c["analyzers"][0]["status"]["addr"] = 1
    c["analyzers"][0]["status"]["fc"] = 4  # the same address in the other table: fine
    validate_config(c)
    c = good_config()
    c["analyzers"][0]["values"].append({"param": "e90001", "addr": 2, "type": "bit", "bit": 3})
    validate_config(c)  # one bit of the status word as a value: fine


def test_an_analyzer_cannot_poll_faster_than_the_node():
    e = _err(lambda c: c["analyzers"][0].update(poll_s=1))
    assert e.field == "analyzers[0].poll_s" and "node's poll_s (5)" in e.reason
    c = good_config()
    c["analyzers"][0]["poll_s"] = 60
    assert validate_config(c)["analyzers"][0]["poll_s"] == 60


def test_every_independent_error_at_once():
    def m(c):
        c["site"] = "bad site!"
        c["mqtt"]["port"] = "x"
        c["queue"] = {"max_kb": 1}
        c["analyzers"][0]["unit"] = 300
        c["analyzers"][0]["values"][0]["order"] = "XYZW"
        c["analyzers"][0]["transport"]["prot"] = 1
    e = _err(m)
    fields = [f for f, _r in e.errors]
    assert fields == ["site", "queue.max_kb", "mqtt.port", "analyzers[0].transport.prot", "analyzers[0].unit",
                      "analyzers[0].values[0].order"], fields
    assert e.field == "site" and "A-Z" in e.reason
    lines = str(e).split("\n")
    assert len(lines) == 6 and lines[4] == "analyzers[0].unit: must be an integer 1-247, got 300", lines


def test_a_broken_part_skips_what_depends_on_it():
    def m(c):
        del c["site"]
        c["mqtt"] = 5
        c["analyzers"].append({"name": "cod", "transport": "cod:502", "unit": 2, "values": []})
    e = _err(m)  # no KeyError or TypeError on the way
    fields = [f for f, _r in e.errors]
    assert fields == ["site", "mqtt", "analyzers[1].transport", "analyzers[1].values"], fields
    # the duplicate name is a cross-analyzer check: it waits until both analyzers are whole
    assert "analyzers[1].name" not in fields


def test_load_config_names_the_file_on_every_line():
    d = make_tmpdir()
    try:
        p = d + "/node.json"
        cfg = good_config()
        cfg["poll_s"] = -1
        cfg["mqtt"]["host"] = ""
        with open(p, "w") as f:
            f.write(json.dumps(cfg))
        try:
            load_config(p)
        except ConfigError as e:
            lines = str(e).split("\n")
            assert len(lines) == 2 and all(ln.startswith(p + ": ") for ln in lines), lines
            assert lines[0] == p + ": poll_s: must be a number > 0, got -1", lines
        else:
            raise AssertionError("config accepted")
    finally:
        rmtree(d)


def test_every_profile_problem_at_once_and_once_each():
    d = make_tmpdir()
    try:
        with open(d + "/bad.json", "w") as f:
            f.write(json.dumps({"model": "m", "colour": 1, "values": [
                {"param": "w01018", "addr": 0, "type": "real"},
                {"param": "w01019", "addr": 4, "type": "float32", "order": "XYZW", "scale": 0}]}))
        with open(d + "/good.json", "w") as f:
            f.write(json.dumps({"model": "m", "values": [{"param": "w21003", "addr": 0, "type": "float32"}]}))
        tr = {"kind": "rtu_tcp", "host": "bus", "port": 5020}
        c = good_config()
        c["profiles_dir"] = d
        c["analyzers"] = [{"name": "a", "profile": "bad", "unit": 1, "transport": tr},
                          {"name": "b", "profile": "bad", "unit": 2, "transport": tr},  # the same file: listed once
                          {"name": "c", "profile": "good", "unit": 3, "transport": tr,
                           "override": {"w21003": {"order": "ACBD", "adr": 1}, "w99999": {}}}]
        e = _err(lambda cfg: cfg.update(c))
        p = d + "/bad.json: "
        assert [f for f, _r in e.errors] == [
            p + "colour", p + "values[0].type", p + "values[1].order", p + "values[1].scale",
            "analyzers[2].override.w21003.adr", "analyzers[2].override.w99999",
            "analyzers[2].override.w21003.order"], e.errors
        assert e.errors[3][1] == "must not be 0" and "has no value w99999 (it has w21003)" in e.errors[5][1]
    finally:
        rmtree(d)


def test_every_field_of_a_value_at_once():
    def m(c):
        v = c["analyzers"][0]["values"][0]
        v.update(param="COD", fc=9, order="XYZW", scale="x", range=[5, 1])
        c["analyzers"][0]["values"].append({"param": "w21003", "addr": 70000, "type": "int8"})
    e = _err(m)
    assert [f for f, _r in e.errors] == [
        "analyzers[0].values[0].param", "analyzers[0].values[0].fc", "analyzers[0].values[0].order",
        "analyzers[0].values[0].scale", "analyzers[0].values[0].range",
        "analyzers[0].values[1].type", "analyzers[0].values[1].addr"], e.errors


def test_a_broken_profiles_dir_or_list_does_not_crash():
    def m(c):
        c["profiles_dir"] = 5
        c["mqtt"]["port"] = 0
        c["analyzers"] = [{"name": "a", "profile": "cod_generic", "unit": 1,
                           "transport": {"kind": "rtu_tcp", "host": "bus", "port": 5020}}]
    e = _err(m)  # no TypeError from reading a profile in folder 5
    assert [f for f, _r in e.errors] == ["mqtt.port", "profiles_dir"], e.errors
    e = _err(lambda c: c.update(analyzers={"name": "a"}, node=None, mqtt={"host": "b", "user": 3}))
    assert [f for f, _r in e.errors] == ["node", "mqtt.user", "analyzers"], e.errors
    assert e.errors[2][1] == "must be a non-empty list of analyzers [{...}]"
