"""RS-485 byte transport for Modbus RTU on a machine.UART with a driver-enable (DE) pin: keeps the
3.5-character silence between frames, drives DE around each send, and adds wire time to timeouts."""
from modbus_rtu import FrameError
from rtu_timing import char_us, silent_us
from modbus_master import ModbusTimeout

try:
    from time import ticks_us, ticks_diff, sleep_us
except ImportError:  # CPython: a microsecond tick counter that wraps like MicroPython's
    import time as _time

    def ticks_us():
        return (_time.monotonic_ns() // 1000) & 0x3FFFFFFF

    def ticks_diff(a, b):
        d = (a - b) & 0x3FFFFFFF
        return d - 0x40000000 if d >= 0x20000000 else d

    def sleep_us(us):
        if us > 0:
            _time.sleep(us / 1000000.0)


class RealClock:
    """Microsecond ticks and sleep; tests pass a fake with the same three methods."""
    ticks_us = staticmethod(ticks_us)
    diff = staticmethod(ticks_diff)
    sleep_us = staticmethod(sleep_us)


def char_bits(parity, stop):
    """Bits per character on the line: start + 8 data + parity bit (E/O) + stop bits."""
    return 1 + 8 + (0 if parity == "N" else 1) + stop


class UartTransport:
    framing = "rtu"

    def __init__(self, uart, baud, de=None, bits=11, clock=None):
        self.uart = uart
        self.de = de
        self.baud0 = baud  # the configured one (probe --scan tries others, then puts it back)
        self.bits = bits
        self._timing(baud)
        self.clock = clock or RealClock
        self._last = self.clock.ticks_us() - self.silent  # end of the last bus activity
        if de is not None:
            de.value(0)  # receive: never hold the bus when idle

    def _timing(self, baud):
        self.char = char_us(baud, bits=self.bits)
        self.silent = silent_us(baud, self.bits)
        # A response that stops for longer than this has broken off. Wider than the spec's 1.5
        # characters: a UART FIFO hands bytes over in bursts, a few character times late.
        self.gap = self.silent + 4 * self.char + 2000

    def set_baud(self, baud):
        """Another baud rate on the same UART (probe --scan)."""
        self.uart.init(baudrate=baud)
        self._timing(baud)

    def send(self, data):
        c = self.clock
        wait = self.silent - c.diff(c.ticks_us(), self._last)
        if wait > 0:
            c.sleep_us(wait)  # the silence that tells every slave a new frame starts
        if self.de is not None:
            self.de.value(1)
        try:
            self.uart.write(data)
            # Release DE only when the last stop bit is out, or the frame's tail is cut off.
            if hasattr(self.uart, "flush"):
                self.uart.flush()
            else:
                c.sleep_us(len(data) * self.char)
        finally:
            if self.de is not None:
                self.de.value(0)
            self._last = c.ticks_us()

    def recv_exact(self, n, timeout_ms):
        """n bytes; the first must start within timeout_ms (+ the frame's own wire time)."""
        c = self.clock
        buf = bytearray(n)
        got = 0
        start = c.ticks_us()
        limit = timeout_ms * 1000 + n * self.char
        last = start
        while got < n:
            k = self.uart.any()
            if k:
                chunk = self.uart.read(k if k < n - got else n - got)
                buf[got:got + len(chunk)] = chunk
                got += len(chunk)
                last = c.ticks_us()
                continue
            now = c.ticks_us()
            if got and c.diff(now, last) > self.gap:
                self._last = now
                raise FrameError("frame broke off after %d of %d bytes" % (got, n))
            if c.diff(now, start) > limit:
                self._last = now
                raise ModbusTimeout("got %d of %d bytes in %d ms" % (got, n, timeout_ms))
            c.sleep_us(self.char)
        self._last = c.ticks_us()
        return bytes(buf)

    def flush_input(self):
        k = self.uart.any()
        while k:
            self.uart.read(k)
            self._last = self.clock.ticks_us()
            k = self.uart.any()

    def close(self):
        if self.de is not None:
            self.de.value(0)


def open_uart(tcfg):
    """Build the transport from a validated "rtu" transport config on a board (imports machine)."""
    from machine import UART, Pin
    parity = tcfg.get("parity", "N")
    stop = tcfg.get("stop", 1)
    kw = {"baudrate": tcfg["baud"], "bits": 8, "parity": {"N": None, "E": 0, "O": 1}[parity], "stop": stop,
          "timeout": 0, "rxbuf": 512}
    if tcfg.get("tx") is not None:
        kw["tx"] = tcfg["tx"]
    if tcfg.get("rx") is not None:
        kw["rx"] = tcfg["rx"]
    uart = UART(tcfg["uart"], **kw)
    de = Pin(tcfg["de"], Pin.OUT, value=0) if tcfg.get("de") is not None else None
    return UartTransport(uart, tcfg["baud"], de, char_bits(parity, stop))
