"""A GSM modem simulated on a pseudo-terminal, for tests, the bench and the demo: a thread answers
AT commands the way a real modem does (echo until ATE0, PDU mode, the `> ` prompt of AT+CMGS), and
keeps every PDU it was given. Faults on demand: +CMS ERROR codes, silence, unplugging the port.

The port is reached through a symlink (`path`) that stays the same across unplug/replug, like a
udev name for a USB modem; the pty behind it changes."""

from __future__ import annotations

import os
import select
import tempfile
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path

from ..sms.pdu import decode_submit


@dataclass(frozen=True, slots=True)
class Received:
    pdu: str
    length: int  # the AT+CMGS=<length> it came with
    ref: int  # the +CMGS reference answered
    at: float  # time.time() when the Ctrl-Z arrived
    at_perf: float  # time.perf_counter() then (for latency figures)


class ModemSimulator:
    def __init__(self, link_dir: Path | None = None, *, csq: int = 23, creg: int = 1):
        self._dir = Path(link_dir) if link_dir else Path(tempfile.mkdtemp(prefix="modemsim-"))
        self.path = str(self._dir / "ttyGSM0")
        self.csq = csq
        self.creg = creg
        self.received: list[Received] = []
        self.commands: list[str] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._errors: list[str] = []  # answers to use instead of +CMGS for the next sends
        self._silent = 0  # next n commands get no answer at all
        self._ref = 0
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._plugged = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ModemSimulator:
        self._plug()
        return self

    def stop(self) -> None:
        self._unplug()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> ModemSimulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo or CR/LF translation by the line discipline: the modem does its own
        self._master, self._slave = master, slave
        tmp = self.path + ".new"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.path)
        self._stop.clear()
        self._plugged = True
        self._thread = threading.Thread(target=self._run, args=(master,), name="modemsim", daemon=True)
        self._thread.start()

    def _unplug(self) -> None:
        if not self._plugged:
            return
        self._plugged = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None

    def unplug(self) -> None:
        """The USB modem is pulled out: the port errors for whoever has it open, and the name is gone."""
        self._unplug()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def replug(self) -> None:
        self._unplug()
        self._plug()

    # ------------------------------------------------------------------ faults

    def fail_next(self, n: int, code: int | str = 500) -> None:
        """The next n sends are answered `+CMS ERROR: <code>` (or `ERROR` when code is "ERROR")."""
        answer = "ERROR" if code == "ERROR" else f"+CMS ERROR: {code}"
        with self._lock:
            self._errors.extend([answer] * n)

    def silent_next(self, n: int) -> None:
        """The next n commands (or PDUs) get no answer: the driver must time out."""
        with self._lock:
            self._silent += n

    # ------------------------------------------------------------------ what was sent

    def texts(self) -> list[tuple[str, str]]:
        """(number, text) of each complete message, concatenated parts joined."""
        out: list[tuple[str, str]] = []
        pending: dict[tuple[str, int, int], dict[int, str]] = {}
        with self._lock:
            pdus = [r.pdu for r in self.received]
        for pdu in pdus:
            d = decode_submit(pdu)
            if d["concat"] is None:
                out.append((d["number"], d["text"]))
                continue
            ref, total, seq = d["concat"]
            key = (d["number"], ref, total)
            parts = pending.setdefault(key, {})
            parts[seq] = d["text"]
            if len(parts) == total:
                out.append((d["number"], "".join(parts[i] for i in range(1, total + 1))))
                del pending[key]
        return out

    def wait_for(self, n_pdus: int, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.received) < n_pdus:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # ------------------------------------------------------------------ the modem

    def _run(self, fd: int) -> None:
        echo = True
        buf = b""
        pdu_len: int | None = None  # set while taking a PDU after the prompt
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.05)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:
                return
            if not data:
                return
            buf += data
            while True:
                if pdu_len is not None:
                    end = min((i for i in (buf.find(b"\x1a"), buf.find(b"\x1b")) if i >= 0), default=-1)
                    if end < 0:
                        break
                    body, term, buf = buf[:end], buf[end : end + 1], buf[end + 1 :]
                    length, pdu_len = pdu_len, None
                    if term == b"\x1b":  # ESC cancels the send
                        self._answer(fd, "OK")
                        continue
                    self._take_pdu(fd, body.decode("ascii", errors="replace").strip(), length)
                    continue
                at = buf.find(b"\r")
                if at < 0:
                    break
                line, buf = buf[:at], buf[at + 1 :].lstrip(b"\n")
                cmd = line.decode("ascii", errors="replace").strip()
                if not cmd:
                    continue
                with self._lock:
                    self.commands.append(cmd)
                    if self._silent:
                        self._silent -= 1
                        continue
                if echo:
                    self._write(fd, line + b"\r")
                upper = cmd.upper()
                if upper in ("AT", "AT+CMEE=1", "AT+CMGF=0", "ATZ"):
                    self._answer(fd, "OK")
                elif upper == "ATE0":
                    echo = False
                    self._answer(fd, "OK")
                elif upper == "ATE1":
                    echo = True
                    self._answer(fd, "OK")
                elif upper == "AT+CSQ":
                    self._answer(fd, f"+CSQ: {self.csq},99", "OK")
                elif upper == "AT+CREG?":
                    self._answer(fd, f"+CREG: 0,{self.creg}", "OK")
                elif upper.startswith("AT+CMGS="):
                    try:
                        pdu_len = int(upper.split("=", 1)[1])
                    except ValueError:
                        self._answer(fd, "+CMS ERROR: 304")
                        continue
                    self._write(fd, b"\r\n> ")
                else:
                    self._answer(fd, "ERROR")

    def _take_pdu(self, fd: int, pdu: str, length: int) -> None:
        at, at_perf = time.time(), time.perf_counter()
        with self._cond:
            if self._silent:
                self._silent -= 1
                return
            if self._errors:
                self._answer(fd, self._errors.pop(0))
                return
            try:
                octets = bytes.fromhex(pdu)
                ok = len(octets) - 1 - octets[0] == length
            except (ValueError, IndexError):
                ok = False
            if not ok:  # a real modem refuses a PDU whose length does not match
                self._answer(fd, "+CMS ERROR: 304")
                return
            self._ref = (self._ref + 1) % 256
            self.received.append(Received(pdu=pdu, length=length, ref=self._ref, at=at, at_perf=at_perf))
            self._cond.notify_all()
            ref = self._ref
        self._answer(fd, f"+CMGS: {ref}", "OK")

    def _answer(self, fd: int, *lines: str) -> None:
        self._write(fd, b"".join(b"\r\n" + ln.encode("ascii") + b"\r\n" for ln in lines))

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        try:
            os.write(fd, data)
        except OSError:
            pass
