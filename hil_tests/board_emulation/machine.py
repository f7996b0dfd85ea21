"""Board emulation for hil_tests (MicroPython unix port only): the parts of the ESP32's `machine`
module the firmware uses, so that boardmain.py runs hw_esp32.py and transport_uart.py on a PC.
Not a device: the timing, the UART FIFO and the watchdog are approximations (README here).

- UART(n): a TCP connection to a serial device server (the bus simulator with RTU framing) named
  by EDGEMON_UART<n>=host:port; non-blocking reads as with timeout=0 on the board.
- Pin: an output keeps its value; UART writes log the value of every output pin (DE must be 1).
- WDT: feed() is logged; a feed later than the timeout, or any shim call after it, ends the
  process with code 3 ("watchdog reset").
- reset(): ends the process with code 4.
Every event is appended to the file EDGEMON_BOARD_LOG (one line each) for the test to read."""
import os
import select
import socket
import sys
import time

_pins = []
_wdt = []


def _log(line):
    path = os.getenv("EDGEMON_BOARD_LOG")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def _check_wdt():
    for w in _wdt:
        if time.ticks_diff(time.ticks_ms(), w.fed) > w.timeout:
            _log("wdt reset")
            print("watchdog reset")
            sys.exit(3)


class Pin:
    OUT = 1
    IN = 0

    def __init__(self, id, mode=-1, value=None):
        self.id = id
        self.mode = mode
        self.v = 0 if value is None else value
        if mode == Pin.OUT:
            _pins.append(self)
        _log("pin %d out=%d value=%d" % (id, mode == Pin.OUT, self.v))

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = 1 if v else 0


class UART:
    def __init__(self, id, baudrate=9600, bits=8, parity=None, stop=1, timeout=0, rxbuf=256, tx=None, rx=None):
        where = os.getenv("EDGEMON_UART%d" % id)
        if not where:
            raise OSError("EDGEMON_UART%d is not set (host:port of the serial server)" % id)
        host, port = where.split(":")
        self.sock = socket.socket()
        self.sock.connect(socket.getaddrinfo(host, int(port))[0][-1])
        self.poll = select.poll()
        self.poll.register(self.sock, select.POLLIN)
        self.rx = b""
        self.char_us = (1 + bits + (0 if parity is None else 1) + stop) * 1000000 // baudrate
        _log("uart %d baud=%d bits=%d parity=%s stop=%d timeout=%d rxbuf=%d" % (id, baudrate, bits, parity, stop,
                                                                           timeout, rxbuf))

    def _pull(self):
        _check_wdt()
        while self.poll.poll(0):
            d = self.sock.recv(512)
            if not d:
                break
            self.rx += d

    def any(self):
        self._pull()
        return len(self.rx)

    def read(self, n=-1):
        self._pull()
        if n is None or n < 0:
            n = len(self.rx)
        d, self.rx = self.rx[:n], self.rx[n:]
        return d or None

    def write(self, b):
        _check_wdt()
        _log("uart write %d de=%s" % (len(b), ",".join([str(p.v) for p in _pins])))
        self.sock.send(b)
        return len(b)

    def flush(self):
        time.sleep_us(0)  # the socket has it; on a board this waits for the last stop bit


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.fed = time.ticks_ms()
        _wdt.append(self)
        _log("wdt timeout=%d" % timeout)

    def feed(self):
        _check_wdt()
        self.fed = time.ticks_ms()


def reset():
    _log("reset")
    print("machine.reset()")
    sys.exit(4)
