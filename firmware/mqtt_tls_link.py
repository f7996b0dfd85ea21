"""The MQTT link over TLS with the broker's CA pinned (the node config's `mqtt.tls`). Imported only
when the config has `mqtt.tls` (nodesetup.py, by a name over 10 characters, so a node without TLS
interns nothing for it and never loads `tls`). Runs on MicroPython's `tls` module (mbedTLS) and,
unchanged, on CPython, where `tls` is firmware/host/tls.py over `ssl` (never on a device).

The context is built once, at start-up, while the heap still has long free runs, and reused by every
connection: the certificates are read from flash (or the config) once. mbedTLS on this port reads
DER only; PEM (edgemon.pki's files as they are) is turned into DER here first."""
import tls
import sockio
from binascii import a2b_base64


def _der(v):
    """The DER bytes of a certificate or key: v is inline PEM text or the path of a PEM or DER file
    (one certificate or key; the first PEM block)."""
    if v[:5] == "-----":
        v = v.encode()
    else:
        with open(v, "rb") as f:
            v = f.read()
    if v[:5] == b"-----":  # PEM: the base64 lines between BEGIN and END
        b = b""
        for ln in v.split(b"\n")[1:]:
            ln = ln.strip()
            if ln[:5] == b"-----":
                break
            b += ln
        v = a2b_base64(b)
    return v


def socket_factory(t, host, log):
    """mqtt.tls -> MQTTClient's socket_factory: the TCP connection (sockio.open_tcp, its timeout also
    bounds each handshake read) wrapped in TLS 1.2, the broker's certificate checked against the
    pinned CA and its name (server_hostname, default mqtt.host). A client certificate (mutual TLS)
    when mqtt.tls has cert and key. Certificates that cannot be read are logged now and refuse every
    connect with the same message (the node goes on sampling into its flash queue)."""
    c = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    c.verify_mode = tls.CERT_REQUIRED  # no unpinned TLS: the handshake fails without the CA's signature
    err = k = None
    try:
        k = "ca"
        v = _der(t[k])
        c.load_verify_locations(v)
        if t.get("cert"):
            k = "cert"
            v = _der(t[k])
            k = "key"
            v = (v, _der(t[k]))
            k = "cert"  # (mbedTLS says which of the two it refused: "invalid cert" or "invalid key")
            c.load_cert_chain(v[0], v[1])
        v = None
    except MemoryError:
        raise
    except Exception as e:
        err = ("mqtt.tls.%s: cannot load %s: %s; fix: copy the file to the node (DER or PEM, as edgemon.pki "
               "wrote it) or correct the path" % (k, t[k][:60], str(e).strip()))
        log("error " + err)
    name = t.get("server_hostname") or host

    def open_tcp(h, port, timeout_ms):
        if err:
            raise OSError(err)
        s = sockio.open_tcp(h, port, timeout_ms)
        try:
            return c.wrap_socket(s, server_hostname=name)
        except MemoryError:
            sockio.close_quietly(s)
            raise
        except Exception as e:  # nothing was sent: MQTT's CONNECT only follows a verified handshake
            sockio.close_quietly(s)
            raise OSError("TLS handshake with %s:%d (%s) failed: %s; check that mqtt.tls.ca is the CA that "
                          "signed the broker's certificate (and mqtt.tls.cert/key where the broker asks for "
                          "one)" % (h, port, name, str(e).strip()))
    return open_tcp
