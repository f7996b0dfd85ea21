import mqtt
from mqtt import (encode_remaining_length, decode_remaining_length, build_connect, build_publish,
                  build_puback, MQTTConnectError, MQTTError, MQTTTimeout)
from mqttsub import subscribe
from fakes import raises, recv_available, loopback_client, close_loopback

CONNACK_OK = b"\x20\x02\x00\x00"


def test_remaining_length_encode():
    assert encode_remaining_length(0) == b"\x00"
    assert encode_remaining_length(127) == b"\x7f"
    assert encode_remaining_length(128) == b"\x80\x01"
    assert encode_remaining_length(16383) == b"\xff\x7f"
    assert encode_remaining_length(16384) == b"\x80\x80\x01"
    assert encode_remaining_length(2097151) == b"\xff\xff\x7f"
    assert encode_remaining_length(268435455) == b"\xff\xff\xff\x7f"
    raises(ValueError, encode_remaining_length, 268435456)


def test_remaining_length_decode():
    for n in (0, 1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455):
        enc = encode_remaining_length(n)
        assert decode_remaining_length(b"\x30" + enc + b"xx", 1) == (n, len(enc))
    raises(ValueError, decode_remaining_length, b"\x80\x80")
    raises(ValueError, decode_remaining_length, b"\xff\xff\xff\xff\x01")


def test_connect_packet_with_will_and_credentials():
    p = build_connect("c1", 60, "u", "p", True, "t/s", b"off", 1, True)
    assert p == (b"\x10\x1e\x00\x04MQTT\x04\xee\x00\x3c"
                 b"\x00\x02c1\x00\x03t/s\x00\x03off\x00\x01u\x00\x01p")


def test_connect_packet_minimal():
    assert build_connect("n", 0, clean_session=False) == b"\x10\x0d\x00\x04MQTT\x04\x00\x00\x00\x00\x01n"


def test_publish_packets():
    assert build_publish("a/b", b"hi", 1, False, 10) == b"\x32\x09\x00\x03a/b\x00\x0ahi"
    assert build_publish("a/b", "hi", 1, True, 0x1234) == b"\x33\x09\x00\x03a/b\x12\x34hi"
    assert build_publish("a/b", b"hi", 0) == b"\x30\x07\x00\x03a/bhi"
    big = build_publish("t", b"x" * 200, 1, False, 1)
    assert big[:3] == b"\x32\xcd\x01"  # 2+1+2+200 = 205 -> two length bytes
    assert build_puback(258) == b"\x40\x02\x01\x02"


def test_client_connect_publish_puback():
    will = ("edge/v1/s/n/status", b'{"state":"offline"}', 1, True)
    c, srv, peer = loopback_client(CONNACK_OK + b"\xd0\x00" + b"\x40\x02\x00\x01", will=will,
                                       user="u", password="pw", keepalive=30)
    try:
        c.connect()
        assert c.connected
        assert c.publish("edge/v1/s/n/data", b"{}", 1) == 1  # PINGRESP before PUBACK is skipped
        sent = recv_available(peer[0])
        conn = build_connect("node1", 30, "u", "pw", True, will[0], will[1], 1, True)
        assert sent == conn + build_publish("edge/v1/s/n/data", b"{}", 1, False, 1)
    finally:
        close_loopback(c, srv, peer)


def test_client_puback_timeout_closes():
    c, srv, peer = loopback_client(CONNACK_OK + b"\x40\x02\x00\x07", timeout_ms=300)
    try:
        c.connect()
        e = raises(MQTTTimeout, c.publish, "t", b"x", 1)  # PUBACK for another packet id only
        assert "packet type 0x40" in str(e)  # a PUBACK
        assert not c.connected
    finally:
        close_loopback(c, srv, peer)


def test_client_connack_refused():
    for rc, word in ((4, "user name or password"), (5, "not authorized"), (1, "protocol")):
        c, srv, peer = loopback_client(bytes([0x20, 2, 0, rc]))
        try:
            e = raises(MQTTConnectError, c.connect)
            assert e.code == rc and word in str(e), str(e)
            assert not c.connected
        finally:
            close_loopback(c, srv, peer)


def test_client_maintain_pings_and_disconnect():
    c, srv, peer = loopback_client(CONNACK_OK + b"\xd0\x00", keepalive=1)
    try:
        c.connect()
        recv_available(peer[0])
        import compat
        c._last_tx = compat.ticks_add(c._last_tx, -600)  # pretend keepalive/2 has passed
        c.maintain()
        assert recv_available(peer[0]) == b"\xc0\x00"
        import compat
        compat.sleep_ms(50)
        c.maintain()  # reads the queued PINGRESP
        assert c._ping_sent is None
        c.disconnect()
        assert recv_available(peer[0]) == b"\xe0\x00"
        assert not c.connected
    finally:
        close_loopback(c, srv, peer)


class _PacketsOnly:
    """What subscribe() uses of a client, keeping the bytes it sends (the SUBACK always grants)."""

    sock = True
    timeout_ms = 100

    def __init__(self, pid):
        self.pid = pid
        self.sent = []

    def _next_pid(self):
        return self.pid

    def _send(self, data):
        self.sent.append(bytes(data))

    def _await(self, want, pid, timeout_ms):
        assert want == 0x90 and pid == self.pid
        return bytes([pid >> 8, pid & 0xFF, 1])


def test_subscribe_packet():
    c = _PacketsOnly(1)
    assert subscribe(c, "a/b", 1) == 1 and c.sent == [b"\x82\x08\x00\x01\x00\x03a/b\x01"]
    c = _PacketsOnly(0x0102)
    subscribe(c, "edge/v1/s/n/cmd", 0)
    assert c.sent[0][:4] == b"\x82\x14\x01\x02" and c.sent[0][-1] == 0


def test_client_subscribe_gets_suback_and_the_messages_before_it():
    # A retained QoS 1 message on the topic arrives before the SUBACK (as Mosquitto sends them).
    retained = build_publish("edge/v1/s/n/cmd", b'{"id":"c1"}', 1, True, 0x0203)
    c, srv, peer = loopback_client(CONNACK_OK + retained + b"\x90\x03\x00\x01\x01")
    got = []
    c.on_message = lambda topic, payload: got.append((topic, payload))
    try:
        c.connect()
        assert subscribe(c, "edge/v1/s/n/cmd", 1) == 1
        assert got == [("edge/v1/s/n/cmd", b'{"id":"c1"}')]
        sent = recv_available(peer[0])
        assert sent.endswith(b"\x82\x14\x00\x01\x00\x0fedge/v1/s/n/cmd\x01" + b"\x40\x02\x02\x03")  # then its PUBACK
        assert c.connected
    finally:
        close_loopback(c, srv, peer)


def test_client_subscribe_refused_keeps_the_link_unanswered_closes():
    c, srv, peer = loopback_client(CONNACK_OK + b"\x90\x03\x00\x01\x80")  # 0x80: the ACL said no
    try:
        c.connect()
        e = raises(MQTTError, subscribe, c, "edge/v1/s/other/cmd")
        assert "refused" in str(e) and "edge/v1/s/other/cmd" in str(e), str(e)
        assert c.connected  # the node goes on publishing without its command channel
    finally:
        close_loopback(c, srv, peer)
    c, srv, peer = loopback_client(CONNACK_OK + b"\x90\x03\x00\x07\x01", timeout_ms=200)  # another pid's
    try:
        c.connect()
        e = raises(MQTTTimeout, subscribe, c, "t")
        assert "no ack (packet type 0x90) for packet id 1" in str(e), str(e)
        assert not c.connected
        raises(MQTTError, subscribe, c, "t")  # closed: not connected
    finally:
        close_loopback(c, srv, peer)
