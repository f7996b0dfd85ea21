"""RS-485 transport framing and timing against a fake UART, DE pin and clock (no board needed)."""
from transport_uart import UartTransport, char_bits
from modbus_rtu import FrameError
from modbus_slave import build_read_request
from rtu_timing import char_us, silent_us
from modbus_master import ModbusMaster, ModbusTimeout
from modbus_fakes import FakeBus
from fakes import raises


class Clock:
    def __init__(self):
        self.t = 1000000
        self.sleeps = []

    def ticks_us(self):
        return self.t

    def diff(self, a, b):
        return a - b

    def sleep_us(self, us):
        self.sleeps.append(us)
        self.t += us


class Pin:
    def __init__(self, clock):
        self.clock = clock
        self.log = []
        self.v = None

    def value(self, v=None):
        if v is not None:
            self.v = v
            self.log.append((self.clock.t, v))
        return self.v


class Uart:
    """Bytes arrive at scheduled times; write() notes the DE level; flush() takes the wire time."""

    def __init__(self, clock, pin, char, has_flush=True, responder=None):
        self.clock = clock
        self.pin = pin
        self.char = char
        self.arrivals = []  # (time_us, bytes)
        self.writes = []    # (time_us, de level, bytes)
        self.responder = responder
        if has_flush:
            self.flush = self._flush

    def at(self, t, data):
        self.arrivals.append((t, bytes(data)))

    def _ready(self):
        return b"".join(d for t, d in self.arrivals if t <= self.clock.t)

    def any(self):
        return len(self._ready())

    def read(self, n):
        out = b""
        rest = []
        for t, d in self.arrivals:
            if t <= self.clock.t and len(out) < n:
                take = n - len(out)
                out += d[:take]
                if d[take:]:
                    rest.append((t, d[take:]))
            else:
                rest.append((t, d))
        self.arrivals = rest
        return out

    def write(self, data):
        self.writes.append((self.clock.t, self.pin.v if self.pin else None, bytes(data)))
        if self.responder:
            self.responder(bytes(data))
        return len(data)

    def _flush(self):
        self.clock.t += len(self.writes[-1][2]) * self.char


def _rig(baud=9600, has_flush=True, bits=11):
    c = Clock()
    pin = Pin(c)
    t = UartTransport(None, baud, pin, bits, clock=c)
    u = Uart(c, pin, t.char, has_flush)
    t.uart = u
    return c, pin, u, t


def test_char_bits():
    assert char_bits("N", 1) == 10 and char_bits("E", 1) == 11 and char_bits("O", 2) == 12


def test_send_drives_de_around_the_frame_and_keeps_the_silence():
    c, pin, u, t = _rig()
    req = build_read_request(1, 3, 0, 2)
    t.send(req)
    assert c.sleeps == []  # the bus was already quiet
    (tw, de, data), = u.writes
    assert data == req and de == 1  # driver enabled while writing
    assert pin.log[-1] == (tw + 8 * t.char, 0)  # released only after the last character is out
    t.send(req)  # at once again: must first keep 3.5 characters of silence
    assert c.sleeps == [silent_us(9600)] and u.writes[1][0] - pin.log[-3][0] == silent_us(9600)
    c.t += 10000
    t.send(req)  # silence already long enough
    assert len(c.sleeps) == 1


def test_send_without_uart_flush_waits_the_wire_time():
    c, pin, u, t = _rig(19200, has_flush=False)
    t.send(b"\x01\x02\x03\x04")
    assert c.sleeps == [4 * t.char] and pin.log[-1][1] == 0


def test_recv_assembles_pieces_and_allows_for_wire_time():
    c, pin, u, t = _rig()
    start = c.t
    u.at(start + 5000, b"\x01\x03\x04")
    u.at(start + 8000, b"\x00\x01\x00\x02\xaa\xbb")
    assert t.recv_exact(9, 10) == b"\x01\x03\x04\x00\x01\x00\x02\xaa\xbb"
    # First byte after the 10 ms timeout but within timeout + the frame's own wire time (10.3 ms): ok.
    c2, _, u2, t2 = _rig()
    u2.at(c2.t + 18000, b"\x01\x03\x04\x00\x01\x00\x02\xaa\xbb")
    assert len(t2.recv_exact(9, 10)) == 9
    c3, _, u3, t3 = _rig()
    s3 = c3.t
    u3.at(s3 + 25000, b"\x01")
    raises(ModbusTimeout, t3.recv_exact, 9, 10)
    assert 20000 <= c3.t - s3 < 25000


def test_recv_detects_a_frame_that_breaks_off():
    c, pin, u, t = _rig()
    start = c.t
    u.at(start + 2000, b"\x01\x03\x04")
    e = raises(FrameError, t.recv_exact, 9, 1000)
    assert "broke off" in str(e)
    assert c.t - start < 20000  # noticed after the gap, not after the whole 1 s timeout


def test_master_over_the_uart_transport():
    c = Clock()
    pin = Pin(c)
    t = UartTransport(None, 9600, pin, 11, clock=c)
    bus = FakeBus("rtu")
    bus.unit(5).set_regs(3, 10, [0x420C, 0xCCCD])

    def respond(frame):
        bus.send(frame)
        if bus.rx:  # the slave answers 3 ms after the request has left
            u.at(c.t + len(frame) * t.char + 3000, bus.rx)
            bus.rx = b""

    u = Uart(c, pin, t.char, True, respond)
    t.uart = u
    m = ModbusMaster(t)
    assert m.read_registers(5, 3, 10, 2, 100) == [0x420C, 0xCCCD]
    u.at(c.t, b"\xff\xff")  # line noise before the next request is flushed, not parsed
    assert m.read_registers(5, 3, 10, 2, 100) == [0x420C, 0xCCCD]
    bus.unit(5).mode = "silent"
    raises(ModbusTimeout, m.read_registers, 5, 3, 10, 2, 100)
    assert pin.v == 0  # bus released after every exchange


def test_set_baud_reinits_the_uart_and_its_frame_timing_and_keeps_the_configured_one():
    class Uart:
        def __init__(self):
            self.bauds = []

        def init(self, baudrate):
            self.bauds.append(baudrate)

    u = Uart()
    t = UartTransport(u, 9600, None, 11, clock=Clock())
    slow = (t.char, t.silent, t.gap)
    t.set_baud(38400)
    assert u.bauds == [38400] and t.char == char_us(38400) and t.silent == 1750 and t.gap < slow[2]
    t.set_baud(t.baud0)
    assert u.bauds == [38400, 9600] and (t.char, t.silent, t.gap) == slow
