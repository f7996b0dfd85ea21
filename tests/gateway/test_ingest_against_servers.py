"""The gateway against a real Mosquitto and a real InfluxDB (the `stack` fixture from
tests/conftest.py): payloads published with paho, points read back from InfluxDB, refused
payloads read back from the quarantine file."""

from __future__ import annotations

import json
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgemon import quarantine as q
from edgemon.influx import InfluxV1Writer
from edgemon.config import GatewayConfig
from edgemon.ingest import Gateway

pytestmark = pytest.mark.integration

TS = 1764000000000
WAIT_S = 15


def wait_for(condition, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Run:
    """One test's private corner of the stack: its own database, site name and MQTT session."""

    def __init__(self, stack, tmp_path):
        self.stack = stack
        suffix = uuid.uuid4().hex[:10]
        self.site = f"it{suffix}"
        self.db = f"gw_test_{suffix}"
        self.client_id = f"edgemon-test-{suffix}"
        self.state_dir = tmp_path / "gateway"
        self.influx = InfluxV1Writer(stack.influx_url, self.db)
        self.gateways: list[Gateway] = []
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{suffix}", protocol=mqtt.MQTTv311)
        if stack.mqtt_user is not None:
            pub.username_pw_set(stack.mqtt_user, stack.mqtt_password)
        pub.connect(stack.mqtt_host, stack.mqtt_port)
        pub.loop_start()
        self.pub = pub

    def config(self, **overrides) -> GatewayConfig:
        s = self.stack
        values = dict(
            mqtt_host=s.mqtt_host, mqtt_port=s.mqtt_port, mqtt_user=s.mqtt_user, mqtt_password=s.mqtt_password,
            influx_url=s.influx_url, influx_db=self.db, state_dir=self.state_dir, client_id=self.client_id,
            stop_timeout_s=5,
        )
        values.update(overrides)
        return GatewayConfig(**values)

    def gateway(self, **overrides) -> Gateway:
        gw = Gateway(self.config(**overrides))
        self.gateways.append(gw)
        gw.start()
        return gw

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        info = self.pub.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(5)
        assert info.is_published()

    def topic(self, node: str, kind: str) -> str:
        return f"edge/v1/{self.site}/{node}/{kind}"

    def readings(self) -> list[tuple]:
        rows = self.influx.query_rows(
            f"SELECT \"value\", \"flag\" FROM \"reading\" WHERE \"site\" = '{self.site}' GROUP BY \"node\", \"param\""
        )
        return sorted((r["node"], r["param"], r["time"], r["value"], r["flag"]) for r in rows)

    def close(self) -> None:
        for gw in self.gateways:
            gw.stop()
        self.pub.loop_stop()
        self.pub.disconnect()
        try:
            self.influx.query(f'DROP DATABASE "{self.db}"')
        finally:
            self.influx.close()


@pytest.fixture
def run(stack, tmp_path):
    r = Run(stack, tmp_path)
    yield r
    r.close()


def record(seq: int, ts: int, **readings) -> dict:
    return {"ts": ts, "seq": seq, "clk": "ntp", "readings": {k: {"v": v, "f": f} for k, (v, f) in readings.items()}}


def test_records_and_batches_become_exact_points(run):
    gw = run.gateway()
    run.publish(run.topic("n1", "data"), json.dumps(record(1, TS, w01018=(35, "N"), w21003=(None, "B"))))
    batch = {"batch": [record(2, TS + 60_000, w01018=(35.2, "M")), record(3, TS + 120_000, w01018=(0.1, "N"))]}
    run.publish(run.topic("n2", "data"), json.dumps(batch))

    wait_for(lambda: len(run.readings()) == 4, "4 reading points")
    assert run.readings() == [
        ("n1", "w01018", TS, 35.0, "N"),
        ("n1", "w21003", TS, None, "B"),
        ("n2", "w01018", TS + 60_000, 35.2, "M"),
        ("n2", "w01018", TS + 120_000, 0.1, "N"),
    ]
    fields = {tuple(row) for s in run.influx.query('SHOW FIELD KEYS FROM "reading"') for row in s["values"]}
    assert fields == {("value", "float"), ("flag", "string")}

    stats = wait_for(lambda: gw.stats["readings_written"] == 4 and gw.stats, "stats")
    assert (stats["received"], stats["records"], stats["quarantined"], stats["write_errors"]) == (2, 3, 0, 0)
    n2 = stats["nodes"][f"{run.site}/n2"]
    assert (n2["last_ts"], n2["last_seq"], n2["records"]) == (TS + 120_000, 3, 2)
    assert n2["lag_ms_last"] == n2["last_receive_ms"] - (TS + 120_000)
    assert n2["lag_ms_max"] == n2["last_receive_ms"] - (TS + 60_000)


def test_same_record_twice_gives_the_same_points(run):
    run.gateway()
    payload = json.dumps(record(7, TS, w01018=(12.5, "N"), w01001=(7.1, "N")))
    run.publish(run.topic("n1", "data"), payload)
    run.publish(run.topic("n1", "data"), payload)
    gw = run.gateways[0]
    wait_for(lambda: gw.stats["readings_written"] == 4, "both copies written")
    assert run.readings() == [("n1", "w01001", TS, 7.1, "N"), ("n1", "w01018", TS, 12.5, "N")]


def test_malformed_payloads_are_quarantined_and_ingest_goes_on(run):
    gw = run.gateway()
    bad = [
        (run.topic("n1", "data"), b"not json", "payload is not JSON"),
        (run.topic("n1", "data"), b"\xff\xfe\x00", "payload is not UTF-8"),
        (run.topic("n1", "data"), json.dumps(record(1, TS // 1000, w01018=(1, "N"))).encode(), "looks like seconds"),
        (run.topic("n1", "data"), json.dumps(record(2, TS, w01018=(1, "X"))).encode(),
         "readings.w01018.f: unknown flag 'X' (expected one of N F M S D C T B)"),
        (run.topic("n1", "data"), b'{"ts":1764000000000,"seq":3,"readings":{"w01018":{"v":NaN,"f":"N"}}}',
         "readings.w01018.v: NaN is not a finite number"),
        (f"edge/v1/{run.site}/bad node/data", json.dumps(record(4, TS, w01018=(1, "N"))).encode(),
         "node 'bad node' is not an identifier"),
        (run.topic("n1", "status"), b'{"fw":"1.0"}', "state: missing"),
    ]
    for topic, payload, _ in bad:
        run.publish(topic, payload)
    run.publish(run.topic("n1", "data"), json.dumps(record(5, TS, w01018=(9.5, "N"))))

    wait_for(lambda: run.readings() == [("n1", "w01018", TS, 9.5, "N")], "the good record after the bad ones")
    stats = wait_for(lambda: gw.stats["received"] == len(bad) + 1 and gw.stats, "all messages received")
    assert stats["quarantined"] == len(bad)
    assert stats["records"] == 1

    entries = list(q.read(run.state_dir / q.FILE_NAME))
    assert [(e["topic"], q.entry_payload(e)) for e in entries] == [(t, p) for t, p, _ in bad]
    for entry, (_, _, reason) in zip(entries, bad):
        assert reason in entry["reason"]
    assert entries[1]["payload"] is None and entries[1]["payload_b64"]
    assert gw.quarantine.counts == {f"{run.site}/n1": len(bad) - 1, bad[5][0]: 1}


def test_status_becomes_node_points(run):
    gw = run.gateway()
    run.publish(run.topic("n1", "status"),
                b'{"state":"online","fw":"1.2.0","up":60,"heap":81234,"rssi":-67,"queue":2,"clk":"ntp"}', retain=True)
    wait_for(lambda: gw.stats["statuses"] == 1, "status received")
    run.publish(run.topic("n1", "status"), b'{"state":"offline"}', retain=True)
    wait_for(lambda: len(run.influx.query_rows(f"SELECT * FROM \"node\" WHERE \"site\" = '{run.site}'")) == 2,
             "two node points")
    rows = run.influx.query_rows(
        f"SELECT \"online\", \"fw\", \"heap\", \"rssi\", \"queue\" FROM \"node\" WHERE \"site\" = '{run.site}' GROUP BY \"node\""
    )
    assert [(r["node"], r["online"], r["fw"], r["heap"], r["rssi"], r["queue"]) for r in rows] == [
        ("n1", True, "1.2.0", 81234.0, -67.0, 2.0),
        ("n1", False, None, None, None, None),
    ]
    received = gw.stats["received"]
    now_ms = time.time() * 1000
    assert all(abs(r["time"] - now_ms) < 60_000 for r in rows)  # stamped at receive time
    assert received == 2
    run.publish(run.topic("n1", "status"), b"", retain=True)  # clear the retained message


def test_stop_writes_ingest_lag(run):
    gw = run.gateway()
    ts = int(time.time() * 1000) - 5000
    run.publish(run.topic("n1", "data"), json.dumps(record(1, ts - 1000, w01018=(1.0, "N"))))
    run.publish(run.topic("n1", "data"), json.dumps(record(2, ts, w01018=(2.0, "N"))))
    wait_for(lambda: gw.stats["readings_written"] == 2, "records written")
    node = gw.stats["nodes"][f"{run.site}/n1"]
    gw.stop()
    gw.stop()  # idempotent
    [row] = run.influx.query_rows(
        f"SELECT \"lag_ms_last\", \"lag_ms_max\", \"records\" FROM \"ingest\" WHERE \"site\" = '{run.site}' GROUP BY \"node\""
    )
    assert row["node"] == "n1"
    assert row["records"] == 2.0
    assert row["lag_ms_last"] == float(node["lag_ms_last"]) >= 5000
    assert row["lag_ms_max"] == float(node["lag_ms_max"]) >= row["lag_ms_last"] + 1000 - 50


def test_nothing_is_lost_while_influxdb_is_unreachable(run, unused_port):
    """Acknowledged once in the gateway's store; the next start drains the store into InfluxDB."""
    down = run.gateway(influx_url=f"http://127.0.0.1:{unused_port}", stop_timeout_s=1)
    run.publish(run.topic("n1", "data"), json.dumps(record(1, TS, w01018=(3.5, "N"))))
    wait_for(lambda: down.stats["write_errors"] >= 1, "a failed write")
    assert down.stats["readings_written"] == 0
    assert down.stats["backlog_readings"] == 1
    down.stop()

    up = run.gateway()  # same state dir: the store still holds the record
    wait_for(lambda: run.readings() == [("n1", "w01018", TS, 3.5, "N")], "the stored record")
    wait_for(lambda: up.stats["readings_written"] == 1, "counted as written")
    assert up.stats["records"] == 0  # not delivered again by the broker: it was acknowledged
    assert up.stats["backlog_readings"] == 0


@pytest.fixture
def unused_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
