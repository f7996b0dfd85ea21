"""SUBSCRIBE for the MQTT client (mqtt.py): the node subscribes to its own topics once per connection,
so this is loaded for the call (compat.call_once) and dropped after. In mqtt.py, a module the poll
loop keeps, the same code made a profiles config need 64k instead of 58k to start."""
import struct
from mqtt import MQTTError, encode_remaining_length, _utf8

_SUBSCRIBE = 0x82  # with the flag bits 3.1.1 requires (0b0010)
_SUBACK = 0x90


def build_subscribe(pid, topic, qos=1):
    """SUBSCRIBE to one topic filter at qos (the node subscribes to its own topics one by one)."""
    body = struct.pack(">H", pid) + _utf8(topic) + bytes([qos])
    return bytes([_SUBSCRIBE]) + encode_remaining_length(len(body)) + body


def subscribe(client, topic, qos=1, timeout_ms=None):
    """SUBSCRIBE client (a connected mqtt.MQTTClient) to topic and wait for its SUBACK; returns the
    granted QoS. Messages that arrive meanwhile (a retained one on this very topic, say) go to
    client.on_message as usual. A refusal (SUBACK 0x80: the broker's ACL) raises MQTTError; any
    error closes the client. With a clean session a subscription ends with its connection."""
    if client.sock is None:
        raise MQTTError("not connected")
    pid = client._next_pid()
    try:
        client._send(build_subscribe(pid, topic, qos))
        body = client._await(_SUBACK, pid, client.timeout_ms if timeout_ms is None else timeout_ms)
        if len(body) != 3 or body[2] > 2:
            raise MQTTError("subscription to %s refused (check the broker ACL)" % topic)
        return body[2]
    except Exception:
        client.close()
        raise
