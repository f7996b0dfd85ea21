"""Every analyzer profile end to end: pymodbus simulators serving the profiles' register maps (one RS-485
bus of five units behind a serial server, a Modbus TCP bus of two, a third bus for a second node) ->
the real firmware (two MicroPython processes) -> Mosquitto -> gateway -> InfluxDB: exact values and flags."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from edgemon.config import GatewayConfig
from edgemon.ingest import Gateway
from edgemon.dev.nodeproc import FirmwareProcess, profile_analyzer as an, profile_node_config
from edgemon.dev.bussim import BusSimulator, profile_names

from test_end_to_end import influx_rows, wait_for

pytestmark = pytest.mark.integration

SITE = "profiles_site"

# unit -> (profile, {param: value served}, status flag served or None)
BUS_RTU = {
    1: ("cod_hach_cdab", {"w01018": 35.2}, "C"),
    2: ("nh3n_xinruipeng", {"w21003": 1.25}, "L"),  # vendor letter 'L' in the ASCII status word -> T
    3: ("tptn_thermo", {"w21011": 0.42, "w21001": 12.5}, "N"),
    4: ("ph_temp", {"w01001": 7.35, "w01010": -2.5}, "M"),
    5: ("flow_lmag", {"w00000": 58.5, "w00001": 123456.789}, "N"),
}
BUS_TCP = {
    1: ("cems_flue_gas", {"a21026": 35.5, "a21002": 120.25, "a34013": 250.0, "a19001": 9.5, "a00000": 45.5,
                          "a01012": 135.5, "a01014": 8.25}, "N"),
    2: ("energy_meter_3ph", {"p01001": 10.5, "p01002": 11.25, "p01003": 9.75, "p02001": 7.5, "p03001": 12345.67},
        None),
}
BUS_B = {
    7: ("logger_multi", {"w21003": 2.5, "w21011": 0.3, "w21001": 10.0, "w01001": 7.0, "w00000": 20.0,
                         "w21017": 0.75}, "D"),
    9: ("cod_yiwen_abcd", {"w01018": 48.0}, "F"),
    11: ("cod_generic", {"w01018": 5.5}, "N"),  # served as w01018, renamed w01019 by the node's override
}
# What must arrive: (node, param) -> (value, flag)
EXPECTED = {
    ("node_a", "w01018"): (35.2, "C"), ("node_a", "w21003"): (1.25, "T"), ("node_a", "w21011"): (0.42, "N"),
    ("node_a", "w21001"): (12.5, "N"), ("node_a", "w01001"): (7.35, "M"), ("node_a", "w01010"): (-2.5, "M"),
    ("node_a", "w00000"): (58.5, "N"), ("node_a", "w00001"): (123456.789, "N"),
    ("node_a", "a21026"): (35.5, "N"), ("node_a", "a21002"): (120.25, "N"),
    ("node_a", "a34013"): (250.0, "T"),  # above the profile's range 0-200
    ("node_a", "a19001"): (9.5, "N"), ("node_a", "a00000"): (45.5, "N"), ("node_a", "a01012"): (135.5, "N"),
    ("node_a", "a01014"): (8.25, "N"), ("node_a", "p01001"): (10.5, "N"), ("node_a", "p01002"): (11.25, "N"),
    ("node_a", "p01003"): (9.75, "N"), ("node_a", "p02001"): (7.5, "N"), ("node_a", "p03001"): (12345.67, "N"),
    ("node_b", "w21003"): (2.5, "D"), ("node_b", "w21011"): (0.3, "D"), ("node_b", "w21001"): (10.0, "D"),
    ("node_b", "w01001"): (7.0, "D"), ("node_b", "w00000"): (20.0, "D"), ("node_b", "w21017"): (0.75, "D"),
    ("node_b", "w01018"): (48.0, "F"), ("node_b", "w01019"): (5.5, "N"),
}


def _bus(framing, units):
    bus = BusSimulator(framing=framing)
    for unit, (profile, values, flag) in units.items():
        bus.add(unit, profile)
        for p, v in values.items():
            bus.set_value(unit, p, v)
        if flag:
            bus.set_status(unit, flag)
    return bus.start()


class StatusWatcher:
    """Keeps the latest retained status payload of each node (the gateway does not store "an")."""

    def __init__(self, stack, user, password):
        self.latest: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watch-{time.time_ns()}")
        self.client.username_pw_set(user, password)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe(f"edge/v1/{SITE}/+/status", 1)
        self.client.connect(stack.mqtt_host, stack.mqtt_port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        try:
            obj = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            self.latest[msg.topic.split("/")[3]] = obj

    def get(self, node):
        with self.lock:
            return self.latest.get(node)

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
def system(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("profiles")
    db = stack.new_database()
    gw = Gateway(GatewayConfig(mqtt_host=stack.mqtt_host, mqtt_port=stack.mqtt_port, mqtt_user=stack.mqtt_user,
                               mqtt_password=stack.mqtt_password, influx_url=stack.influx_url, influx_db=db,
                               state_dir=tmp / "gw", client_id=f"gw-{db}"))
    gw.start()
    buses = [_bus("rtu", BUS_RTU), _bus("tcp", BUS_TCP), _bus("rtu", BUS_B)]
    rtu, tcp, bus_b = buses
    a_analyzers = [an(f"u{u}", prof, u, rtu.port, timeout_ms=300) for u, (prof, _, _) in BUS_RTU.items()]
    a_analyzers += [an(f"tcp{u}", prof, u, tcp.port, framing="tcp", timeout_ms=300)
                    for u, (prof, _, _) in BUS_TCP.items()]
    b_analyzers = [an("logger", "logger_multi", 7, bus_b.port, override={"w01018": {"off": True}}),
                   an("cod_yiwen", "cod_yiwen_abcd", 9, bus_b.port),
                   an("cod_ref", "cod_generic", 11, bus_b.port, override={"w01018": {"param": "w01019"}})]
    fws = {}
    for node, analyzers in (("node_a", a_analyzers), ("node_b", b_analyzers)):
        user = f"{SITE}.{node}.{db}"
        cfg = profile_node_config(SITE, node, mqtt_port=stack.mqtt_port, mqtt_user=user,
                                  mqtt_password=stack.add_mqtt_user(user), analyzers=analyzers,
                                  state_dir=tmp / node, poll_s=1)
        cfg["status_s"] = 1
        # 256k: the unix port compiles every module from source inside this heap; the node's
        # heap budget (precompiled .mpy, 64k) is measured by `make bench`, not here.
        fws[node] = FirmwareProcess(cfg, tmp / f"{node}.json", heapsize="256k").start()
    watcher = StatusWatcher(stack, stack.mqtt_user, stack.mqtt_password)
    try:
        yield {"db": db, "gw": gw, "rtu": rtu, "tcp": tcp, "bus_b": bus_b, "fws": fws, "watch": watcher}
    finally:
        watcher.stop()
        for fw in fws.values():
            fw.stop()
        for b in buses:
            b.stop()
        gw.stop()
        for node, fw in fws.items():
            print(f"{node} log tail:\n" + "\n".join(list(fw.lines)[-15:]))


def latest(stack, db, since_ms):
    """(node, param) -> (value, flag) of the newest reading since since_ms."""
    rows = influx_rows(stack, db, f"SELECT * FROM reading WHERE time >= {since_ms}ms ORDER BY time")
    return {(r["node"], r["param"]): (r["value"], r["flag"]) for r in rows}


def test_every_profile_is_covered_here():
    served = {p for bus in (BUS_RTU, BUS_TCP, BUS_B) for p, _, _ in bus.values()}
    assert served == set(profile_names())


def test_every_profile_value_and_flag_arrives_exactly(stack, system):
    t0 = int(time.time() * 1000)
    got = wait_for(lambda: (g := latest(stack, system["db"], t0)) and all(k in g for k in EXPECTED) and g, 30,
                   "a reading of every parameter of both nodes")
    wrong = {k: (got[k], EXPECTED[k]) for k in EXPECTED if got[k] != EXPECTED[k]}
    assert not wrong, wrong
    assert set(got) == set(EXPECTED)  # nothing else (logger's w01018 switched off by the override)
    for node, fw in system["fws"].items():
        assert fw.alive(), node
    assert system["gw"].stats["quarantined"] == 0


def test_faults_on_one_bus_flag_only_their_analyzers_and_are_counted(stack, system):
    rtu, db, watch = system["rtu"], system["db"], system["watch"]
    rtu.set_fault(2, "silent")      # nh3n: no answer -> B, then backed off
    rtu.set_fault(3, "bad_crc")     # tptn: never decoded -> D
    rtu.set_fault(4, "exception")   # ph: exception 04 -> D
    rtu.set_fault(5, "wrong_unit")  # flow: answer from another address -> D
    try:
        t0 = int(time.time() * 1000)
        want = {("node_a", "w21003"): (None, "B"), ("node_a", "w21011"): (None, "D"),
                ("node_a", "w21001"): (None, "D"), ("node_a", "w01001"): (None, "D"),
                ("node_a", "w01010"): (None, "D"), ("node_a", "w00000"): (None, "D"),
                ("node_a", "w00001"): (None, "D"),
                # the healthy analyzers on the same bus and the other bus go on unchanged
                ("node_a", "w01018"): (35.2, "C"), ("node_a", "p03001"): (12345.67, "N")}
        got = wait_for(lambda: (g := latest(stack, db, t0)) and all(g.get(k) == w for k, w in want.items()) and g,
                       20, "B/D flags for the faulty analyzers only")
        assert got[("node_b", "w01018")] == (48.0, "F")

        def counted():
            st = watch.get("node_a")
            h = st and st.get("an")
            return (h and h["u2"][1] >= 1 and h["u3"][2] >= 1 and h["u3"][4] >= 1 and h["u4"][3] >= 1
                    and h["u5"][2] >= 1 and h)
        h = wait_for(counted, 10, "the node's status to count timeouts, bad frames and exceptions")
        assert h["u1"][0] >= 2 and h["u1"][1:] == [0, 0, 0, 0]  # the healthy one: answers only
        assert h["tcp1"][1:] == [0, 0, 0, 0]
        assert h["u5"][4] == 0 and h["u4"][4] == 0  # an answer from the wrong unit is no CRC error
    finally:
        for u in (2, 3, 4, 5):
            rtu.set_fault(u, None)
    t1 = int(time.time() * 1000)
    # The silent one was backed off; it is asked again within seconds and comes back.
    wait_for(lambda: latest(stack, db, t1).get(("node_a", "w21003")) == (1.25, "T"), 20, "nh3n back")
    assert latest(stack, db, t1).get(("node_a", "w00001")) == (123456.789, "N")
