"""HMAC-SHA256 written on hashlib.sha256 (RFC 4231 vectors, both interpreters) and the sig rule."""
import json
from binascii import unhexlify
from hmac_sha256 import HmacSha256, hmac_sha256
from record import sign, signed_parts
from record_tools import build_batch, build_record_rows

# RFC 4231 test cases 1, 2, 3, 4, 6 (6: key longer than the block size).
RFC4231 = (
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (unhexlify("0102030405060708090a0b0c0d0e0f10111213141516171819"), b"\xcd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
)


def test_rfc4231_vectors():
    for key, msg, want in RFC4231:
        assert HmacSha256(key).hexdigest(msg) == want, want
        assert hmac_sha256(key, msg) == unhexlify(want)


def test_parts_equal_whole():
    m = HmacSha256(b"k" * 32)
    assert m.digest(b"abc", b"", b"def") == m.digest(b"abcdef")


def test_cpython_hmac_agrees():
    try:
        import hmac
        import hashlib
    except ImportError:
        return  # MicroPython: no hmac module (that is why hmac_sha256.py exists); RFC vectors cover it
    if not hasattr(hmac, "new"):
        return
    for n in (0, 1, 31, 64, 65, 200):
        key = bytes(range(n))
        msg = bytes(range(256)) * 3
        assert HmacSha256(key).digest(msg) == hmac.new(key, msg, hashlib.sha256).digest(), n


def test_sign_record_and_batch_rule():
    m = HmacSha256(unhexlify("00112233445566778899aabbccddeeff"))
    rec = build_record_rows(1764000000000, 5, "ntp", ["w01018"], [(35.25, "N", True)])
    s = sign(rec, m)
    tail = ',"sig":"' + m.hexdigest(rec) + '"}'
    assert s == rec[:-1] + tail.encode()
    assert json.loads(s)["sig"] == m.hexdigest(rec)
    assert sign(rec, None) == rec
    b = build_batch([rec, rec])
    assert b == b'{"batch":[' + rec + b"," + rec + b"]}"
    sb = sign(b, m)
    d = json.loads(sb)
    assert len(d["batch"]) == 2 and "sig" not in d["batch"][0]
    assert sb.endswith(b'"sig":"' + m.hexdigest(b).encode() + b'"}')


def test_signed_parts_are_the_bytes_of_sign():
    """The pieces the node publishes (status, events, a single record) join to sign()'s payload."""
    m = HmacSha256(b"site key")
    for payload in (b'{"state":"online","fw":"0.3.0"}', bytearray(b'{"ts":1,"seq":2,"clk":"ntp","readings":{}}')):
        parts = signed_parts(payload, m)
        joined = b"".join(bytes(p) for p in parts)
        assert joined == sign(bytes(payload), m)
        assert json.loads(joined)["sig"] == m.hexdigest(bytes(payload))
        assert [bytes(p) for p in signed_parts(payload, None)] == [bytes(payload)]
