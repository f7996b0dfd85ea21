"""Simulated analyzers from profiles: any firmware/profiles/*.json served by one simulated unit, several
units (unit ids) on one bus, as an RS-485 line behind a serial server (Modbus RTU over TCP) or an
Ethernet analyzer (Modbus TCP). Tests, the demo and `edgemon simulate` set values, status flags and
faults (exception, silent, bad CRC, wrong unit) per unit.
"""

from __future__ import annotations

import functools
import json
import struct
import threading
from pathlib import Path

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

from ..contract import FLAGS
from .simulator import ServerThread, crc16

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


class BusSimulator(ServerThread):
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
