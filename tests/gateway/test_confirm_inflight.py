"""The gateway sends a node's next confirmation only once the broker has acknowledged the one
before (edgemon.confirmations.Confirmations.publish_due): paho's outgoing queue stays bounded by the
node count however fast records are stored. Against the real Mosquitto, with a real paho client
whose network loop is held back (no PUBACK can arrive) and then let go."""

import time
from pathlib import Path
from types import SimpleNamespace

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgemon.confirmations import Confirmations

pytestmark = pytest.mark.integration


def test_one_confirmation_in_flight_per_node(stack, tmp_path: Path):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="inflight-test", protocol=mqtt.MQTTv311)
    client.username_pw_set(stack.mqtt_user, stack.mqtt_password)
    client.connect(stack.mqtt_host, stack.mqtt_port)  # (no loop yet: nothing is read, no PUBACK arrives)
    keys = {"s1/n1": b"k" * 32, "s1/n2": b"j" * 32}
    cfg = SimpleNamespace(confirm=True, fsync=True, client_id="gw-inflight", confirm_interval_s=0.001,
                          state_dir=tmp_path, shared_group=None)
    gw = SimpleNamespace(cfg=cfg, verifier=SimpleNamespace(keys=keys), _session=SimpleNamespace(client=client))
    c = Confirmations(gw)
    c.open()
    try:
        for seq in range(1, 6):
            c.stored([["s1", "n1", [seq]], ["s1", "n2", [seq]]])
            c.publish_due()
            time.sleep(0.005)
        assert c.published == 2  # the first of each node; the four after it wait
        assert c.confirmer.nodes["s1/n1"].dirty
        client.loop_start()
        deadline = time.monotonic() + 10
        while not all(i.is_published() for held, _ in c._inflight.values() for i in held):
            assert time.monotonic() < deadline, "no PUBACK from the broker"
            time.sleep(0.01)
        c.publish_due()
        assert c.published == 4  # the newest of each: upto 5 (the ones in between were never needed)
        assert c.confirmer.nodes["s1/n1"].upto == 5 and not c.confirmer.nodes["s1/n1"].dirty
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_confirmation_published_while_the_link_is_down_does_not_hold_the_node_back(stack, tmp_path: Path):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="inflight-down", protocol=mqtt.MQTTv311)
    client.username_pw_set(stack.mqtt_user, stack.mqtt_password)  # never connected: every publish is NO_CONN
    cfg = SimpleNamespace(confirm=True, fsync=True, client_id="gw-down", confirm_interval_s=0.001,
                          state_dir=tmp_path, shared_group=None)
    gw = SimpleNamespace(cfg=cfg, verifier=SimpleNamespace(keys={"s1/n1": b"k" * 32}),
                         _session=SimpleNamespace(client=client))
    c = Confirmations(gw)
    c.open()
    for seq in (1, 2):
        c.stored([["s1", "n1", [seq]]])
        c.publish_due()  # (paho keeps each for after the connect; is_published() of its info raises)
        time.sleep(0.005)
    assert c.published == 2
