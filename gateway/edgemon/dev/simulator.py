"""Simulated online analyzers: a real Modbus stack (pymodbus) serving an analyzer's register map:
the COD demo map (AnalyzerSimulator, here) or any firmware profile, several units per bus
(BusSimulator, in bussim.py, on the same server thread).

The firmware reaches it as Modbus RTU framing over TCP, as it would reach a serial server on site.
Values move like a real outfall (a slow daily cycle plus noise) unless a test pins one with
`set_value`; `set_status` and `set_fault` let tests drive the flag and failure paths.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import struct
import threading
import time
from dataclasses import dataclass, field

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator.simcore import SimCore
from pymodbus.simulator import DataType, SimData, SimDevice

log = logging.getLogger("edgemon.dev.simulator")

# Status word of the simulated COD analyzer (the firmware's node config maps these to HJ 212 flags).
STATUS_CODES = {"normal": 0, "maintenance": 1, "calibration": 2, "fault": 3, "over_range": 4, "stopped": 5}
UNIT_CODES = {"mg/L": 1, "pH": 2, "L/s": 3}
WORD_ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
FAULT_MODES = (None, "exception", "silent")


def encode_float32(value: float, order: str = "ABCD") -> list[int]:
    """float32 -> two registers in the given word/byte order (A = most significant byte)."""
    if order not in WORD_ORDERS:
        raise ValueError(f"word order must be one of {', '.join(WORD_ORDERS)}, not {order!r}")
    a, b, c, d = struct.pack(">f", value)
    arranged = {"ABCD": (a, b, c, d), "CDAB": (c, d, a, b), "BADC": (b, a, d, c), "DCBA": (d, c, b, a)}[order]
    return [(arranged[0] << 8) | arranged[1], (arranged[2] << 8) | arranged[3]]


@dataclass
class Waveform:
    """A value that moves like an outfall: daily cycle + slow drift + noise, never below zero."""

    base: float
    daily_amplitude: float
    noise: float
    period_s: float = 86400.0
    phase: float = field(default_factory=lambda: random.uniform(0, 2 * math.pi))

    def at(self, t: float) -> float:
        v = self.base + self.daily_amplitude * math.sin(2 * math.pi * t / self.period_s + self.phase)
        v += random.gauss(0.0, self.noise)
        return max(0.0, v)


@dataclass
class AnalyzerProfile:
    """Register map of a simulated analyzer (holding and input registers share one map)."""

    name: str
    param: str          # HJ 212 code of the measured value, e.g. w01018
    unit: str           # e.g. mg/L
    range_upper: float
    waveform: Waveform
    word_order: str = "ABCD"
    value_addr: int = 0
    status_addr: int = 2
    unit_addr: int = 3
    range_addr: int = 4
    size: int = 8

    def registers(self, value: float, status: int) -> list[int]:
        regs = [0] * self.size
        regs[self.value_addr:self.value_addr + 2] = encode_float32(value, self.word_order)
        regs[self.status_addr] = status
        regs[self.unit_addr] = UNIT_CODES.get(self.unit, 0)
        regs[self.range_addr:self.range_addr + 2] = encode_float32(self.range_upper, self.word_order)
        return regs


def cod_profile(base: float = 30.0, amplitude: float = 8.0, noise: float = 0.8,
                period_s: float = 86400.0, word_order: str = "ABCD") -> AnalyzerProfile:
    """A COD analyzer (w01018, mg/L, range 0-500)."""
    return AnalyzerProfile(name="cod", param="w01018", unit="mg/L", range_upper=500.0,
                           waveform=Waveform(base, amplitude, noise, period_s), word_order=word_order)


class _SilentForOthers(SimCore):
    def _SimCore__get_device(self, device_id):  # (SimCore's private lookup, which falls back to device 0)
        if device_id not in self.devices:
            raise NoSuchIdException(f"no device {device_id}")
        return self.devices[device_id]


class ServerThread:
    """A pymodbus TCP server (RTU or socket framing) on host:port in a thread of its own, with its
    own event loop; start() returns once it listens (or raises why it could not), stop() shuts it
    down. Subclasses say what it serves: _devices(), _framer, _label() and _describe()."""

    _framer = FramerType.RTU

    def __init__(self, host: str, port: int):
        from .stack import free_port

        self.host = host
        self.port = port or free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusTcpServer | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    def _devices(self):
        raise NotImplementedError

    def _label(self) -> str:
        raise NotImplementedError

    def _describe(self) -> str:
        return self._label()

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        return data

    async def _serve(self):
        # A unit id nobody has gets silence, as on an RS-485 bus: pymodbus 3.16's simulator store
        # answers it from its first device's failure (exception 4) unless it says "no such id".
        self._server = ModbusTcpServer(self._devices(), framer=self._framer, address=(self.host, self.port),
                                       trace_packet=self._trace_packet, ignore_missing_devices=True)
        if type(self._server.context) is SimCore:
            self._server.context.__class__ = _SilentForOthers
        await self._server.serve_forever(background=True)  # listening once this returns
        self._started.set()
        await self._server.serving

    def _run(self):
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._start_error = exc
            self._started.set()
        finally:
            self._loop.close()

    def start(self, timeout_s: float = 10.0):
        self._thread = threading.Thread(target=self._run, name=f"sim-{self._label()}-{self.port}", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise RuntimeError(f"{self._label()} simulator did not start on port {self.port}")
        if self._start_error:
            raise RuntimeError(f"{self._label()} simulator failed on port {self.port}: {self._start_error}")
        log.info("%s on %s:%d", self._describe(), self.host, self.port)
        return self

    def stop(self):
        if self._loop and self._server and self._loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
            try:
                fut.result(timeout=5)
            except Exception:  # shutting down anyway
                pass
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class AnalyzerSimulator(ServerThread):
    """Serves one analyzer profile on 127.0.0.1:port with Modbus RTU framing over TCP, in its own thread."""

    def __init__(self, profile: AnalyzerProfile, port: int = 0, unit: int = 1, host: str = "127.0.0.1"):
        super().__init__(host, port)
        self.profile = profile
        self.unit = unit
        self._lock = threading.Lock()
        self._fixed: float | None = None
        self._status = STATUS_CODES["normal"]
        self._fault: str | None = None
        self.requests = 0           # how many requests reached the analyzer
        self.last_served: float | None = None

    # --- what tests and the demo control -------------------------------------------------------
    def set_value(self, value: float | None):
        """Serve exactly this value from now on (None: back to the moving waveform)."""
        with self._lock:
            self._fixed = None if value is None else float(value)

    def set_status(self, status: str | int):
        code = STATUS_CODES[status] if isinstance(status, str) else int(status)
        with self._lock:
            self._status = code

    def set_fault(self, mode: str | None):
        """None: answer normally; "exception": answer with exception 04 (device failure); "silent": no answer."""
        if mode not in FAULT_MODES:
            raise ValueError(f"fault mode must be one of {FAULT_MODES}, not {mode!r}")
        with self._lock:
            self._fault = mode

    def current_value(self) -> float:
        with self._lock:
            fixed = self._fixed
        return fixed if fixed is not None else round(self.profile.waveform.at(time.time()), 3)

    # --- Modbus side -----------------------------------------------------------------------------
    async def _on_access(self, function_code, start_address, address, count, registers, set_values):
        # Called by pymodbus before each read: refresh the register map in place with the value now.
        with self._lock:
            fault, status = self._fault, self._status
        self.requests += 1
        if fault == "exception":
            return ExcCodes.DEVICE_FAILURE
        value = self.current_value()
        fresh = self.profile.registers(value, status)
        registers[0:len(fresh)] = fresh
        self.last_served = value
        return None

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if sending and self._fault == "silent":
            return b""  # the analyzer hears the request and never answers
        return data

    def _devices(self):
        initial = self.profile.registers(self.profile.waveform.base, self._status)
        return SimDevice(id=self.unit, simdata=[SimData(0, values=initial, datatype=DataType.REGISTERS)],
                         action=self._on_access)

    def _label(self) -> str:
        return self.profile.name

    def _describe(self) -> str:
        return f"analyzer {self.profile.name} (unit {self.unit})"

    def start(self, timeout_s: float = 10.0) -> "AnalyzerSimulator":
        return super().start(timeout_s)


def crc16(data: bytes) -> int:
    """Modbus RTU CRC-16 (reflected polynomial 0xA001, initial 0xFFFF), bit by bit."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc
