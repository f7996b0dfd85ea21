"""The firmware's MQTT client (firmware/mqtt.py + mqttsub.subscribe, run here under CPython) subscribed to its
node's command topic on the real Mosquitto: the retained message first, then live QoS 1 messages,
each acknowledged; a clean session's subscription ends with its connection."""
import sys
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

FIRMWARE = str(Path(__file__).resolve().parents[2] / "firmware")
if FIRMWARE not in sys.path:
    sys.path.insert(0, FIRMWARE)

import mqtt as fw_mqtt  # noqa: E402
import mqttsub  # noqa: E402

pytestmark = pytest.mark.integration


def _sender(stack):
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"sender-{time.monotonic_ns()}")
    c.username_pw_set(stack.mqtt_user, stack.mqtt_password)
    c.connect(stack.mqtt_host, stack.mqtt_port)
    c.loop_start()
    return c


def _pump(client, got, n, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        client.maintain()
        time.sleep(0.02)


def test_node_client_receives_its_commands_from_the_real_broker(stack):
    user, password = stack.local.add_node("subsite", "n1")
    topic = "edge/v1/subsite/n1/cmd"
    sender = _sender(stack)
    node = fw_mqtt.MQTTClient("subsite-n1", stack.mqtt_host, stack.mqtt_port, user, password, timeout_ms=3000)
    got = []
    node.on_message = lambda t, p: got.append((t, p))
    try:
        sender.publish(topic, b'{"id":"r1"}', qos=1, retain=True).wait_for_publish(5)
        node.connect()
        assert mqttsub.subscribe(node, topic, 1) == 1
        _pump(node, got, 1)
        assert got == [(topic, b'{"id":"r1"}')]  # the retained one, at once
        for i in range(3):
            sender.publish(topic, b'{"id":"c%d"}' % i, qos=1).wait_for_publish(5)
        _pump(node, got, 4)
        assert [p for _, p in got[1:]] == [b'{"id":"c0"}', b'{"id":"c1"}', b'{"id":"c2"}']
        # A publish of the node's own still gets its PUBACK while commands arrive in between.
        sender.publish(topic, b'{"id":"c3"}', qos=1).wait_for_publish(5)
        time.sleep(0.1)
        assert node.publish("edge/v1/subsite/n1/cmd/ack", b'{"id":"c0","ok":true}', 1) > 0
        _pump(node, got, 5)
        assert got[-1] == (topic, b'{"id":"c3"}')

        node.close()  # clean session: a new connection has no subscription until it subscribes again
        sender.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)  # clear the retained message
        node.connect()
        sender.publish(topic, b'{"id":"lost"}', qos=1).wait_for_publish(5)
        before = len(got)
        _pump(node, got, before + 1, 1.0)
        assert len(got) == before, got[before:]
    finally:
        node.close()
        sender.loop_stop()
        sender.disconnect()
