"""The Analyzer: status kinds -> HJ 212 flags, range -> T, scaling, health counters, backoff of a
dead analyzer, several analyzers on one bus, per-analyzer poll periods (fake bus, real firmware code)."""
import json
from analyzer import Analyzer, status_flag, BACKOFF_CAP_MS

_CODE, _BITS, _ASCII = 0, 1, 2  # analyzer's status kinds (const(): not importable on MicroPython)
from modbus_master import ModbusMaster
from regencode import encode
from config import validate_config
from node import Node
from modbus_fakes import FakeBus
from fakes import FakeHW, FakeMQTT, good_config, make_tmpdir, rmtree


def _acfg(profile, unit=1, **kw):
    a = {"name": kw.pop("name", profile.split("_")[0]), "profile": profile, "unit": unit, "timeout_ms": 100,
         "transport": {"kind": "rtu_tcp", "host": "bus", "port": 5020}}
    for k in kw:
        a[k] = kw[k]
    return a


def _analyzers(*acfgs):
    c = good_config()
    c["analyzers"] = list(acfgs)
    c = validate_config(c)
    bus = FakeBus()
    m = ModbusMaster(bus)
    return bus, [Analyzer(a, m) for a in c["analyzers"]]


def _f32(bus, unit, addr, v, order="ABCD", fc=3):
    bus.unit(unit).set_regs(fc, addr, encode(v, "float32", order))


def test_status_flag_kinds():
    code = {0: "N", 1: "M", 2: "C"}
    assert [status_flag(_CODE, r, code, "N") for r in (0, 1, 2, 77)] == ["N", "M", "C", "N"]
    assert status_flag(_CODE, 77, code, "D") == "D"
    bits = [(4, "F"), (2, "D"), (0, "M")]
    assert [status_flag(_BITS, r, bits, "N") for r in (0, 1, 4, 5, 0x14, 0x8000)] == ["N", "M", "D", "D", "F", "N"]
    amap = {"L": "T", "cz": "C"}
    got = [status_flag(_ASCII, r, amap, "D") for r in (0x004E, 0x004D, 0x0054, 0x0043, 0x004C, 0x637A, 0x0051,
                                                      0x0000, 0x4E00)]
    assert got == ["N", "M", "T", "C", "T", "C", "D", "D", "N"]


def test_ascii_flag_profile_end_to_end_on_the_bus():
    bus, (a,) = _analyzers(_acfg("nh3n_xinruipeng", 2))
    _f32(bus, 2, 4101, 1.25)
    for reg, flag in ((0x004E, "N"), (0x004D, "M"), (0x004C, "T"), (0x6373, "C"), (0x0058, "D")):
        bus.unit(2).set_regs(3, 4103, [reg])
        out = {}
        a.sample(out)
        assert out == {"w21003": (1.25, flag)}, (hex(reg), out)
    assert bus.unit(2).asked == 5  # value and status word in one request each time


def test_range_gives_T_but_never_hides_another_flag():
    bus, (a,) = _analyzers(_acfg("cod_generic"))
    _f32(bus, 1, 0, 612.5)  # range of cod_generic is 0-500
    bus.unit(1).set_regs(3, 2, [0])
    out = {}
    a.sample(out)
    assert out["w01018"] == (612.5, "T")
    bus.unit(1).set_regs(3, 2, [1])
    a.sample(out)
    assert out["w01018"] == (612.5, "M")
    _f32(bus, 1, 0, -3.0)
    bus.unit(1).set_regs(3, 2, [0])
    a.sample(out)
    assert out["w01018"] == (-3.0, "T")


def test_scaled_integers_are_exact_and_float64_totaliser():
    bus, (ph, flow, em) = _analyzers(_acfg("ph_temp", 4), _acfg("flow_lmag", 5), _acfg("energy_meter_3ph", 6))
    bus.unit(4).set_regs(3, 0, [735, (-25) & 0xFFFF, 0])
    bus.unit(5).set_regs(4, 4112, encode(12.5, "float32", "CDAB") + encode(123456.789, "float64") + [0])
    u6 = bus.unit(6)
    for i, v in enumerate((10.5, 11.25, 9.75, 7.5)):
        u6.set_regs(3, 8204 + 2 * i, encode(v, "float32"))
    u6.set_regs(3, 16384, encode(1234567, "uint32"))
    out = {}
    for a in (ph, flow, em):
        a.sample(out)
    assert out["w01001"] == (7.35, "N") and out["w01010"] == (-2.5, "N")
    assert out["w00000"] == (12.5, "N") and out["w00001"] == (123456.789, "N")
    assert out["p02001"] == (7.5, "N") and out["p03001"] == (12345.67, "N")
    assert u6.asked == 2  # currents+power contiguous: one request; energy elsewhere: a second one
    bus.unit(5).set_regs(4, 4118, [4])  # bit 2: upper flow alarm
    flow.sample(out)
    assert out["w00000"][1] == "T"
    bus.unit(5).set_regs(4, 4118, [1])  # empty pipe
    flow.sample(out)
    assert out["w00001"] == (123456.789, "D")


def test_nan_from_the_analyzer_is_a_fault_not_a_value():
    bus, (a,) = _analyzers(_acfg("cod_generic"))
    bus.unit(1).set_regs(3, 0, [0x7FC0, 0, 0])
    out = {}
    a.sample(out)
    assert out["w01018"] == (None, "D")


def test_coils_and_discrete_inputs_as_values():
    c = good_config()
    c["analyzers"][0]["values"] = [{"param": "e90001", "fc": 2, "addr": 3, "type": "bit"},
                                   {"param": "e90002", "fc": 2, "addr": 4, "type": "bit"},
                                   {"param": "e90003", "fc": 1, "addr": 0, "type": "bit"}]
    c["analyzers"][0]["status"] = None
    c = validate_config(c)
    bus = FakeBus()
    bus.unit(1).bits[2][4] = 1
    bus.unit(1).bits[1][0] = 1
    a = Analyzer(c["analyzers"][0], ModbusMaster(bus))
    assert [(b[0], b[1], b[2]) for b in a.blocks] == [(1, 0, 1), (2, 3, 2)]
    out = {}
    a.sample(out)
    assert out == {"e90001": (0, "N"), "e90002": (1, "N"), "e90003": (1, "N")}


def test_health_counts_answers_timeouts_bad_frames_exceptions():
    bus, (a,) = _analyzers(_acfg("cod_generic", retries=0))
    _f32(bus, 1, 0, 30.0)
    bus.unit(1).set_regs(3, 2, [0])
    out = {}
    a.sample(out, 0)
    bus.unit(1).mode = "badcrc"
    a.sample(out, 1)
    assert out["w01018"] == (None, "D")
    bus.unit(1).mode = "exception"
    a.sample(out, 2)
    assert out["w01018"] == (None, "D")
    bus.unit(1).mode = "silent"
    a.sample(out, 3)
    assert out["w01018"] == (None, "B")
    assert a.health == [1, 1, 1, 1, 1]  # the bad frame was a CRC error
    assert json.loads("{" + a.health_json() + "}") == {"cod": [1, 1, 1, 1, 1]}


def test_dead_analyzer_backs_off_up_to_a_cap_and_comes_back():
    bus, (a,) = _analyzers(_acfg("cod_generic", retries=2))
    u = bus.unit(1)
    _f32(bus, 1, 0, 30.0)
    u.set_regs(3, 2, [0])
    u.mode = "silent"
    out = {}
    a.sample(out, 0)
    assert out["w01018"] == (None, "B") and u.asked == 3  # a healthy analyzer gets its retries
    asked_at = []
    for t in range(100, 400000, 100):
        n = u.asked
        a.sample(out, t)
        assert out["w01018"] == (None, "B")
        if u.asked != n:
            assert u.asked == n + 1  # a dead one: one try, no retries
            asked_at.append(t)
    gaps = [asked_at[0]] + [asked_at[i] - asked_at[i - 1] for i in range(1, len(asked_at))]
    assert gaps[:7] == [1000, 2000, 4000, 8000, 16000, 32000, 60000], gaps
    assert max(gaps) == BACKOFF_CAP_MS
    u.mode = "ok"
    t = asked_at[-1] + BACKOFF_CAP_MS
    a.sample(out, t)
    assert out["w01018"] == (30.0, "N") and a.fails == 0
    a.sample(out, t + 1)  # back to polling every time
    assert u.asked == 3 + len(asked_at) + 2


def test_node_marks_the_params_whose_value_is_the_analyzers_float32():
    # Those are written with the shortest text that maps back to the float32 (35.2, not
    # 35.20000076293945); scaled or offset values and integers are not.
    r = _Rig([_acfg("ph_temp", 4), _acfg("energy_meter_3ph", 6)])
    try:
        marked = [p for p, f in zip(r.node.params, r.node.f32s) if f]
        assert marked == ["p01001", "p01002", "p01003", "p02001"], marked
        assert len(r.node.f32s) == len(r.node.params) == 7
    finally:
        r.done()


class _Rig:
    def __init__(self, acfgs, poll_s=5):
        self.dir = make_tmpdir()
        c = good_config()
        c["poll_s"] = poll_s
        c["analyzers"] = acfgs
        self.cfg = validate_config(c)
        self.bus = FakeBus()
        self.hw = FakeHW(self.dir, {"bus": self.bus, "other": FakeBus("mbap")})
        self.node = Node(self.cfg, self.hw, FakeMQTT(), log=lambda s: None)

    def done(self):
        rmtree(self.dir)


def test_node_several_analyzers_share_one_bus_and_a_dead_one_costs_only_its_timeout():
    r = _Rig([_acfg("cod_generic", 1, name="cod"), _acfg("ph_temp", 2, name="ph", timeout_ms=300, retries=0),
              _acfg("cems_flue_gas", 1, name="cems",
                    transport={"kind": "tcp", "host": "other", "port": 502})])
    try:
        bus = r.bus
        assert r.node.analyzers[0].master is r.node.analyzers[1].master  # one bus, one master
        assert r.node.analyzers[2].master is not r.node.analyzers[0].master
        _f32(bus, 1, 0, 35.2)
        bus.unit(1).set_regs(3, 2, [0])
        bus.unit(2).mode = "silent"
        cems = r.hw.slaves["other"].unit(1)
        for i in range(7):
            cems.set_regs(3, 2 * i, encode(10.0 + i, "float32", "CDAB"))
        cems.set_regs(3, 14, [1 << 1])  # calibration
        out = r.node.sample()
        assert out["w01018"][1] == "N" and abs(out["w01018"][0] - 35.2) < 1e-5
        assert out["w01001"] == (None, "B") and out["w01010"] == (None, "B")
        assert out["a21026"] == (10.0, "C") and out["a01014"] == (16.0, "C")
        assert bus.waits == [100, 300]  # cod: its own 100 ms; ph: one try of its own 300 ms
        out = r.node.sample()  # ph is backing off: no request, no time spent, still reported B
        assert out["w01001"] == (None, "B") and bus.waits == [100, 300, 100]
        h = json.loads(r.node.analyzer_health())
        assert h == {"cod": [2, 0, 0, 0, 0], "ph": [0, 1, 0, 0, 0], "cems": [2, 0, 0, 0, 0]}
    finally:
        r.done()


def test_node_slow_analyzer_is_polled_on_its_own_period():
    r = _Rig([_acfg("cod_generic", 1, name="cod"), _acfg("ph_temp", 2, name="ph", poll_s=60)], poll_s=5)
    try:
        _f32(r.bus, 1, 0, 20.0)
        r.bus.unit(1).set_regs(3, 2, [0])
        r.bus.unit(2).set_regs(3, 0, [700, 200, 0])
        first = r.node.sample()
        assert sorted(first.keys()) == ["w01001", "w01010", "w01018"]
        second = r.node.sample()  # ph is not due for another minute; cod (node period) is
        assert sorted(second.keys()) == ["w01018"]
        assert r.bus.unit(2).asked == 1 and r.bus.unit(1).asked == 2
        assert r.node.params == ["w01018", "w01001", "w01010"]
    finally:
        r.done()


def test_node_cycle_with_a_slow_analyzer_records_only_what_was_sampled():
    # An analyzer with a longer poll_s than the node is not sampled every cycle: its params must be
    # left out of that cycle's record (they used to raise KeyError), and a cycle in which no
    # analyzer was due stores no record at all.
    r = _Rig([_acfg("cod_generic", 1, name="cod"), _acfg("ph_temp", 2, name="ph", poll_s=60)], poll_s=5)
    lines = []
    r.node.log = lines.append
    try:
        _f32(r.bus, 1, 0, 20.0)
        r.bus.unit(1).set_regs(3, 2, [0])
        r.bus.unit(2).set_regs(3, 0, [700, 200, 0])
        r.node.cycle()
        r.node.cycle()  # ph not due
        assert r.node.errors == 0, lines
        recs = [json.loads(p[1]) for p in r.node.mqtt.data()]
        assert [d["seq"] for d in recs] == [1, 2]
        assert sorted(recs[0]["readings"].keys()) == ["w01001", "w01010", "w01018"]
        assert recs[0]["readings"]["w01001"] == {"v": 7.0, "f": "N"}
        assert sorted(recs[1]["readings"].keys()) == ["w01018"]
        assert recs[1]["readings"]["w01018"] == {"v": 20.0, "f": "N"}
        assert lines[-1].startswith("cycle seq=2 w01018=20/N heap_peak="), lines[-1]
        # Replayed from flash: the same bytes (the absent params stay absent).
        items = r.node.queue.peek(5, 0)
        assert [i[0] for i in items] == [1, 2]
        assert [row[1] for row in items[1][4]] == ["N", None, None]
    finally:
        r.done()
    r = _Rig([_acfg("cod_generic", 1, name="cod", poll_s=60)], poll_s=5)
    try:
        _f32(r.bus, 1, 0, 20.0)
        r.bus.unit(1).set_regs(3, 2, [0])
        r.node.cycle()
        r.node.cycle()  # nothing due: no record, no error
        assert r.node.errors == 0 and r.node.seq == 1 and len(r.node.mqtt.data()) == 1
    finally:
        r.done()


def test_a_block_that_goes_unanswered_after_others_answered_is_B_alone():
    # The analyzer answers its first read but not its second: only the second block's values are
    # B (no communication), the rest keep their values, and it is not treated as dead (no backoff).
    def analyzer(bus, values, status_addr, retries):
        c = good_config()
        c["analyzers"] = [{"name": "x", "unit": 1, "timeout_ms": 100, "retries": retries,
                           "transport": {"kind": "rtu_tcp", "host": "bus", "port": 5020},
                           "values": values, "status": {"fc": 3, "addr": status_addr, "map": {"1": "M"}}}]
        return Analyzer(validate_config(c)["analyzers"][0], ModbusMaster(bus))

    bus = FakeBus()
    u = bus.unit(1)
    _f32(bus, 1, 0, 0.5)
    u.set_regs(3, 2, [0])
    _f32(bus, 1, 100, 7.5)
    _f32(bus, 1, 0, 1.5, fc=4)
    a = analyzer(bus, [{"param": "w21011", "addr": 0, "type": "float32"},
                       {"param": "w21001", "addr": 100, "type": "float32"},
                       {"param": "w01018", "fc": 4, "addr": 0, "type": "float32"}], 2, 1)
    assert [(b[0], b[1]) for b in a.blocks] == [(3, 0), (3, 100), (4, 0)]  # 0-2 holds the status too
    out = {}
    a.sample(out, 0)
    assert out == {"w21011": (0.5, "N"), "w21001": (7.5, "N"), "w01018": (1.5, "N")}, out
    u.silent_at = (100,)
    a.sample(out, 1)
    assert out == {"w21011": (0.5, "N"), "w21001": (None, "B"), "w01018": (1.5, "N")}, out
    assert a.fails == 0 and not a.backing_off(2) and a.health == [5, 2, 0, 0, 0]  # with its one retry
    # The status register's block unanswered after a value block answered: nothing vouches for the
    # value that was read, so it is B too; still not a dead analyzer.
    u.set_regs(3, 200, [0])
    a = analyzer(bus, [{"param": "w21001", "addr": 100, "type": "float32"}], 200, 0)
    u.silent_at = (200,)
    out = {}
    a.sample(out, 0)
    assert out == {"w21001": (None, "B")} and a.fails == 0
    # Silent from the first read on: dead, every value B, backed off; the other reads are not tried.
    u.silent_at = (100,)
    asked = u.asked
    a.sample(out, 1)
    assert out == {"w21001": (None, "B")} and a.fails == 1 and a.backing_off(2) and u.asked == asked + 1


def test_gateway_exception_0b_is_a_dead_analyzer_B_and_backed_off():
    bus, (a,) = _analyzers(_acfg("cod_generic", retries=0))
    u = bus.unit(1)
    u.mode = "exception"
    u.exc_code = 0x0B
    out = {}
    a.sample(out, 0)
    assert out == {"w01018": (None, "B")} and a.fails == 1 and a.backing_off(500)
    assert a.health == [0, 1, 0, 0, 0]


def test_bit_field_of_a_register_as_a_value():
    # A pump-running bit (bit 4) and an alarm bit (bit 15) of one holding register, beside a float.
    c = good_config()
    c["analyzers"] = [{"name": "pump", "unit": 2, "timeout_ms": 100,
                       "transport": {"kind": "rtu_tcp", "host": "bus", "port": 5020},
                       "values": [{"param": "w00000", "addr": 0, "type": "float32"},
                                  {"param": "e90001", "addr": 2, "type": "bit", "bit": 4},
                                  {"param": "e90002", "fc": 3, "addr": 2, "type": "bit", "bit": 15}]}]
    c = validate_config(c)
    bus = FakeBus()
    a = Analyzer(c["analyzers"][0], ModbusMaster(bus))
    assert len(a.blocks) == 1  # the float and the bit register in one read
    _f32(bus, 2, 0, 12.5)
    bus.unit(2).set_regs(3, 2, [0x0010])
    out = {}
    a.sample(out, 0)
    assert out == {"w00000": (12.5, "N"), "e90001": (1, "N"), "e90002": (0, "N")}, out
    bus.unit(2).set_regs(3, 2, [0x8000])
    a.sample(out, 1)
    assert out["e90001"] == (0, "N") and out["e90002"] == (1, "N")


def test_a_link_that_breaks_mid_poll_stops_the_poll():
    # After a first answered read the link drops (OSError): every value is B and the analyzer is
    # backed off; its further reads are not tried (each would reconnect and wait again).
    bus = FakeBus()
    u = bus.unit(1)
    _f32(bus, 1, 0, 0.5)
    _f32(bus, 1, 100, 7.5)
    _f32(bus, 1, 200, 9.5)
    c = good_config()
    c["analyzers"] = [{"name": "x", "unit": 1, "timeout_ms": 100, "retries": 1,
                       "transport": {"kind": "rtu_tcp", "host": "bus", "port": 5020},
                       "values": [{"param": "w21011", "addr": 0, "type": "float32"},
                                  {"param": "w21001", "addr": 100, "type": "float32"},
                                  {"param": "w01018", "addr": 200, "type": "float32"}]}]
    a = Analyzer(validate_config(c)["analyzers"][0], ModbusMaster(bus))
    sent = []
    orig = bus.send

    def send(data):
        sent.append(data)
        if len(sent) == 2:
            raise OSError("link down")
        return orig(data)
    bus.send = send
    out = {}
    a.sample(out, 0)
    assert out == {"w21011": (None, "B"), "w21001": (None, "B"), "w01018": (None, "B")}, out
    assert len(sent) == 2 and a.fails == 1 and a.backing_off(1) and bus.closed == 1
