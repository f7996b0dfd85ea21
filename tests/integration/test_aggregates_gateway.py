"""The aggregates in the running gateway (gateway.toml -> observer), against the real Mosquitto and
InfluxDB: records published over MQTT become `aggregate` points with the hand-computed values, and a
late record replayed in a batch recomputes its minute and hour in place."""

from __future__ import annotations

import json
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgemon.aggregates.observer import build_observer
from edgemon.config import load
from edgemon.influx import InfluxV1Writer
from edgemon.ingest import Gateway

pytestmark = pytest.mark.integration


def wait_for(condition, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def record(seq, ts, cod, flow, flag="N"):
    return {"ts": ts, "seq": seq, "clk": "ntp",
            "readings": {"w01018": {"v": cod, "f": flag}, "w00000": {"v": flow, "f": "N"}}}


def test_published_records_become_aggregate_points_and_a_late_one_recomputes_them(stack, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    site, db = f"agg{suffix}", stack.new_database()
    (tmp_path / "gateway.toml").write_text(
        f'[gateway]\nid = "agg-{suffix}"\nstate_dir = "state"\n'
        f'[mqtt]\nhost = "{stack.mqtt_host}"\nport = {stack.mqtt_port}\nusername = "{stack.mqtt_user}"\n'
        f'password = "{stack.mqtt_password}"\n'
        f'[influx]\nurl = "{stack.influx_url}"\ndatabase = "{db}"\n'
        f'[aggregates]\nclose_after_s = 0\n'
        f'[sites.{site}]\npoll_s = 20\nnodes = ["n1"]\n')
    loaded = load(tmp_path / "gateway.toml")
    gw = Gateway(loaded.gateway)
    obs = build_observer(loaded, gw.write_lines)
    gw.add_observer(obs)
    gw.start()
    influx = InfluxV1Writer(stack.influx_url, db)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{suffix}", protocol=mqtt.MQTTv311)
    pub.username_pw_set(stack.mqtt_user, stack.mqtt_password)
    pub.connect(stack.mqtt_host, stack.mqtt_port)
    pub.loop_start()
    try:
        hour = (time.time_ns() // 1_000_000) // 3_600_000 * 3_600_000 - 2 * 3_600_000  # two hours ago
        topic = f"edge/v1/{site}/n1/data"
        for seq, (offset, cod, flow) in enumerate([(0, 10, 100), (20_000, 20, 100), (40_000, 30, 200)]):
            pub.publish(topic, json.dumps(record(seq + 1, hour + offset, cod, flow)), qos=1).wait_for_publish(5)

        def agg(period):
            rows = influx.query_rows(f"SELECT avg, cou, flag, n, weighted FROM aggregate WHERE site = '{site}' "
                                     f"AND param = 'w01018' AND period = '{period}' GROUP BY *")
            return {r["time"]: r for r in rows}

        minute = wait_for(lambda: agg("minute").get(hour), "the minute's aggregate point")
        assert minute["avg"] == pytest.approx(22.5) and minute["cou"] == pytest.approx(0.18)
        assert minute["flag"] == "N" and minute["weighted"] is True
        assert wait_for(lambda: agg("hour").get(hour), "the hour's point")["avg"] == pytest.approx(22.5)

        # a late record of the same hour, replayed in a batch (a node that was offline): COD 70 at 200 L/s
        late = {"batch": [record(9, hour + 30 * 60_000, 70, 200)]}
        pub.publish(topic, json.dumps(late), qos=1).wait_for_publish(5)
        # flow-weighted over the four samples: (10*100 + 20*100 + 30*200 + 70*200) / 600 = 38.33
        updated = wait_for(lambda: (h := agg("hour").get(hour)) and h["n"] == 4 and h, "the hour recomputed")
        assert updated["avg"] == pytest.approx(23_000 / 600)
        assert len(agg("hour")) == 1  # the same point, replaced
        # the same batch again (the node did not see the confirmation): nothing changes
        pub.publish(topic, json.dumps(late), qos=1).wait_for_publish(5)
        time.sleep(7)
        assert agg("hour")[hour]["n"] == 4
    finally:
        pub.loop_stop()
        pub.disconnect()
        gw.stop()
        influx.close()
