"""A fake Modbus bus for the shared cases: several slaves (unit ids) behind one transport, answering
every function code in RTU or MBAP framing, with per-unit faults and a log of what was asked."""
import struct
from modbus_rtu import rtu_frame, crc16
from modbus_master import ModbusTimeout


class Unit:
    def __init__(self):
        self.bits = {1: {}, 2: {}}   # coils, discrete inputs: addr -> 0/1
        self.regs = {3: {}, 4: {}}   # holding, input: addr -> 16-bit int
        self.mode = "ok"  # ok, silent, exception, badcrc, wrong_unit, short, oserror
        self.exc_code = 4
        self.asked = 0
        self.silent_at = ()  # start addresses of requests this unit never answers (mode aside)

    def set_regs(self, fc, addr, regs):
        for i in range(len(regs)):
            self.regs[fc][addr + i] = regs[i]


class FakeBus:
    def __init__(self, framing="rtu"):
        self.framing = framing
        self.units = {}
        self.rx = b""
        self.sent = []
        self.timeouts = []  # timeout_ms of every recv_exact call
        self.waits = []  # timeout_ms of the first recv_exact after each request: how long it may cost
        self._first = False
        self.closed = 0

    def unit(self, uid):
        if uid not in self.units:
            self.units[uid] = Unit()
        return self.units[uid]

    def _answer(self, u, pdu):
        fc = pdu[0]
        addr, arg = struct.unpack(">HH", pdu[1:5])
        if u.mode == "exception":
            return bytes((fc | 0x80, u.exc_code))
        if fc in (1, 2):
            m = u.bits[fc]
            out = bytearray(2 + (arg + 7) // 8)
            out[0] = fc
            out[1] = len(out) - 2
            for k in range(arg):
                if m.get(addr + k, 0):
                    out[2 + k // 8] |= 1 << (k % 8)
            return bytes(out)
        if fc in (3, 4):
            m = u.regs[fc]
            out = bytearray(2 + 2 * arg)
            out[0] = fc
            out[1] = 2 * arg
            for k in range(arg):
                if addr + k not in m:
                    return bytes((fc | 0x80, 2))  # illegal data address
                struct.pack_into(">H", out, 2 + 2 * k, m[addr + k])
            return bytes(out)
        if fc == 5:
            u.bits[1][addr] = 1 if arg == 0xFF00 else 0
        elif fc == 6:
            u.regs[3][addr] = arg
        elif fc == 16:
            for k in range(arg):
                u.regs[3][addr + k] = (pdu[6 + 2 * k] << 8) | pdu[7 + 2 * k]
        return bytes(pdu[:5])

    def send(self, data):
        data = bytes(data)
        self.sent.append(data)
        self._first = True
        if self.framing == "rtu":
            uid, pdu, head = data[0], data[1:-2], b""
        else:
            uid, pdu, head = data[6], data[7:], data[:6]
        u = self.units.get(uid)
        if u is None:
            return  # nobody at that address: silence
        u.asked += 1
        if u.mode == "oserror":
            raise OSError("link down")
        if u.mode == "silent" or ((pdu[1] << 8) | pdu[2]) in u.silent_at:
            return
        resp = self._answer(u, pdu)
        rid = uid if u.mode != "wrong_unit" else (uid % 247) + 1
        if self.framing == "rtu":
            frame = bytearray(rtu_frame(rid, resp))
            if u.mode == "badcrc":
                frame[-1] ^= 0xFF
        else:
            frame = bytearray(head[:4] + struct.pack(">HB", len(resp) + 1, rid) + resp)
        if u.mode == "short":
            frame = frame[:-1]
        self.rx = bytes(frame)

    def recv_exact(self, n, timeout_ms):
        self.timeouts.append(timeout_ms)
        if self._first:
            self.waits.append(timeout_ms)
            self._first = False
        if len(self.rx) < n:
            self.rx = b""
            raise ModbusTimeout("fake: no answer")
        out = self.rx[:n]
        self.rx = self.rx[n:]
        return out

    def flush_input(self):
        self.rx = b""

    def close(self):
        self.closed += 1


def crc_ok(frame):
    c = crc16(frame, 0, len(frame) - 2)
    return frame[-2] == c & 0xFF and frame[-1] == c >> 8
