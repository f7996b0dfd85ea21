"""Minimal MQTT 3.1.1 client (CONNECT/CONNACK, PUBLISH QoS 0/1 + PUBACK both ways, PINGREQ,
DISCONNECT; SUBSCRIBE/SUBACK in mqttsub.py, loaded at connect only).
Packet builders are pure functions (tested byte-for-byte); MQTTClient adds the socket I/O."""
import sockio
import struct
from compat import ticks_ms, ticks_diff, const

_CONNECT = const(0x10)  # packet types (the public three are the ones tests and tools use)
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
PUBACK = const(0x40)
_PINGREQ = const(0xC0)
_PINGRESP = const(0xD0)
DISCONNECT = const(0xE0)

# One message per kind of failure, shared (each distinct long string is a heap object on the device).
_BAD_RL = "bad remaining length (MQTT packet size)"
_CLOSED = "connection closed by the broker"
_CONNACK_ERRORS = {
    1: "unacceptable protocol version (broker does not speak MQTT 3.1.1)",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized (check the broker ACL / credentials)",
}


class MQTTError(Exception):
    def __str__(self):
        return "mqtt: " + str(self.args[0])


class MQTTConnectError(MQTTError):
    """CONNACK with a non-zero return code; .code is that code."""

    @property
    def code(self):
        return self.args[1]


class MQTTTimeout(MQTTError):
    pass


# ---- pure encoding / decoding ----

def encode_remaining_length(n):
    if n < 0 or n > 268435455:
        raise ValueError(_BAD_RL)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def decode_remaining_length(buf, offset=0):
    """Returns (value, bytes_used) from buf[offset:]; raises ValueError if malformed/incomplete."""
    mult = 1
    value = 0
    for i in range(4):
        if offset + i >= len(buf):
            raise ValueError(_BAD_RL)
        b = buf[offset + i]
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, i + 1
        mult <<= 7
    raise ValueError(_BAD_RL)


def _utf8(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack(">H", len(s)) + s


def build_connect(client_id, keepalive=60, user=None, password=None, clean_session=True,
                  will_topic=None, will_msg=None, will_qos=1, will_retain=True):
    flags = 0
    if clean_session:
        flags |= 0x02
    payload = _utf8(client_id)
    if will_topic is not None:
        flags |= 0x04 | ((will_qos & 3) << 3)
        if will_retain:
            flags |= 0x20
        payload += _utf8(will_topic) + _utf8(will_msg if will_msg is not None else b"")
    if user is not None:
        flags |= 0x80
        payload += _utf8(user)
        if password is not None:  # 3.1.1 forbids a password without a user name
            flags |= 0x40
            payload += _utf8(password)
    var = b"\x00\x04MQTT\x04" + bytes([flags]) + struct.pack(">H", keepalive)
    body = var + payload
    return bytes([_CONNECT]) + encode_remaining_length(len(body)) + body


def build_publish_header(topic, payload_len, qos=0, retain=False, pid=0, dup=False):
    """Everything of a PUBLISH packet before its payload."""
    hdr = _PUBLISH | (qos << 1)
    if retain:
        hdr |= 1
    if dup:
        hdr |= 0x08
    t = _utf8(topic)
    n = len(t) + payload_len + (2 if qos else 0)
    out = bytes([hdr]) + encode_remaining_length(n) + t
    if qos:
        out += struct.pack(">H", pid)
    return out


def build_publish(topic, payload, qos=0, retain=False, pid=0, dup=False):
    if isinstance(payload, str):
        payload = payload.encode()
    return build_publish_header(topic, len(payload), qos, retain, pid, dup) + payload


def build_puback(pid):
    return bytes([PUBACK, 2, pid >> 8, pid & 0xFF])


# The plain-TCP connection (TCP_NODELAY on); a socket_factory with the same signature may wrap it.
default_socket_factory = sockio.open_tcp


class MQTTClient:
    def __init__(self, client_id, host, port=1883, user=None, password=None, keepalive=60,
                 clean_session=True, will=None, timeout_ms=5000, socket_factory=None):
        """will = (topic, message, qos, retain) or None."""
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.clean_session = clean_session
        self.will = will
        self.timeout_ms = timeout_ms
        self.socket_factory = socket_factory or default_socket_factory
        self.sock = None
        self._poll = None
        self._pid = 0
        self._last_tx = 0
        self._ping_sent = None  # ticks of an unanswered PINGREQ
        self.on_message = None  # callback(topic, payload) for incoming PUBLISH

    @property
    def connected(self):
        return self.sock is not None

    def connect(self):
        self.close()
        s = self.socket_factory(self.host, self.port, self.timeout_ms)
        self.sock = s
        self._poll = sockio.poller(s)
        try:
            topic, msg, qos, retain = self.will or (None, None, 1, True)
            self._send(build_connect(self.client_id, self.keepalive, self.user, self.password,
                                     self.clean_session, topic, msg, qos, retain))
            ptype, body = self._read_packet(self.timeout_ms)
            if ptype != _CONNACK or len(body) != 2:
                raise MQTTError("expected CONNACK, got packet type 0x%02x" % ptype)
            rc = body[1]
            if rc:
                raise MQTTConnectError("connection refused, code %d: %s"
                                       % (rc, _CONNACK_ERRORS.get(rc, "unknown code")), rc)
        except Exception:
            self.close()
            raise
        self._ping_sent = None
        return body[0] & 1  # session-present flag

    def close(self):
        """Drop the socket without DISCONNECT (the broker then publishes our last will)."""
        s = self.sock
        self.sock = None
        self._poll = None
        sockio.close_quietly(s)

    def disconnect(self):
        """Clean shutdown: the broker discards the last will."""
        if self.sock is not None:
            try:
                self._send(b"\xe0\x00")  # DISCONNECT (inline: each module global is an interned name)
            except Exception:
                pass
        self.close()

    def _next_pid(self):
        self._pid = self._pid + 1 if self._pid < 65535 else 1
        return self._pid

    def publish(self, topic, payload, qos=1, retain=False, timeout_ms=None, length=None):
        """payload: bytes, or a list of bytes-like pieces (bytes, bytearray, memoryview) sent back to
        back, or any iterable of pieces with their total `length` given (a generator may then build
        each piece in a reused buffer as it is sent). QoS 1 returns once the matching PUBACK
        arrives; raises MQTTTimeout otherwise. Pieces that do not add up to `length` raise
        MQTTError before the packet is complete (the broker never sees a wrong payload).
        Any error leaves the client closed, so the caller reconnects and resends (at-least-once)."""
        if self.sock is None:
            raise MQTTError("not connected")
        if timeout_ms is None:
            timeout_ms = self.timeout_ms
        pid = self._next_pid() if qos else 0
        try:
            if isinstance(payload, (bytes, bytearray, memoryview, str)):
                # The header, then the payload: the same bytes as build_publish, without a copy of
                # the payload joined to its header.
                payload = [payload.encode() if isinstance(payload, str) else payload]
            # Sent piece by piece: a replay batch never needs one large contiguous block.
            n = length
            guard = n is not None  # pieces measured beforehand cannot overrun: no hold-back then
            if n is None:
                n = 0
                for p in payload:
                    n += len(p)
            self._send(build_publish_header(topic, n, qos, retain, pid))
            it = iter(payload)
            for p in it:
                k = len(p)
                if k > n:
                    n -= k
                    break
                if k == n and k and guard:
                    # The piece that completes the packet: its last byte waits until no further
                    # piece turns up, so a payload longer than announced never reaches the broker whole.
                    self._send(memoryview(p)[:k - 1])
                    p = bytes(memoryview(p)[k - 1:])  # kept: the generator may reuse its buffer
                    for extra in it:
                        if len(extra):
                            n = -len(extra)
                            break
                    if n < 0:
                        break
                    self._send(p)
                    n = 0
                    break
                n -= k
                self._send(p)
            if n:
                raise MQTTError("payload pieces do not add up to the announced length (%d off)" % -n)
            if not qos:
                return 0
            self._await(PUBACK, pid, timeout_ms)
            return pid
        except Exception:
            self.close()
            raise

    def _await(self, want, pid, timeout_ms):
        """The body of the packet of type want (PUBACK here, SUBACK in mqttsub.py) for packet id pid;
        every other packet that arrives first is handled as maintain() would. MQTTTimeout after
        timeout_ms."""
        start = ticks_ms()
        while True:
            left = timeout_ms - ticks_diff(ticks_ms(), start)
            try:
                if left <= 0:
                    raise MQTTTimeout("")
                ptype, body = self._read_packet(left)
            except MQTTTimeout:
                raise MQTTTimeout("no ack (packet type 0x%02x) for packet id %d within %d ms" % (want, pid, timeout_ms))
            if ptype == want and len(body) >= 2 and ((body[0] << 8) | body[1]) == pid:
                return body
            self._handle(ptype, body)

    def ping(self):
        self._send(b"\xc0\x00")  # PINGREQ
        if self._ping_sent is None:
            self._ping_sent = ticks_ms()

    def maintain(self):
        """Call often from the main loop: pings at keepalive/2, reads pending packets without
        blocking, and closes the link (raising MQTTTimeout) if a PINGRESP is overdue."""
        if self.sock is None:
            raise MQTTError("not connected")
        try:
            now = ticks_ms()
            if self._ping_sent is not None and ticks_diff(now, self._ping_sent) > self.keepalive * 1000:
                raise MQTTTimeout("no PINGRESP within keepalive")
            if self.keepalive and ticks_diff(now, self._last_tx) >= self.keepalive * 500:
                self.ping()
            while self._poll.poll(0):
                ptype, body = self._read_packet(self.timeout_ms)
                self._handle(ptype, body)
        except Exception:
            self.close()
            raise

    def _handle(self, ptype, body):
        if ptype == _PINGRESP:
            self._ping_sent = None
        elif ptype == _PUBLISH or ptype & 0xF0 == _PUBLISH:
            self._on_publish(ptype, body)
        # Anything else (a stray PUBACK of a timed-out publish, a late SUBACK) is ignored on purpose.

    def _on_publish(self, hdr, body):
        tlen = (body[0] << 8) | body[1]
        topic = bytes(body[2:2 + tlen]).decode()
        pos = 2 + tlen
        qos = (hdr >> 1) & 3
        if qos:
            pid = (body[pos] << 8) | body[pos + 1]
            pos += 2
            self._send(build_puback(pid))
        if self.on_message:
            self.on_message(topic, bytes(body[pos:]))

    # ---- socket I/O ----

    def _send(self, data):
        sockio.send_all(self.sock, data, _CLOSED)
        self._last_tx = ticks_ms()

    def _recv_exact(self, n, timeout_ms):
        return sockio.recv_exact(self.sock, self._poll, n, timeout_ms, MQTTTimeout, _CLOSED)

    def _read_packet(self, timeout_ms):
        """Returns (first header byte with flags, body bytearray)."""
        start = ticks_ms()
        hdr = self._recv_exact(1, timeout_ms)[0]
        rl = bytearray()
        while True:
            left = timeout_ms - ticks_diff(ticks_ms(), start)
            b = self._recv_exact(1, left if left > 1 else 1)[0]
            rl.append(b)
            if not b & 0x80:
                break
            if len(rl) >= 4:
                raise MQTTError(_BAD_RL)
        n, _ = decode_remaining_length(rl)
        # PUBLISH keeps its flag bits (qos/retain); other types are compared without them.
        ptype = hdr if hdr & 0xF0 == _PUBLISH else hdr & 0xF0
        if n == 0:
            return ptype, b""
        left = timeout_ms - ticks_diff(ticks_ms(), start)
        return ptype, self._recv_exact(n, left if left > 1 else 1)
