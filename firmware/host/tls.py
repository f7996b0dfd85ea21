"""MicroPython's `tls` module on CPython, over `ssl` (host only: a device has the real one, built in,
and a file never shadows it there). What firmware/mqtt_tls_link.py uses, with MicroPython's
signatures: SSLContext(protocol), verify_mode, load_verify_locations(cadata) with DER bytes,
load_cert_chain(cert, key) with DER bytes, wrap_socket(sock, server_hostname=...).

One difference of CPython's ssl is covered here: bytes it has decrypted but not yet handed out do not
wake select.poll() (the socket is empty, the SSL object is not), so a TLS record carrying two MQTT
packets would leave the second one waiting for the next read's timeout. The wrapped socket's
poller() (used by sockio.poller) reports those bytes first. MicroPython's poll already counts them."""
import base64
import os
import select
import ssl
import tempfile

PROTOCOL_TLS_CLIENT = ssl.PROTOCOL_TLS_CLIENT
CERT_REQUIRED = ssl.CERT_REQUIRED
CERT_NONE = ssl.CERT_NONE


class _Poll:
    def __init__(self, s):
        self.s = s
        self.p = select.poll()
        self.p.register(s, select.POLLIN)

    def poll(self, timeout_ms=-1):
        if self.s.pending():
            return [(self.s, select.POLLIN)]
        return self.p.poll(timeout_ms)


class _Socket(ssl.SSLSocket):
    def poller(self):
        return _Poll(self)


def _pem(der, label):
    b = base64.encodebytes(bytes(der)).decode()
    return "-----BEGIN %s-----\n%s-----END %s-----\n" % (label, b, label)


class SSLContext:
    def __init__(self, protocol):
        self._ctx = ssl.SSLContext(protocol)
        self._ctx.sslsocket_class = _Socket
        self._ctx.minimum_version = ssl.TLSVersion.TLSv1_2

    @property
    def verify_mode(self):
        return self._ctx.verify_mode

    @verify_mode.setter
    def verify_mode(self, mode):
        self._ctx.verify_mode = mode

    def load_verify_locations(self, cadata):
        try:
            self._ctx.load_verify_locations(cadata=bytes(cadata))
        except ssl.SSLError as e:
            raise ValueError("invalid cert (%s)" % e) from None

    def load_cert_chain(self, cert, key):
        """DER certificate and key (PKCS#8, or SEC1 for an EC key), as mbedTLS takes them."""
        try:
            pem_cert = ssl.DER_cert_to_PEM_cert(bytes(cert))
        except Exception as e:
            raise ValueError("invalid cert (%s)" % e) from None
        last = None
        for label in ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"):
            fd, path = tempfile.mkstemp(suffix=".pem")  # ssl reads a chain from files only (0600)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(pem_cert + _pem(key, label))
                self._ctx.load_cert_chain(path)
                return
            except ssl.SSLError as e:
                last = e
            finally:
                os.unlink(path)
        raise ValueError("invalid key (%s)" % last)

    def wrap_socket(self, sock, server_hostname=None):
        return self._ctx.wrap_socket(sock, server_hostname=server_hostname)
