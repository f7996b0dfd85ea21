"""Simulated online analyzers: a real Modbus stack (pymodbus) serving an analyzer's register map:
the COD demo map (AnalyzerSimulator) or any firmware profile, several units per bus (BusSimulator).

The firmware reaches it as Modbus RTU framing over TCP, as it would reach a serial server on site.
Values move like a real outfall (a slow daily cycle plus noise) unless a test pins one with
`set_value`; `set_status` and `set_fault` let tests drive the flag and failure paths.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import random
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from ..contract import FLAGS

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


class _ServerThread:
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
        self._server = ModbusTcpServer(self._devices(), framer=self._framer, address=(self.host, self.port),
                                       trace_packet=self._trace_packet)
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


class AnalyzerSimulator(_ServerThread):
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



# --- analyzers from profiles: any firmware/profiles/*.json, several units on one bus ---------------

PROFILES_DIR = Path(__file__).resolve().parents[3] / "firmware" / "profiles"
FRAMINGS = {"rtu": FramerType.RTU, "tcp": FramerType.SOCKET}
UNIT_FAULTS = (None, "exception", "silent", "bad_crc", "wrong_unit")
_HJ212_FLAGS = "".join(FLAGS)


def load_profile(name: str, profiles_dir: Path | None = None) -> dict:
    """The same JSON file the firmware reads (the firmware's own tests validate every profile)."""
    path = Path(profiles_dir or PROFILES_DIR) / f"{name}.json"
    return json.loads(path.read_text())


def profile_names(profiles_dir: Path | None = None) -> list[str]:
    return sorted(p.stem for p in Path(profiles_dir or PROFILES_DIR).glob("*.json"))


def _encode_value(v: dict, value: float) -> list[int]:
    """Engineering value -> registers, inverting the profile's scale/offset/type/order."""
    raw = (value - v.get("offset", 0)) / v.get("scale", 1)
    typ = v["type"]
    if typ.startswith("float"):
        fmt = ">f" if typ == "float32" else ">d"
        data = struct.pack(fmt, raw)
    else:
        fmt = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I"}[typ]
        data = struct.pack(fmt, int(round(raw)))
    order = v.get("order", "ABCD")
    words = [(data[i] << 8) | data[i + 1] for i in range(0, len(data), 2)]
    if order in ("BADC", "DCBA"):
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    if order in ("CDAB", "DCBA"):
        words.reverse()
    return words


def status_register(status: dict, flag_or_raw: str | int) -> int:
    """The status register value that the profile maps to this HJ 212 flag (or a raw value as is)."""
    if isinstance(flag_or_raw, int):
        return flag_or_raw
    flag = flag_or_raw
    kind = status.get("kind", "code")
    if kind == "code":
        table = status.get("map", status.get("flags", {}))
        if flag == "N" and "0" not in table:
            return 0
        for k, f in table.items():
            if f == flag:
                return int(k)
    elif kind == "bits":
        if flag == "N":
            return 0
        for b in status["bits"]:
            if b["flag"] == flag:
                return 1 << b["bit"]
    else:  # ascii_flag: the letter itself, or a vendor letter mapped to it ("L" for T)
        if len(flag) <= 2 and (flag in _HJ212_FLAGS or flag in status.get("map", {})):
            text = flag.encode("ascii")
            return text[0] if len(text) == 1 else (text[0] << 8) | text[1]
    raise ValueError(f"profile status ({kind}) has no register value for {flag!r}")


class SimUnit:
    """One analyzer (unit id) serving a profile: values per param, a status, an optional fault."""

    def __init__(self, unit: int, profile_name: str, profile: dict):
        self.unit = unit
        self.profile_name = profile_name
        self.profile = profile
        self.values: dict[str, float] = {}
        for v in profile["values"]:
            lo, hi = v.get("range") or (0, 100)
            self.values[v["param"]] = round((lo + hi) / 4, 1) if hi > 0 else float(lo)
        self.status_raw = status_register(profile["status"], "N") if profile.get("status") else None
        self.fault: str | None = None
        self.requests = 0

    def image(self, fc: int) -> dict[int, int]:
        """address -> register for one function code's table, from the current values."""
        regs: dict[int, int] = {}
        st = self.profile.get("status")
        if st and st.get("fc", 3) == fc:  # first: a bit value may be one bit of the status word
            regs[st["addr"]] = self.status_raw
        for v in self.profile["values"]:
            if v.get("fc", 3) != fc:
                continue
            if v["type"] == "bit":  # one bit of a register (fc 3/4); the register's other bits are kept
                mask = 1 << v["bit"]
                old = regs.get(v["addr"], 0) & ~mask
                regs[v["addr"]] = old | (mask if self.values[v["param"]] else 0)
                continue
            for i, r in enumerate(_encode_value(v, self.values[v["param"]])):
                regs[v["addr"] + i] = r
        return regs


class BusSimulator(_ServerThread):
    """Several simulated analyzers (unit ids) on one port: an RS-485 line behind a serial server
    (framing "rtu": Modbus RTU over TCP) or an Ethernet analyzer/PLC (framing "tcp": Modbus TCP)."""

    def __init__(self, port: int = 0, framing: str = "rtu", host: str = "127.0.0.1"):
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {', '.join(FRAMINGS)}, not {framing!r}")
        super().__init__(host, port)
        self.framing = framing
        self._framer = FRAMINGS[framing]
        self.units: dict[int, SimUnit] = {}
        self._lock = threading.Lock()

    # --- what tests, the demo and `edgemon simulate` control -----------------------------------
    def add(self, unit: int, profile: str, profiles_dir: Path | None = None) -> SimUnit:
        if self._thread:
            raise RuntimeError("add units before start()")
        if unit in self.units:
            raise ValueError(f"unit {unit} is already on this bus")
        self.units[unit] = SimUnit(unit, profile, load_profile(profile, profiles_dir))
        return self.units[unit]

    def set_value(self, unit: int, param: str, value: float):
        u = self.units[unit]
        if param not in u.values:
            raise KeyError(f"profile {u.profile_name} has no value {param} (it has {', '.join(u.values)})")
        with self._lock:
            u.values[param] = float(value)

    def set_status(self, unit: int, flag_or_raw: str | int):
        """An HJ 212 flag letter (served as the register value the profile maps to it) or a raw value."""
        u = self.units[unit]
        raw = status_register(u.profile["status"], flag_or_raw)
        with self._lock:
            u.status_raw = raw

    def set_fault(self, unit: int, mode: str | None):
        """None, "exception" (code 04), "silent", "bad_crc" (last byte corrupted), "wrong_unit"."""
        if mode not in UNIT_FAULTS:
            raise ValueError(f"fault must be one of {UNIT_FAULTS}, not {mode!r}")
        if mode in ("bad_crc",) and self.framing != "rtu":
            raise ValueError("bad_crc needs RTU framing (Modbus TCP has no CRC)")
        with self._lock:
            self.units[unit].fault = mode

    # --- Modbus side -----------------------------------------------------------------------------
    async def _on_access(self, unit, function_code, start_address, address, count, registers, set_values):
        u = self.units[unit]
        with self._lock:
            u.requests += 1
            if u.fault == "exception":
                return ExcCodes.DEVICE_FAILURE
            fc = 3 if function_code in (6, 16) else function_code
            image = u.image(fc)
        for addr, val in image.items():
            i = addr - start_address
            if 0 <= i < len(registers):
                registers[i] = val
        return None

    def _unit_of(self, frame: bytes) -> int | None:
        i = 0 if self.framing == "rtu" else 6
        return frame[i] if len(frame) > i else None

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            return data
        u = self.units.get(self._unit_of(data))
        fault = u.fault if u else None
        if fault == "silent":
            return b""  # the analyzer hears the request and never answers
        if fault == "bad_crc":
            return data[:-1] + bytes([data[-1] ^ 0xFF])
        if fault == "wrong_unit":
            b = bytearray(data)
            i = 0 if self.framing == "rtu" else 6
            b[i] = b[i] % 247 + 1
            if self.framing == "rtu":  # a valid frame, just from the wrong address
                crc = crc16(bytes(b[:-2]))
                b[-2], b[-1] = crc & 0xFF, crc >> 8
            return bytes(b)
        return data

    def _device(self, u: SimUnit) -> SimDevice:
        blocks = []
        for fc in (1, 2, 3, 4):
            image = u.image(fc) if fc >= 3 else {}
            if not image:
                # pymodbus wants every table; a one-register table no profile reads
                blocks.append([SimData(0, values=[0], datatype=DataType.BITS if fc < 3 else DataType.REGISTERS)])
                continue
            lo, hi = min(image), max(image)
            regs = [image.get(a, 0) for a in range(lo, hi + 1)]
            blocks.append([SimData(lo, values=regs, datatype=DataType.REGISTERS)])
        return SimDevice(id=u.unit, simdata=tuple(blocks),
                         action=functools.partial(self._on_access, u.unit))

    def _devices(self):
        return [self._device(u) for u in self.units.values()]

    def _label(self) -> str:
        return "bus"

    def _describe(self) -> str:
        return f"bus {self.framing}: " + ", ".join(f"unit {u.unit} {u.profile_name}" for u in self.units.values())

    def start(self, timeout_s: float = 10.0) -> "BusSimulator":
        if not self.units:
            raise ValueError("add at least one unit before start()")
        return super().start(timeout_s)


def crc16(data: bytes) -> int:
    """Modbus RTU CRC-16 (reflected polynomial 0xA001, initial 0xFFFF), bit by bit."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc
