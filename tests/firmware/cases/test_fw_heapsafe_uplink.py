"""The heap-saving paths of the uplink: incremental HMAC, streamed publish with an announced
length, and the node's streamed batch replay (signed as it goes). (The store's: test_fw_heapsafe.py.)"""
import json
from binascii import hexlify, unhexlify
from hmac_sha256 import HmacSha256
from mqtt import MQTTError, MQTTTimeout, build_connect, build_publish, build_publish_header
from fakes import NodeRig, good_config, raises, recv_available, loopback_client, close_loopback

KEY = "00112233445566778899aabbccddeeff"
TS0 = 1764000000000

# ---- 5. HMAC in pieces ----

def test_hmac_pieces_rfc4231():
    want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    msg = b"what do ya want for nothing?"
    m = HmacSha256(b"Jefe")
    whole = m.digest(msg)
    assert hexlify(whole).decode() == want
    for cut in ((), (4,), (1, 2, 3), (10, 20), (27,)):
        h = m.begin()
        pos = 0
        for c in cut:
            h.update(msg[pos:c])
            pos = c
        h.update(msg[pos:])
        got = m.end(h)
        assert got == whole, cut
        assert hexlify(got).decode() == want
    # pieces of other types (the node feeds bytearrays and memoryviews)
    h = m.begin()
    h.update(bytearray(msg[:9]))
    h.update(memoryview(msg)[9:])
    assert m.end(h) == whole
    # the object is reusable: a second message after the first, independent
    h2 = m.begin()
    h2.update(b"other")
    assert m.end(h2) == m.digest(b"other") != whole
    assert m.digest(msg) == whole
    # RFC 4231 case 6: a key longer than the block, in pieces too
    m6 = HmacSha256(b"\xaa" * 131)
    d6 = b"Test Using Larger Than Block-Size Key - Hash Key First"
    h = m6.begin()
    h.update(d6[:7])
    h.update(d6[7:])
    assert hexlify(m6.end(h)) == b"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


# ---- 6. streamed publish with an announced length ----

CONNACK_OK = b"\x20\x02\x00\x00"
TOPIC = "edge/v1/s/n/data"


def _gen(parts):
    """Pieces built one after the other in one reused buffer, as the node's batch does."""
    buf = bytearray()
    for p in parts:
        if isinstance(p, memoryview):
            yield p
        else:
            buf[:] = p
            yield buf


def test_publish_stream_bytes():
    parts = [b'{"batch":[', b'{"seq":1}', b",", memoryview(b'x{"seq":2}')[1:], b"", b'],"sig":"ab"}']
    joined = b""
    for p in parts:
        joined += bytes(p)
    c, srv, peer = loopback_client(CONNACK_OK + b"\x40\x02\x00\x01")
    try:
        c.connect()
        assert c.publish(TOPIC, _gen(parts), 1, False, length=len(joined)) == 1
        assert c.connected
        sent = recv_available(peer[0])
        conn = build_connect("node1", 60)
        assert sent[:len(conn)] == conn
        assert sent[len(conn):] == build_publish(TOPIC, joined, 1, False, 1), sent
    finally:
        close_loopback(c, srv, peer)


def _check_short(parts, length):
    c, srv, peer = loopback_client(CONNACK_OK, timeout_ms=1000)
    try:
        c.connect()
        e = raises(MQTTError, c.publish, TOPIC, _gen(parts), 1, False, None, length)
        assert not isinstance(e, MQTTTimeout), e  # found while sending, not by waiting for a PUBACK
        assert not c.connected
        sent = recv_available(peer[0])
        conn = build_connect("node1", 60)
        assert sent[:len(conn)] == conn
        pub = sent[len(conn):]
        hdr = build_publish_header(TOPIC, length, 1, False, 1)
        assert pub[:len(hdr)] == hdr, pub  # the announced length went out...
        assert len(pub) < len(hdr) + length, (len(pub), len(hdr), length)  # ...but never that many bytes
        joined = b"".join([bytes(p) for p in parts])
        assert pub[len(hdr):] == joined[:len(pub) - len(hdr)]  # only whole pieces of the real payload
        return e
    finally:
        close_loopback(c, srv, peer)


def test_publish_stream_overrun():
    _check_short([b"0123456789", b"abcdef"], 12)  # the second piece overruns the length
    _check_short([b"0123", b"4567", b"89abcdef"], 10)
    _check_short([b"aaaa", b"bb", b"c"], 6)  # the length is met exactly at a piece boundary, then more
    _check_short([b"aaaa", b"bb", b"", b"c"], 6)


def test_publish_stream_underrun():
    e = _check_short([b"0123", b"4567"], 12)
    assert "length" in str(e), str(e)
    _check_short([], 5)
    _check_short([b"", b"x"], 2)


def test_publish_stream_error_closes():
    c, srv, peer = loopback_client(CONNACK_OK, timeout_ms=1000)
    try:
        c.connect()
        raises(MQTTError, c.publish, TOPIC, _gen([b"abc"]), 1, False, None, 4)
        assert not c.connected
        raises(MQTTError, c.publish, TOPIC, b"x", 1)  # closed: no publish until reconnected
    finally:
        close_loopback(c, srv, peer)


# ---- 7. the node's streamed, signed batch replay ----

def _verify_sig(mac, payload):
    i = payload.rfind(b',"sig":"')
    assert i > 0 and payload.endswith(b'"}'), payload
    body = payload[:i] + b"}"
    assert payload[i + 8:-2].decode() == mac.hexdigest(body), payload
    return json.loads(payload)


def _replay(cfg, n):
    cfg["key"] = KEY
    r = NodeRig(cfg)
    mac = HmacSha256(unhexlify(KEY))
    try:
        r.mqtt.fail_connect = True
        r.tick(n)
        assert len(r.node.queue) == n and r.mqtt.published == []
        errors = r.node.errors
        r.reconnect()
        r.node.service_link(60000)
        assert r.node._sent == n and len(r.node.queue) == n, r.lines  # all sent, kept until confirmed
        r.confirm(n)
        r.node.service_link(0)
        assert len(r.node.queue) == 0, r.lines
        assert r.node.errors == errors, r.lines  # FakeMQTT checks the announced length too
        for topic, payload, qos, retain in r.mqtt.published:
            _verify_sig(mac, payload)  # status and events as well
        sizes = []
        seqs = []
        for topic, payload, qos, retain in r.mqtt.data():
            d = _verify_sig(mac, payload)
            if "batch" in d:
                assert len(d) == 2 and "sig" in d
                for rec in d["batch"]:
                    assert "sig" not in rec
                    seqs.append(rec["seq"])
                sizes.append(len(d["batch"]))
            else:
                seqs.append(d["seq"])
                sizes.append(1)
        assert seqs == list(range(1, n + 1)), seqs
        recs = []
        for topic, payload, qos, retain in r.mqtt.data():
            d = json.loads(payload)
            recs.extend(d["batch"] if "batch" in d else [d])
        assert [x["ts"] for x in recs] == [TS0 + 10000 * i for i in range(1, n + 1)]
        assert r.node.queue.acked == n
        return sizes
    finally:
        r.done()


def test_replay_batch_signed():
    sizes = _replay(good_config(), 30)
    assert max(sizes) > 6, sizes  # batch_bytes defaults to 32768: far more than 6 records a batch
    assert sum(sizes) == 30


def test_replay_small_batches_signed():
    cfg = good_config()
    cfg["queue"] = {"batch_bytes": 256}
    sizes = _replay(cfg, 30)
    assert len(sizes) > 3 and max(sizes) > 1 and sum(sizes) == 30, sizes
