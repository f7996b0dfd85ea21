"""A reading travels the whole way: pymodbus analyzer -> real firmware (MicroPython unix port) -> Mosquitto
-> gateway -> InfluxDB 1.x. Every server and process here is the real thing, started on loopback."""

from __future__ import annotations

import time

import pytest
import requests

from edgemon.config import GatewayConfig
from edgemon.ingest import Gateway
from edgemon.dev.nodeproc import FirmwareProcess, cod_node_config
from edgemon.dev.simulator import AnalyzerSimulator, cod_profile

pytestmark = pytest.mark.integration

POLL_S = 1.0
SITE, NODE = "e2e_site", "node_a"


def influx_rows(stack, db: str, q: str) -> list[dict]:
    r = requests.get(stack.influx_url + "/query", params={"db": db, "q": q, "epoch": "ms"}, timeout=10)
    r.raise_for_status()
    rows = []
    for result in r.json()["results"]:
        assert "error" not in result, result
        for series in result.get("series", []) or []:
            for values in series["values"]:
                row = dict(zip(series["columns"], values))
                row.update(series.get("tags", {}))
                rows.append(row)
    return rows


def wait_for(fn, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture
def system(stack, tmp_path):
    """One simulated COD analyzer, one firmware process, one gateway, a fresh database."""
    db = stack.new_database()
    gw = Gateway(GatewayConfig(mqtt_host=stack.mqtt_host, mqtt_port=stack.mqtt_port,
                               mqtt_user=stack.mqtt_user, mqtt_password=stack.mqtt_password,
                               influx_url=stack.influx_url, influx_db=db, state_dir=tmp_path / "gw",
                               client_id=f"gw-{db}"))
    gw.start()
    sim = AnalyzerSimulator(cod_profile(word_order="CDAB")).start()
    user = f"{SITE}.{NODE}.{db}"
    password = stack.add_mqtt_user(user)
    cfg = cod_node_config(SITE, NODE, mqtt_port=stack.mqtt_port, mqtt_user=user, mqtt_password=password,
                          analyzer_port=sim.port, state_dir=tmp_path / "node", poll_s=POLL_S,
                          word_order="CDAB", timeout_ms=500)
    cfg["mqtt"]["keepalive"] = 2  # so the broker publishes the last will within ~3 s of a power cut
    fw = FirmwareProcess(cfg, tmp_path / "node.json").start()
    try:
        yield {"db": db, "gw": gw, "sim": sim, "fw": fw}
    finally:
        fw.stop()
        sim.stop()
        gw.stop()
        # pytest shows this only when the test failed: the node's own account of what happened.
        print("firmware log tail:\n" + "\n".join(list(fw.lines)[-30:]))


def readings(stack, db, since_ms: int) -> list[dict]:
    return influx_rows(stack, db, f"SELECT * FROM reading WHERE time >= {since_ms}ms ORDER BY time")


def test_served_value_arrives_exactly_with_tags_flag_and_sample_time(stack, system):
    db, sim, fw = system["db"], system["sim"], system["fw"]
    wait_for(lambda: readings(stack, db, 0), 30, "the first reading from the node")

    t_set = int(time.time() * 1000)
    sim.set_value(35.2)  # not exact in float32: the node must still report 35.2, not 35.200000762939
    rows = wait_for(lambda: [r for r in readings(stack, db, t_set) if r["value"] == 35.2], 15,
                    "value 35.2 in InfluxDB")
    first = rows[0]
    assert (first["site"], first["node"], first["param"], first["flag"]) == (SITE, NODE, "w01018", "N")
    # ts is the sample time: after the value changed and within one poll period (plus scheduling slack).
    assert t_set - 50 <= first["time"] <= t_set + POLL_S * 1000 + 1000, (t_set, first["time"])
    assert fw.alive()

    # The node's retained status reached the gateway as a `node` point.
    nodes = wait_for(lambda: influx_rows(stack, db, "SELECT * FROM node"), 10, "a node point")
    assert any(n["site"] == SITE and n["node"] == NODE and n["online"] is True for n in nodes)


def test_analyzer_silence_exception_and_status_give_flags_and_polling_goes_on(stack, system):
    db, sim, fw = system["db"], system["sim"], system["fw"]
    wait_for(lambda: readings(stack, db, 0), 30, "the first reading from the node")

    def latest_since(t0, pred):
        return wait_for(lambda: [r for r in readings(stack, db, t0) if pred(r)], 15, "a matching reading")[0]

    t0 = int(time.time() * 1000)
    sim.set_fault("silent")
    row = latest_since(t0, lambda r: r["flag"] == "B")
    assert row["value"] is None and row["param"] == "w01018"

    t0 = int(time.time() * 1000)
    sim.set_fault("exception")
    row = latest_since(t0, lambda r: r["flag"] == "D")
    assert row["value"] is None

    t0 = int(time.time() * 1000)
    sim.set_fault(None)
    sim.set_value(12.5)
    sim.set_status("maintenance")
    row = latest_since(t0, lambda r: r["flag"] == "M")
    assert row["value"] == 12.5

    t0 = int(time.time() * 1000)
    sim.set_status("normal")
    row = latest_since(t0, lambda r: r["flag"] == "N")
    assert row["value"] == 12.5
    assert fw.alive(), "the firmware must keep polling through analyzer faults"


def test_seq_increases_by_one_and_gateway_saw_no_bad_payload(stack, system):
    db, gw = system["db"], system["gw"]
    rows = wait_for(lambda: (r := readings(stack, db, 0)) and len(r) >= 4 and r, 30, "four readings")
    stats = gw.stats
    assert stats["quarantined"] == 0
    node_stats = next(v for k, v in stats["nodes"].items() if SITE in str(k))
    assert node_stats["last_seq"] >= 4
    # Points are one per record and sample times strictly increase.
    times = [r["time"] for r in rows]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_power_cut_publishes_last_will_and_node_goes_offline(stack, system):
    db, fw = system["db"], system["fw"]
    wait_for(lambda: any(n["online"] is True for n in influx_rows(stack, db, "SELECT * FROM node")), 30,
             "node online")
    fw.kill()
    assert wait_for(lambda: any(n["online"] is False for n in influx_rows(stack, db, "SELECT * FROM node")), 15,
                    "node offline from the last will")
