"""SUBSCRIBE for the MQTT client (mqtt.MQTTClient has none: the node subscribes to its command
channel only, docs/ARCHITECTURE.md section 3). Loaded for the call at each connect
(compat.call_once from node.py) and dropped after: kept apart from cmdchan.py so a connect loads
this small module only."""
import struct
from compat import const
from mqtt import MQTTError, encode_remaining_length, _utf8

_SUBSCRIBE = const(0x82)  # with the flag bits 3.1.1 requires (0b0010)
_SUBACK = const(0x90)


def subscribe(self, topic, qos=1, timeout_ms=None):
    """SUBSCRIBE the connected mqtt.MQTTClient `self` to a topic filter, or a tuple of them (one
    packet), and wait for its SUBACK; returns the granted QoS (of the first). Messages that arrive meanwhile (a retained one on this very topic, say)
    go to self.on_message as usual. A refusal (SUBACK 0x80: the broker's ACL) raises MQTTError and
    leaves the connection up (the node still publishes, and the filters granted stay subscribed);
    any other error closes the client. With a
    clean session a subscription ends with its connection."""
    if self.sock is None:
        raise MQTTError("subscribe: not connected")
    pid = self._next_pid()
    body = struct.pack(">H", pid)
    for t in (topic,) if type(topic) is str else topic:
        body += _utf8(t) + bytes([qos])
    try:
        self._send(bytes([_SUBSCRIBE]) + encode_remaining_length(len(body)) + body)
        body = self._await(_SUBACK, pid, self.timeout_ms if timeout_ms is None else timeout_ms)
    except Exception:
        self.close()
        raise
    n = 1 if type(topic) is str else len(topic)
    if len(body) != 2 + n or max(body[2:]) > 2:
        raise MQTTError("subscription to %s refused (check the broker ACL)" % (
            topic if n == 1 else ", ".join([topic[i] for i in range(n) if len(body) != 2 + n or body[2 + i] > 2])))
    return body[2]
