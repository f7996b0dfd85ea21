"""The gateway's message path without servers: a fake InfluxDB and a fake MQTT client stand in
for the real ones (which tests/gateway/test_ingest_integration.py uses), to pin down ordering,
acknowledgement and retry rules that are hard to provoke on real servers."""

import json
import threading
import time

import paho.mqtt.client as mqtt
from click.testing import CliRunner

from edgemon import quarantine as q
from edgemon.gateway_cli import gateway as gateway_cli
from edgemon.influx import InfluxWriteError
from edgemon.ingest import INFLUX_REJECT_TOPIC, Gateway, GatewayConfig

TS = 1764000000000


class FakeInflux:
    def __init__(self):
        self.lines: list[str] = []
        self.fail_next = 0  # this many writes fail as an outage
        self.bad = set()  # lines InfluxDB refuses (HTTP 400)
        self.calls = 0

    def write(self, lines):
        self.calls += 1
        if self.fail_next:
            self.fail_next -= 1
            raise InfluxWriteError(None, "connection refused")
        if self.bad & set(lines):
            self.lines.extend(line for line in lines if line not in self.bad)  # a partial write
            raise InfluxWriteError(400, '{"error":"partial write: field type conflict"}')
        self.lines.extend(lines)

    def ensure_database(self):
        pass

    def close(self):
        pass


class FakeClient:
    def __init__(self, influx):
        self.influx = influx
        self.acks: list[tuple[int, int, int]] = []  # (mid, qos, lines in InfluxDB at the time)

    def ack(self, mid, qos):
        self.acks.append((mid, qos, len(self.influx.lines)))

    def disconnect(self):
        pass

    def loop_stop(self):
        pass


def make_gateway(tmp_path, **cfg):
    gw = Gateway(GatewayConfig(state_dir=tmp_path, flush_interval_s=0.05, ingest_interval_s=3600, **cfg))
    gw._influx = FakeInflux()
    gw._client = FakeClient(gw._influx)
    gw.quarantine = q.Quarantine(tmp_path / q.FILE_NAME)
    gw._started = gw._accepting = True
    gw._writer_thread = threading.Thread(target=gw._writer_loop, daemon=True)
    gw._writer_thread.start()
    return gw


def deliver(gw, mid, topic, payload):
    msg = mqtt.MQTTMessage(mid=mid, topic=topic.encode())
    msg.payload = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    msg.qos = 1
    gw._on_message(None, None, msg)


def record(seq, v=1.0, f="N"):
    return {"ts": TS + seq, "seq": seq, "readings": {"w01018": {"v": v, "f": f}}}


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_acks_follow_the_write_in_arrival_order(tmp_path):
    gw = make_gateway(tmp_path)
    deliver(gw, 1, "edge/v1/s/n/data", record(1))
    deliver(gw, 2, "edge/v1/s/n/data", b"garbage")  # quarantined, acknowledged in its turn
    deliver(gw, 3, "edge/v1/s/n/data", {"batch": [record(2), record(3)]})
    wait_for(lambda: len(gw._client.acks) == 3)
    assert [mid for mid, _, _ in gw._client.acks] == [1, 2, 3]
    assert all(written == 3 for _, _, written in gw._client.acks)  # every point in before any ack
    gw.stop()
    assert gw.stats["readings_written"] == 3 and gw.stats["quarantined"] == 1


def test_outage_keeps_the_batch_and_retries(tmp_path):
    gw = make_gateway(tmp_path)
    gw._influx.fail_next = 2
    deliver(gw, 1, "edge/v1/s/n/data", record(1))
    wait_for(lambda: gw._client.acks, timeout=10)
    assert gw._influx.calls == 3
    assert gw._influx.lines == ['reading,node=n,param=w01018,site=s value=1.0,flag="N" 1764000000001']
    assert gw.stats["write_errors"] == 2
    gw.stop()


def test_stop_during_an_outage_leaves_messages_unacknowledged(tmp_path):
    gw = make_gateway(tmp_path, stop_timeout_s=0.3)
    gw._influx.fail_next = 10**6
    deliver(gw, 1, "edge/v1/s/n/data", record(1))
    wait_for(lambda: gw.stats["write_errors"] >= 1)
    started = time.monotonic()
    gw.stop()
    assert time.monotonic() - started < 3
    assert gw._client.acks == []


def test_points_influxdb_refuses_are_isolated_and_quarantined(tmp_path):
    gw = make_gateway(tmp_path)
    bad = 'reading,node=n,param=w01018,site=s value=2.0,flag="N" 1764000000002'
    gw._influx.bad = {bad}
    for seq in (1, 2, 3):
        deliver(gw, seq, "edge/v1/s/n/data", record(seq, v=float(seq)))
    wait_for(lambda: len(gw._client.acks) == 3)
    gw.stop()
    assert bad not in gw._influx.lines
    readings = {line.split(" ")[-1] for line in gw._influx.lines if line.startswith("reading,")}
    assert readings == {"1764000000001", "1764000000003"}
    assert any(line.startswith("ingest,node=n,site=s ") for line in gw._influx.lines)  # written on stop
    [entry] = q.read(tmp_path / q.FILE_NAME)
    assert entry["topic"] == INFLUX_REJECT_TOPIC and entry["payload"] == bad
    assert "HTTP 400" in entry["reason"]
    assert gw.stats["points_rejected"] == 1


def test_events_and_commands_are_not_taken_as_data(tmp_path):
    gw = make_gateway(tmp_path)
    deliver(gw, 1, "edge/v1/s/n/event", {"ts": TS, "kind": "boot"})
    deliver(gw, 2, "edge/v1/s/n/status", b"")  # a retained status being cleared: ignored
    wait_for(lambda: len(gw._client.acks) == 2)
    gw.stop()
    [entry] = q.read(tmp_path / q.FILE_NAME)
    assert "does not take 'event' messages" in entry["reason"]


def test_run_reports_an_unreachable_broker(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(gateway_cli, [
        "run", "--mqtt-port", str(port), "--influx-url", f"http://127.0.0.1:{port}", "--state-dir", str(tmp_path),
    ])
    assert result.exit_code == 1
    assert f"cannot reach the MQTT broker at 127.0.0.1:{port}" in result.output
