import json
from node import Node
from blockplan import plan_blocks
from config import validate_config
from fakes import FakeSlave, FakeHW, FakeMQTT, good_config, make_tmpdir, rmtree


def _cod_slave(value=35.2, status=0, order="ABCD"):
    s = FakeSlave(1, {2: status, 3: 1})
    s.set_float(3, 0, value, order)
    s.set_float(3, 4, 500.0)
    return s


class _Rig:
    def __init__(self, cfg=None, slave=None):
        self.dir = make_tmpdir()
        self.cfg = validate_config(cfg or good_config())
        self.slave = slave or _cod_slave()
        self.hw = FakeHW(self.dir, {"cod": self.slave})
        self.mqtt = FakeMQTT()
        self.lines = []
        self.node = Node(self.cfg, self.hw, self.mqtt, log=self.lines.append)

    def done(self):
        rmtree(self.dir)


def test_plan_blocks_merges_adjacent():
    vals = [{"fc": 3, "addr": 0, "type": "float32"}, {"fc": 3, "addr": 3, "type": "float32"},
            {"fc": 4, "addr": 2, "type": "int16"}]
    b = plan_blocks(vals, {"fc": 3, "addr": 2})
    assert [(x[0], x[1], x[2]) for x in b] == [(3, 0, 5), (4, 2, 1)]
    assert b[0][3] == [(0, 0), (-1, 2), (1, 3)]
    b = plan_blocks([{"fc": 3, "addr": 0, "type": "float32"}, {"fc": 3, "addr": 10, "type": "uint16"}], None)
    assert [(x[1], x[2]) for x in b] == [(0, 2), (10, 1)]  # gap: separate requests


def test_sample_normal_in_one_request():
    r = _Rig()
    try:
        out = r.node.sample()
        v, f = out["w01018"]
        assert f == "N" and abs(v - 35.2) < 1e-5
        assert len(r.slave.requests) == 1  # value + status register read together
        assert r.node.sample_ts == 1764000000000
    finally:
        r.done()


def test_sample_status_flags():
    for status, flag in ((1, "M"), (2, "C"), (3, "D"), (4, "T"), (5, "F"), (0, "N"), (99, "N")):
        r = _Rig(slave=_cod_slave(status=status))
        try:
            assert r.node.sample()["w01018"][1] == flag, (status, flag)
        finally:
            r.done()


def test_sample_no_answer_is_B():
    r = _Rig()
    try:
        r.slave.mode = "silent"
        assert r.node.sample() == {"w01018": (None, "B")}
        r.slave.mode = "oserror"
        assert r.node.sample() == {"w01018": (None, "B")}
    finally:
        r.done()


def test_sample_exception_or_bad_frame_is_D():
    r = _Rig()
    try:
        for mode in ("exception", "badcrc", "wrong_unit"):
            r.slave.mode = mode
            assert r.node.sample() == {"w01018": (None, "D")}, mode
    finally:
        r.done()


def test_scale_offset_order_and_no_status():
    cfg = good_config()
    a = cfg["analyzers"][0]
    a["values"] = [{"param": "w01018", "addr": 0, "type": "float32", "order": "CDAB", "scale": 2, "offset": 1},
                   {"param": "w01001", "fc": 4, "addr": 3, "type": "uint16", "scale": 0.1}]
    del a["status"]
    s = FakeSlave(1, {}, {3: 72})
    s.set_float(3, 0, -1.5, "CDAB")
    r = _Rig(cfg, s)
    try:
        out = r.node.sample()
        assert out["w01018"] == (-2.0, "N")
        assert abs(out["w01001"][0] - 7.2) < 1e-9 and out["w01001"][1] == "N"
    finally:
        r.done()


def test_partial_failure_only_that_block():
    cfg = good_config()
    cfg["analyzers"][0]["values"].append({"param": "w21003", "fc": 4, "addr": 0, "type": "float32"})
    r = _Rig(cfg)  # slave has no input registers -> exception 2 for w21003 only
    try:
        out = r.node.sample()
        assert out["w01018"][1] == "N" and out["w21003"] == (None, "D")
    finally:
        r.done()


def test_run_publishes_records_and_status():
    cfg = good_config()
    cfg["poll_s"] = 0.05
    r = _Rig(cfg)
    try:
        r.node.run(max_cycles=2)
        data = r.mqtt.data()
        assert len(data) == 2
        topic, payload, qos, retain = data[0]
        assert topic == "edge/v1/demo-site/cod-1/data" and qos == 1 and not retain
        d = json.loads(payload)
        assert d["seq"] == 1 and d["ts"] == 1764000000000 and d["readings"]["w01018"] == {"v": 35.2, "f": "N"}
        assert json.loads(data[1][1])["seq"] == 2
        st = r.mqtt.status()
        assert st[0][0] == "edge/v1/demo-site/cod-1/status" and st[0][3] is True
        assert json.loads(st[0][1])["state"] == "online"
        cn = json.loads(st[0][1])["cn"]
        assert json.loads(st[-1][1]) == {"state": "offline", "cn": cn}  # clean shutdown, same connection
        assert r.lines[0].startswith("cycle seq=1 w01018=35.2/N heap_peak="), r.lines[0]
        assert r.node.mqtt.connects == 1
    finally:
        r.done()


def test_seq_continues_after_reboot():
    r = _Rig()
    try:
        r.node.cycle()
        r.node.cycle()
        n2 = Node(r.cfg, r.hw, FakeMQTT(), log=r.lines.append)
        n2.cycle()
        assert json.loads(n2.mqtt.data()[0][1])["seq"] == 3
    finally:
        r.done()
