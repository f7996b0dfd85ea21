"""The whole chain with real servers: a breaching record published to Mosquitto, through a real
Gateway with the alarm observer registered, to an SMS PDU at the simulated modem (decoded by the
independent decoder) and an `alarm` point in InfluxDB."""

import json
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
import requests
from paho.mqtt.enums import CallbackAPIVersion

from edgemon.alarms import build_observer
from edgemon.config import GatewayConfig
from edgemon.ingest import Gateway
from edgemon.dev.modemsim import ModemSimulator

from ..sms.pdudecoder import join_messages

pytestmark = pytest.mark.integration


def _query(url, db, q):
    r = requests.get(url + "/query", params={"db": db, "q": q, "epoch": "ms"}, timeout=10)
    r.raise_for_status()
    out = []
    for res in r.json()["results"]:
        for s in res.get("series", []) or []:
            out += [dict(zip(s["columns"], v)) for v in s["values"]]
    return out


def _wait(fn, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_breach_over_mqtt_reaches_modem_and_influx(stack, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    site, db = f"chain{suffix}", stack.new_database(f"alarm_chain_{suffix}")
    (tmp_path / "dev").mkdir()
    sim = ModemSimulator(tmp_path / "dev").start()
    cfg_path = tmp_path / "alarms.toml"
    cfg_path.write_text(f"""
[sms]
port = "{sim.path}"
[people.duty]
phone = "+8613800000001"
[sites.{site}]
name = "莱西市污水处理厂"
profile = "laixi-plant"
roles = {{ duty = ["duty"] }}
[sites.{site}.rules.instant]
raise_n = 2
""", encoding="utf-8")
    gw = Gateway(GatewayConfig(mqtt_host=stack.mqtt_host, mqtt_port=stack.mqtt_port, mqtt_user=stack.mqtt_user,
                               mqtt_password=stack.mqtt_password, influx_url=stack.influx_url, influx_db=db,
                               state_dir=tmp_path / "gw", client_id=f"alarm-chain-{suffix}", stop_timeout_s=5))
    obs = build_observer(cfg_path, tmp_path / "gw" / "alarms", gw.write_lines)
    gw.add_observer(obs)
    gw.start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{suffix}", protocol=mqtt.MQTTv311)
    pub.username_pw_set(stack.mqtt_user, stack.mqtt_password)
    pub.connect(stack.mqtt_host, stack.mqtt_port)
    pub.loop_start()
    try:
        now = int(time.time() * 1000)
        for i, v in enumerate([30.0, 44.0, 46.5]):
            rec = {"ts": now + i * 1000, "seq": i, "clk": "ntp", "readings": {"w01018": {"v": v, "f": "N"}}}
            pub.publish(f"edge/v1/{site}/n1/data", json.dumps(rec), qos=1).wait_for_publish(5)
        assert sim.wait_for(1, timeout_s=20)
        points = _wait(lambda: _query(stack.influx_url, db, "SELECT * FROM alarm"))
    finally:
        pub.loop_stop()
        pub.disconnect()
        gw.stop()
        obs.stop()
        sim.stop()
    ((number, text),) = join_messages([r.pdu for r in sim.received])
    assert number == "+8613800000001"
    assert text.startswith("【超标预警】莱西市污水处理厂化学需氧量监测值46.5mg/L，超过限值40mg/L")
    (p,) = points
    assert (p["site"], p["node"], p["param"], p["rule"], p["state"]) == (site, "n1", "w01018", "instant", "raised")
    assert (p["value"], p["limit"], p["message"], p["time"]) == (46.5, 40.0, text, now + 2000)
