"""Byte transport over a TCP socket, for Modbus RTU over TCP (serial device servers, framing "rtu")
and Modbus TCP (framing "mbap"). Runs on the ESP32 and the unix port alike (socket + select.poll)."""
import select
import socket
from compat import ticks_ms, ticks_diff
from modbus_master import ModbusTimeout


class TcpTransport:
    """Connects lazily; after an error the master calls close() and the next send() reconnects."""

    def __init__(self, host, port, framing="rtu", connect_timeout_ms=2000):
        self.host = host
        self.port = port
        self.framing = framing
        self.connect_timeout_ms = connect_timeout_ms
        self.sock = None
        self._poll = None

    def _ensure(self):
        if self.sock is not None:
            return
        ai = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0]
        s = socket.socket(ai[0], socket.SOCK_STREAM)
        try:
            s.settimeout(self.connect_timeout_ms / 1000.0)
            s.connect(ai[-1])
        except Exception:
            s.close()
            raise
        p = select.poll()
        p.register(s, select.POLLIN)
        self.sock = s
        self._poll = p

    def send(self, data):
        self._ensure()
        mv = memoryview(data)
        n = 0
        while n < len(data):
            k = self.sock.send(mv[n:])
            if not k:
                raise OSError("send failed")
            n += k

    def recv_exact(self, n, timeout_ms):
        if self.sock is None:
            raise OSError("not connected")
        buf = bytearray(n)
        got = 0
        start = ticks_ms()
        while got < n:
            left = timeout_ms - ticks_diff(ticks_ms(), start)
            if left <= 0 or not self._poll.poll(left):
                raise ModbusTimeout("got %d of %d bytes in %d ms" % (got, n, timeout_ms))
            chunk = self.sock.recv(n - got)
            if not chunk:
                raise OSError("connection closed by peer")
            buf[got:got + len(chunk)] = chunk
            got += len(chunk)
        return bytes(buf)

    def flush_input(self):
        if self.sock is None:
            return
        while self._poll.poll(0):
            if not self.sock.recv(256):
                self.close()  # peer closed; reconnect on the next send
                return

    def close(self):
        s = self.sock
        self.sock = None
        self._poll = None
        if s is not None:
            try:
                s.close()
            except Exception:
                pass
