"""Byte transport over a TCP socket, for Modbus RTU over TCP (serial device servers, framing "rtu")
and Modbus TCP (framing "mbap"). The socket code is sockio.py's (shared with the MQTT client)."""
import sockio
from modbus_master import ModbusTimeout

_CLOSED = "connection closed by peer"


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
        s = sockio.open_tcp(self.host, self.port, self.connect_timeout_ms)
        self._poll = sockio.poller(s)
        self.sock = s

    def send(self, data):
        self._ensure()
        sockio.send_all(self.sock, data, _CLOSED)

    def recv_exact(self, n, timeout_ms):
        if self.sock is None:
            raise OSError("not connected")
        return bytes(sockio.recv_exact(self.sock, self._poll, n, timeout_ms, ModbusTimeout, _CLOSED))

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
        sockio.close_quietly(s)
