"""HMAC-SHA256 (RFC 2104) over hashlib.sha256, because MicroPython ships no hmac module.
The padded key blocks are computed once per key: signing is then two sha256 passes per payload."""
import hashlib
from binascii import hexlify
from compat import const

_BLOCK = const(64)  # SHA-256 block size in bytes


class HmacSha256:
    def __init__(self, key):
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        k = bytearray(_BLOCK)
        k[:len(key)] = key
        ip = bytearray(_BLOCK)
        op = bytearray(_BLOCK)
        for i in range(_BLOCK):
            ip[i] = k[i] ^ 0x36
            op[i] = k[i] ^ 0x5C
        self._ipad = bytes(ip)
        self._opad = bytes(op)

    def begin(self):
        """For a message that arrives in pieces: update() the returned object with each piece, then
        end() it. The same MAC as digest() over the pieces joined."""
        return hashlib.sha256(self._ipad)

    def end(self, h):
        o = hashlib.sha256(self._opad)
        o.update(h.digest())
        return o.digest()

    def digest(self, *parts):
        """MAC over the concatenation of parts (no need to join a large payload first)."""
        h = self.begin()
        for p in parts:
            h.update(p)
        return self.end(h)

    def hexdigest(self, *parts):
        return hexlify(self.digest(*parts)).decode()


def hmac_sha256(key, msg):
    return HmacSha256(key).digest(msg)
