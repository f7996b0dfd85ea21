"""A GSM/4G modem on a serial port, driven with AT commands in PDU mode (pyserial). The edge:
every call may block up to its timeout; one thread owns a Modem at a time."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import serial

from .pdu import Pdu

log = logging.getLogger(__name__)

_FINAL_OK = "OK"
_ERROR_RE = re.compile(r"^\+(CMS|CME) ERROR:\s*(.+)$")
_CMGS_RE = re.compile(r"^\+CMGS:\s*(\d+)")
_CSQ_RE = re.compile(r"^\+CSQ:\s*(\d+),(\d+)")
_CREG_RE = re.compile(r"^\+CREG:\s*(?:\d+,)?(\d+)")

# +CMS ERROR codes that will not go away by sending again (23.040 / 27.005): the message or
# the number is wrong. Everything else (network, memory, unknown 500, timeouts) is retried.
PERMANENT_CMS = frozenset({1, 8, 10, 21, 27, 28, 29, 30, 96, 97, 98, 99, 111, 127, 128, 129, 130,
                           143, 144, 145, 159, 160, 161, 175, 176, 304, 305, 325})

CREG_WORDS = {0: "not registered", 1: "home", 2: "searching", 3: "denied", 4: "unknown", 5: "roaming"}


class ModemError(RuntimeError):
    """The modem answered with an error. `code` is the +CMS/+CME number when it gave one."""

    def __init__(self, message: str, code: int | None = None, permanent: bool = False):
        super().__init__(message)
        self.code = code
        self.permanent = permanent


class ModemTimeout(ModemError):
    """No (complete) answer in time."""


class ModemGone(ModemError):
    """The port is gone (modem unplugged, USB reset) or cannot be opened."""


@dataclass(frozen=True, slots=True)
class Health:
    csq: int | None  # 0-31, 99 unknown
    rssi_dbm: int | None  # -113 + 2*csq
    creg: int | None  # 1 home, 5 roaming: registered
    registered: bool


class Modem:
    def __init__(self, port: str, baud: int = 115200, *, command_timeout_s: float = 5.0,
                 send_timeout_s: float = 60.0):
        self.port = port
        self.baud = baud
        self.command_timeout_s = command_timeout_s
        self.send_timeout_s = send_timeout_s
        self._ser: serial.Serial | None = None
        self._buf = b""

    # ------------------------------------------------------------------ port

    @property
    def is_open(self) -> bool:
        return self._ser is not None

    def open(self) -> None:
        """Open the port and put the modem in the state we rely on: no echo, numeric errors, PDU mode."""
        self.close()
        try:
            self._ser = serial.Serial(self.port, self.baud, timeout=0.05, write_timeout=5)
        except (serial.SerialException, OSError) as exc:
            self._ser = None
            raise ModemGone(f"cannot open modem port {self.port}: {exc}") from exc
        self._buf = b""
        # The first AT may meet a half-typed line or autobaud: a few tries to get in step.
        for attempt in range(3):
            try:
                self.command("AT", timeout_s=1.0)
                break
            except ModemTimeout:
                if attempt == 2:
                    self.close()
                    raise
        for cmd in ("ATE0", "AT+CMEE=1", "AT+CMGF=0"):
            self.command(cmd)

    def close(self) -> None:
        if self._ser is not None:
            try:
                self._ser.close()
            except (serial.SerialException, OSError):
                pass
        self._ser = None

    def _write(self, data: bytes) -> None:
        if self._ser is None:
            raise ModemGone(f"modem port {self.port} is not open")
        try:
            self._ser.write(data)
            self._ser.flush()
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise ModemGone(f"modem port {self.port}: {exc}") from exc

    def _fill(self, deadline: float) -> None:
        """Append what the modem sent (waiting briefly); ModemTimeout after the deadline."""
        if time.monotonic() >= deadline:
            raise ModemTimeout(f"modem on {self.port} did not answer in time")
        if self._ser is None:
            raise ModemGone(f"modem port {self.port} is not open")
        try:
            chunk = self._ser.read(self._ser.in_waiting or 1)
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise ModemGone(f"modem port {self.port}: {exc}") from exc
        self._buf += chunk

    def _read_line(self, deadline: float) -> str:
        while True:
            at = self._buf.find(b"\n")
            if at < 0:
                self._fill(deadline)
                continue
            raw, self._buf = self._buf[:at], self._buf[at + 1 :]
            text = raw.decode("ascii", errors="replace").strip()
            if text:
                return text

    # ------------------------------------------------------------------ commands

    def command(self, cmd: str, timeout_s: float | None = None) -> list[str]:
        """Send one command; the information lines before OK. Raises ModemError on ERROR."""
        self._buf = b""
        if self._ser is not None:
            try:
                self._ser.reset_input_buffer()
            except (serial.SerialException, OSError) as exc:
                self.close()
                raise ModemGone(f"modem port {self.port}: {exc}") from exc
        self._write(cmd.encode("ascii") + b"\r")
        return self._collect(cmd, time.monotonic() + (timeout_s or self.command_timeout_s))

    def _collect(self, cmd: str, deadline: float) -> list[str]:
        lines: list[str] = []
        while True:
            line = self._read_line(deadline)
            if line == cmd:  # echo, before ATE0 took effect
                continue
            if line == _FINAL_OK:
                return lines
            if line == "ERROR":
                raise ModemError(f"{cmd}: ERROR")
            m = _ERROR_RE.match(line)
            if m:
                kind, detail = m.groups()
                code = int(detail) if detail.isdigit() else None
                permanent = kind == "CMS" and code in PERMANENT_CMS
                raise ModemError(f"{cmd}: +{kind} ERROR: {detail}", code=code, permanent=permanent)
            lines.append(line)

    def send_pdu(self, pdu: Pdu) -> int:
        """Send one SMS part; the message reference the network gave it."""
        if self._ser is None:
            raise ModemGone(f"modem port {self.port} is not open")
        cmd = f"AT+CMGS={pdu.tpdu_len}"
        self._buf = b""
        self._write(cmd.encode("ascii") + b"\r")
        deadline = time.monotonic() + self.command_timeout_s

        self._wait_prompt(cmd, deadline)
        self._write(pdu.hex.encode("ascii") + b"\x1a")
        lines = self._collect(cmd, time.monotonic() + self.send_timeout_s)
        for line in lines:
            m = _CMGS_RE.match(line)
            if m:
                return int(m.group(1))
        raise ModemError(f"{cmd}: OK without +CMGS reference")

    def _wait_prompt(self, cmd: str, deadline: float) -> None:
        while True:
            at = self._buf.find(b">")
            if at >= 0:
                self._buf = self._buf[at + 1 :]
                return
            while b"\n" in self._buf:
                line, _, rest = self._buf.partition(b"\n")
                text = line.decode("ascii", errors="replace").strip()
                if text == "ERROR" or _ERROR_RE.match(text):
                    self._collect(cmd, deadline)  # the error line is still buffered: raises with its code
                self._buf = rest
            self._fill(deadline)

    def health(self) -> Health:
        csq = creg = None
        for line in self.command("AT+CSQ"):
            m = _CSQ_RE.match(line)
            if m:
                csq = int(m.group(1))
        for line in self.command("AT+CREG?"):
            m = _CREG_RE.match(line)
            if m:
                creg = int(m.group(1))
        rssi = None if csq is None or csq == 99 else -113 + 2 * csq
        return Health(csq=csq, rssi_dbm=rssi, creg=creg, registered=creg in (1, 5))
