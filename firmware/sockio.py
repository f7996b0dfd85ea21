"""The node's TCP socket code, shared by the MQTT client (mqtt.py) and Modbus over TCP
(transport_tcp.py): connect with a timeout, send all of a buffer, read exactly n bytes by a
deadline. Runs on the ESP32 (lwIP) and the unix port alike (socket + select.poll), over a plain
socket or a TLS one (mqtt_tls_link.py)."""
import select
import socket
from compat import ticks_ms, ticks_diff


def open_tcp(host, port, timeout_ms):
    """A connected TCP socket (TCP_NODELAY on), or the connect's error with the socket closed."""
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    try:
        s.settimeout(timeout_ms / 1000.0)
        s.connect(ai[-1])
    except Exception:
        s.close()
        raise
    try:
        # IPPROTO_TCP (6), TCP_NODELAY (1), the same numbers on Linux and lwIP; neither port names
        # them. A publish goes out in pieces: with Nagle on, each piece after the first waits for the
        # broker's delayed ACK (40 ms on Linux), which capped replay at ~80 records/s.
        s.setsockopt(6, 1, 1)
    except Exception:
        pass
    return s


def poller(s):
    """select.poll() watching s for input (what recv_exact waits on). A socket may bring its own
    (`s.poller()`: CPython's TLS socket, whose decrypted bytes a poll of the socket does not see;
    MicroPython's TLS socket counts them in its poll, and has none)."""
    p = getattr(s, "poller", None)  # (the name is this function's: no new interned name)
    if p:
        return p()
    p = select.poll()
    p.register(s, select.POLLIN)
    return p


def send_all(s, data, closed):
    """Every byte of data (bytes-like); OSError(closed) if the peer stops taking them."""
    mv = memoryview(data)
    n = 0
    total = len(data)
    while n < total:
        k = s.send(mv[n:])
        if not k:
            raise OSError(closed)
        n += k


def recv_exact(s, poll, n, timeout_ms, timeout_exc, closed):
    """A bytearray of exactly n bytes read within timeout_ms; timeout_exc("got G of N bytes in T
    ms") when they do not all arrive in time, OSError(closed) when the peer closes first."""
    buf = bytearray(n)
    got = 0
    start = ticks_ms()
    while got < n:
        left = timeout_ms - ticks_diff(ticks_ms(), start)
        if left <= 0 or not poll.poll(left):
            raise timeout_exc("got %d of %d bytes in %d ms" % (got, n, timeout_ms))
        chunk = s.recv(n - got)
        if chunk is None:  # a TLS socket with only part of a record in: no bytes yet, poll again
            continue
        if not chunk:
            raise OSError(closed)
        buf[got:got + len(chunk)] = chunk
        got += len(chunk)
    return buf


def close_quietly(s):
    if s is not None:
        try:
            s.close()
        except Exception:
            pass
