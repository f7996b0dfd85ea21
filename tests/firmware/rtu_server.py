"""A tiny Modbus RTU-over-TCP slave for CLI tests (CPython thread): serves FC03/FC04 from a
register map with the COD analyzer layout. The lead's pymodbus simulator replaces it end to end."""
import socket
import struct
import threading

from fwpaths import FIRMWARE
import sys

if FIRMWARE not in sys.path:
    sys.path.insert(0, FIRMWARE)
from modbus_rtu import crc16  # noqa: E402  (the firmware's CRC, cross-checked by known vectors)


def cod_registers(value=35.2, status=0):
    a, b = struct.unpack(">HH", struct.pack(">f", value))
    c, d = struct.unpack(">HH", struct.pack(">f", 500.0))
    return [a, b, status, 1, c, d]


class RtuServer:
    def __init__(self, regs, unit=1):
        self.regs = regs
        self.unit = unit
        self.requests = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn):
        conn.settimeout(0.2)
        buf = b""
        while not self._stop:
            try:
                chunk = conn.recv(256)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 8:
                req, buf = buf[:8], buf[8:]
                unit, fc, addr, count = struct.unpack(">BBHH", req[:6])
                if crc16(req[:6]) != req[6] | (req[7] << 8) or unit != self.unit:
                    continue
                self.requests += 1
                if fc in (3, 4) and addr + count <= len(self.regs):
                    body = bytes([unit, fc, 2 * count]) + b"".join(
                        struct.pack(">H", r) for r in self.regs[addr:addr + count])
                else:
                    body = bytes([unit, fc | 0x80, 2])
                c = crc16(body)
                conn.sendall(body + bytes([c & 0xFF, c >> 8]))
        conn.close()

    def stop(self):
        self._stop = True
        self.sock.close()
        self.thread.join(2)
