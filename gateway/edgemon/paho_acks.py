"""Deferred PUBACKs, sent in order, cheaply: the one place that reaches into paho-mqtt's private
fields. ack_in_order runs on the journal thread (journal.py, after each frame's fsync), via
MqttSession.ack (mqtt_session.py); paho's network thread then writes the queued packets.
(topic_of, a one-liner, runs on paho's network thread: on_message, for a topic that is not UTF-8.)

The gateway acknowledges a message only once it is on disk (manual_ack=True), a group at a time.
client.ack() one by one costs one socket write and one wake-up of paho's network thread per message;
under load that costs as much as validating the message. ack_in_order queues the same PUBACK packets
the way paho's own Client._packet_queue does, and wakes the network thread once.

What it relies on, read in paho-mqtt 2.1 and 2.2 (CHECKED_VERSIONS; pyproject.toml pins the same
range; tests/gateway/test_paho_acks.py fails loudly when an installed paho differs):
- Client._out_packet: a deque of dicts {command, mid, qos, pos, to_process, packet, info}, written
  out in order by the network thread;
- Client._sockpairW: the socket whose byte wakes the network thread's select();
- Client._thread (set by loop_start), Client._manual_ack, Client.on_socket_register_write (None:
  no external event loop) and Client._call_socket_register_write();
- Client._packet_queue: the method the above mirrors (its presence is the FAST_ACK check);
- MQTTMessage._topic: the topic's raw bytes (topic_of).
Anything else (another major version, no network thread, QoS 2, an external event loop) takes
client.ack(), one message at a time: slower, the same packets.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Protocol

import paho.mqtt
import paho.mqtt.client as mqtt

# The paho-mqtt versions whose Client internals the fast path was checked against: >= 2.1, < 2.3.
CHECKED_VERSIONS = ((2, 1), (2, 3))
PIN = "paho-mqtt>=2.1,<2.3"  # the same range, as pyproject.toml states it

_PUBACK = struct.Struct("!BBH")


class _Acked(Protocol):
    mid: int
    qos: int


def topic_of(msg: mqtt.MQTTMessage) -> str:
    """The message's topic; one that is not UTF-8 with the bad bytes replaced (it is quarantined)."""
    try:
        return msg.topic
    except UnicodeDecodeError:
        return msg._topic.decode("utf-8", errors="replace")


def puback_packet(mid: int) -> dict[str, Any]:
    """The entry paho's Client._packet_queue appends to _out_packet for client.ack(mid, 1)."""
    packet = _PUBACK.pack(mqtt.PUBACK, 2, mid)
    return {"command": mqtt.PUBACK, "mid": mid, "qos": 1, "pos": 0,
            "to_process": len(packet), "packet": packet, "info": None}


def ack_in_order(client: mqtt.Client, items: Sequence[_Acked]) -> None:
    """Acknowledge messages in order. Same packets as client.ack() one by one, but queued together
    with one wake-up of paho's network thread instead of one socket write per message (under load,
    that write and the thread switch it causes cost as much as validating the message). Falls back
    to client.ack() when paho is not the version whose internals this relies on."""
    if not items:
        return
    out = getattr(client, "_out_packet", None)
    wake = getattr(client, "_sockpairW", None)
    if (not FAST_ACK or out is None or wake is None or getattr(client, "_thread", None) is None
            or not getattr(client, "_manual_ack", False) or client.on_socket_register_write is not None
            or any(item.qos != 1 for item in items)):
        for item in items:
            client.ack(item.mid, item.qos)
        return
    for item in items:
        out.append(puback_packet(item.mid))
    try:
        wake.send(b"0")
    except BlockingIOError:
        pass  # the wake-up byte(s) already pending do the same
    client._call_socket_register_write()


# The queueing above mirrors paho-mqtt 2.x's Client._packet_queue (checked for 2.1/2.2).
FAST_ACK = paho.mqtt.__version__.split(".")[0] == "2" and hasattr(mqtt.Client, "_packet_queue")
