"""The virtual board: a folder that stands for an ESP32's flash, and a runner that stands for its
power and reset button, so `edgemon node deploy --virtual DIR` does against it what it does over
USB (boardlink.MpremoteLink): write the romfs partition, copy /node.json and /main.py, hash every
file with MicroPython's own hashlib, reset, and the node comes up from what was written.

    python -m edgemon.dev.virtualboard DIR [--heap 64k]     # power the board (until SIGTERM/Ctrl-C)

The folder:  romfs.img and romfs-1.img (the two romfs partitions, A/B), node.json, main.py, slot,
state/ (the node's flash state,
node.json's state_dir), console.log (what the board prints), .board.pid (the runner). The runner
starts the firmware (the MicroPython unix port, the ROMFS image mapped outside its heap, as
edgemon.dev.fwrom; cwd DIR) when the folder holds an image and a config and a reset is asked for
(the marker .reset), stops it on .halt (mpremote's Ctrl-C), restarts it when the node resets itself
(exit 75), and leaves it stopped after any other exit, as boardmain leaves a board at its REPL.
Not a board: the romfs partition is a file of any size, the node runs firmware/main.py's PC path
(hw_unix), and WiFi is not emulated (hil_tests/board_emulation does the board's own path)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..deploy import DeployError
from .nodeproc import FIRMWARE_DIR, RESET_EXIT
from .procutil import child_kwargs

ROMFS = "romfs.img"
SLOT1 = "romfs-1.img"  # the second romfs partition (A/B updates: firmware/fwupdate.py writes it)
PIDFILE = ".board.pid"


def _romboot_argv(image: Path | str, heap: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "edgemon.dev.fwrom", str(image), "-X", f"heapsize={heap}",
            str(FIRMWARE_DIR / "romboot.py"), *args]


class VirtualBoardLink:
    """boardlink.MpremoteLink's methods on a virtual board's folder."""

    def __init__(self, folder: Path, timeout_s: float = 10.0):
        self.folder = Path(folder).resolve()
        self.root = str(self.folder)  # the board's "/" (deploy.hash_script)
        self.timeout_s = timeout_s
        self.port = f"virtual board {self.folder}"

    def _powered(self):
        try:
            pid = int((self.folder / PIDFILE).read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            raise DeployError(f"{self.port}: not powered: start it with `python -m edgemon.dev.virtualboard "
                              f"{self.folder}`") from None

    def _ask(self, marker: str, what: str):
        self._powered()
        m = self.folder / marker
        m.write_text("")
        deadline = time.monotonic() + self.timeout_s
        while m.exists():
            if time.monotonic() > deadline:
                raise DeployError(f"{self.port}: {what}: the runner did not answer within {self.timeout_s:g} s")
            time.sleep(0.05)

    def halt(self):
        self._ask(".halt", "stopping the node")

    def write_romfs(self, image: Path):
        self._powered()
        tmp = self.folder / (ROMFS + ".tmp")
        tmp.write_bytes(Path(image).read_bytes())
        tmp.replace(self.folder / ROMFS)

    def put(self, data: bytes, board_path: str, local: Path):
        self._powered()
        dest = self.folder / board_path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        tmp.replace(dest)

    def run(self, code: str) -> str:
        """Run MicroPython code on the board (its romfs mounted at /rom), as `mpremote exec` does."""
        self._powered()
        image = self.folder / ROMFS
        if not image.exists():
            raise DeployError(f"{self.port}: the romfs partition is empty (nothing deployed)")
        exec_dir = self.folder / ".exec"
        exec_dir.mkdir(exist_ok=True)
        (exec_dir / "edgemon_exec.py").write_text(code)
        env = dict(os.environ, EDGEMON_MAIN="edgemon_exec", MICROPYPATH=str(exec_dir))
        r = subprocess.run(_romboot_argv(image, "64k"), cwd=self.folder, env=env, capture_output=True, text=True,
                           timeout=60)
        if r.returncode:
            raise DeployError(f"{self.port}: running the check: {(r.stdout + r.stderr).strip()[-300:]}")
        return r.stdout

    def reset(self):
        self._ask(".reset", "resetting the board")


class VirtualBoard:
    """The runner (one per folder): powers the board until stop()."""

    def __init__(self, folder: Path, heap: str = "64k"):
        self.folder = Path(folder).resolve()
        self.heap = heap
        self.proc: subprocess.Popen | None = None
        self.console = None
        self.stopping = False
        self.boots = 0

    def _start_firmware(self):
        image, cfg = self.folder / ROMFS, self.folder / "node.json"
        if not (image.exists() and cfg.exists()):
            self._log("(board) reset: nothing to run (no romfs image or no node.json): at the REPL")
            return
        self.boots += 1
        self._log(f"(board) boot {self.boots}")
        slots = [image] + [p for p in [self.folder / SLOT1] if p.exists()]  # the romfs partitions
        self.proc = subprocess.Popen(_romboot_argv(",".join(map(str, slots)), self.heap, str(cfg), "--lean"),
                                     cwd=self.folder, stdout=self.console, stderr=subprocess.STDOUT, **child_kwargs())

    def _stop_firmware(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def _log(self, line: str):
        self.console.write((line + "\n").encode())
        self.console.flush()

    def run(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.console = open(self.folder / "console.log", "ab", buffering=0)
        (self.folder / PIDFILE).write_text(str(os.getpid()))
        self._log(f"(board) powered, heap {self.heap}")
        try:
            while not self.stopping:
                for marker in (".halt", ".reset"):
                    m = self.folder / marker
                    if m.exists():
                        self._stop_firmware()
                        self._log("(board) " + ("halted at the REPL" if marker == ".halt" else "reset"))
                        if marker == ".reset":
                            self._start_firmware()
                        m.unlink()
                if self.proc and self.proc.poll() is not None:
                    code = self.proc.returncode
                    self.proc = None
                    if code == RESET_EXIT:
                        self._log("(board) the node reset itself")
                        self._start_firmware()
                    else:
                        self._log(f"(board) the node stopped (exit {code}): at the REPL")
                time.sleep(0.05)
        finally:
            self._stop_firmware()
            (self.folder / PIDFILE).unlink(missing_ok=True)
            self._log("(board) power off")
            self.console.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgemon.dev.virtualboard",
                                 description="Power a virtual board (a folder) for `edgemon node deploy --virtual`.",
                                 epilog="example: python -m edgemon.dev.virtualboard run/board1 --heap 64k")
    ap.add_argument("folder", type=Path)
    ap.add_argument("--heap", default="64k", help="the node's MicroPython heap (default 64k, an ESP32's)")
    args = ap.parse_args(argv)
    board = VirtualBoard(args.folder, args.heap)

    def _stop(*_):
        board.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    board.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
