"""A board on a USB cable, driven with mpremote (MicroPython's own tool): write the romfs partition,
copy a file, run code, reset. Each step is one mpremote run; its failures become one line with the
fix (explain). The virtual board (edgemon.dev.virtualboard.VirtualBoardLink) has the same methods,
so `edgemon node deploy` does the same steps against either."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .deploy import DeployError

_EXPLAIN = (
    ("failed to access", "cannot open the port: is the board plugged in, is the port right (ls /dev/ttyUSB* "
                         "/dev/ttyACM*), and may you use it (group dialout)?"),
    ("no device found", "no board found: plug it in and give --port"),
    ("could not enter raw repl", "the board does not answer at its REPL: press its EN/RST button, or flash "
                                 "MicroPython first (edgemon node flash)"),
    ("ROMFS is not enabled", "this MicroPython build has no romfs partition: flash a MicroPython >= 1.25 image "
                             "with ROMFS (edgemon node flash)"),
    ("too big for the target partition", "the image is larger than the board's romfs partition: a firmware "
                                         "with a larger partition table is needed"),
    ("Device or resource busy", "the port is in use by another program (a serial monitor?): close it"),
)


def explain(output: str) -> str:
    for needle, fix in _EXPLAIN:
        if needle.lower() in output.lower():
            return fix
    last = [ln for ln in output.strip().splitlines() if ln.strip()]
    return f"mpremote failed: {last[-1] if last else 'no output'}"


def mpremote_command() -> str:
    beside = Path(sys.executable).parent / "mpremote"
    return str(beside) if beside.exists() else "mpremote"


class MpremoteLink:
    """One board on `port` (e.g. /dev/ttyUSB0). Board paths are the board's own (/node.json)."""

    root = ""  # files outside /rom are at the filesystem's root

    def __init__(self, port: str, timeout_s: float = 120.0):
        self.port = port
        self.timeout_s = timeout_s

    def argv(self, *args: str) -> list[str]:
        return [mpremote_command(), "connect", self.port, *args]

    def _run(self, *args: str, what: str) -> str:
        if not self.port.startswith(("rfc2217:", "socket:")) and not os.path.exists(self.port):
            raise DeployError(f"{self.port}: no such port: is the board plugged in? (ls /dev/ttyUSB* /dev/ttyACM*)")
        try:
            r = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise DeployError(f"{self.port}: {what}: no answer within {self.timeout_s:g} s: press the board's "
                              f"EN/RST button and run it again") from None
        if r.returncode:
            raise DeployError(f"{self.port}: {what}: {explain(r.stdout + r.stderr)}")
        return r.stdout

    def halt(self):
        """Stop the running node (mpremote's Ctrl-C into the raw REPL), so files can be written."""
        self._run("exec", "pass", what="stopping the node")

    def write_romfs(self, image: Path):
        self._run("romfs", "deploy", str(image), what="writing the romfs partition")

    def put(self, data: bytes, board_path: str, local: Path):
        """Copy `local` (whose bytes are `data`) to board_path."""
        self._run("fs", "cp", str(local), ":" + board_path, what=f"copying {board_path}")

    def run(self, code: str) -> str:
        return self._run("exec", code, what="running the check")

    def reset(self):
        self._run("reset", what="resetting the board")
