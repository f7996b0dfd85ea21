"""The firmware bench's rig: how a firmware image is run (ROMFS executed in place, or .mpy loaded
into the heap), the bench node (4 analyzers x 5 float32 values on one RTU-over-TCP bus, plain or
written with profiles), its Modbus slave and broker on loopback, and one heap run (1,000 cycles at
one -X heapsize: ok, peak and live heap, the modules it holds). Used by bench/firmware.py and by
hil_tests (the virtual board)."""

from __future__ import annotations

import getpass
import json
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..dev.nodeproc import FIRMWARE_DIR, build_romfs, micropython_command
from ..dev.simulator import crc16 as _crc16

# How the firmware is stored on the device: "romfs" = .mpy in a memory-mapped romfs partition,
# bytecode executed in place (MicroPython >= 1.25; edgemon.dev.fwrom emulates the mapping); "mpy" = .mpy
# files on LittleFS, loaded into the heap at import.
MODE = "romfs"
_ENV = {"PATH": "/usr/bin:/bin"}


def fw_argv(mode: str, mpy: Path, heap: str, *args: str) -> tuple[list[str], dict]:
    """argv and environment that run the firmware (or a probe script) stored the `mode` way."""
    if mode == "romfs":
        return ([sys.executable, "-m", "edgemon.dev.fwrom", str(build_romfs(mpy.parent)), "-X", f"heapsize={heap}",
                 *args], dict(_ENV))
    return [micropython_command(), "-X", f"heapsize={heap}", *args], dict(_ENV, MICROPYPATH=str(mpy))


def main_args(mode: str) -> list[str]:
    return [str(FIRMWARE_DIR / "romboot.py")] if mode == "romfs" else ["-m", "main"]

PARAMS = ["w01018", "w21003", "w21011", "w21001", "w01001", "w00000", "w21017", "a21026", "a21002", "a34013",
          "a24088", "w01019", "w01020", "w21004", "w21005", "w21006", "w21007", "w21008", "w21009", "w21010"]
class BenchSlave:
    """Minimal Modbus RTU-over-TCP slave: FC03 from 10 registers (5 float32), any unit."""

    def __init__(self):
        self.regs = []
        for i in range(5):
            self.regs += list(struct.unpack(">HH", struct.pack(">f", 10.0 + i * 1.25)))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        while True:
            try:
                d = c.recv(256)
            except OSError:
                return
            if not d:
                return
            buf += d
            while len(buf) >= 8:
                req, buf = buf[:8], buf[8:]
                unit, fc, addr, n = struct.unpack(">BBHH", req[:6])
                body = bytes([unit, fc, 2 * n]) + b"".join(struct.pack(">H", r) for r in self.regs[addr:addr + n])
                crc = _crc16(body)
                c.sendall(body + bytes([crc & 0xFF, crc >> 8]))

    def stop(self):
        self.sock.close()


def start_mosquitto(work: Path):
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def tls_files(work: Path) -> dict:
    """A CA, the broker's certificate (127.0.0.1, localhost) and one node certificate made by
    edgemon.pki, and the node's copies as DER (what mbedTLS on the MicroPython unix port reads; the
    firmware also takes the PEM files as they are). Returns the paths: ca, server_cert, server_key
    (PEM, for Mosquitto), node_ca, node_cert, node_key (DER, for the node's mqtt.tls)."""
    from ..pki import CertificateAuthority
    from ..nodetls import write_node_tls

    d = work / "pki"
    ca = CertificateAuthority(d / "ca")
    if not ca.cert_path.exists():
        ca.init()
    srv = ca.server(d / "ca", ["127.0.0.1", "localhost"])
    node = ca.node(d / "issued", "bench", "fw")
    out = {"ca": ca.cert_path, "server_cert": srv.cert, "server_key": srv.key}
    for k, v in write_node_tls(d / "node", ca.cert_path, node.cert, node.key).items():
        out["node_" + k] = Path(v)
    return out


def start_mosquitto_tls(work: Path, files: dict):
    """A Mosquitto with one TLS listener only (TLS 1.2 and up, anonymous), the broker certificate
    from tls_files(): (process, port)."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    conf = work / "mosquitto-tls.conf"
    # (stay the user we are: as root Mosquitto drops to `mosquitto`, which cannot read the 0600 key)
    conf.write_text(f"user {getpass.getuser()}\n"
                    f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n"
                    f"cafile {files['ca']}\ncertfile {files['server_cert']}\nkeyfile {files['server_key']}\n"
                    "tls_version tlsv1.2\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto (TLS) did not start")


def with_tls(cfg: Path, port: int, files: dict) -> Path:
    """The bench node's config with its MQTT link over TLS (CA pinned, no client certificate) to port."""
    d = json.loads(cfg.read_text())
    d["mqtt"]["port"] = port
    d["mqtt"]["tls"] = {"ca": str(files["node_ca"])}
    p = cfg.with_name("node-tls.json")
    p.write_text(json.dumps(d))
    return p


def bench_node_config(work: Path, slave_port: int, mqtt_port: int, poll_s: float) -> Path:
    analyzers = []
    for a in range(4):
        analyzers.append({
            "name": f"an{a}", "transport": {"kind": "rtu_tcp", "host": "127.0.0.1", "port": slave_port},
            "unit": a + 1, "timeout_ms": 1000,
            "values": [{"param": PARAMS[a * 5 + i], "fc": 3, "addr": 2 * i, "type": "float32"} for i in range(5)]})
    cfg = {"site": "bench", "node": "fw", "poll_s": poll_s, "state_dir": str(work / "state"),
           "key": "5f" * 32, "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "timeout_ms": 2000},
           "analyzers": analyzers}
    p = work / "node.json"
    p.write_text(json.dumps(cfg))
    return p


def profile_config(cfg: Path) -> Path:
    """The bench node (4 analyzers, 20 params on one bus) with its analyzers given as profiles and an
    override, as field configs are written: cems_flue_gas 7 + energy_meter_3ph 5 + logger_multi 6
    (its COD switched off) + cod_generic 1 = 19 params."""
    d = json.loads(cfg.read_text())
    t = d["analyzers"][0]["transport"]
    d["analyzers"] = [
        {"name": "cems", "transport": t, "unit": 1, "timeout_ms": 1000, "profile": "cems_flue_gas"},
        {"name": "em", "transport": t, "unit": 2, "timeout_ms": 1000, "profile": "energy_meter_3ph"},
        {"name": "logger", "transport": t, "unit": 3, "timeout_ms": 1000, "profile": "logger_multi",
         "override": {"w01018": {"off": True}}},
        {"name": "cod", "transport": t, "unit": 4, "timeout_ms": 1000, "profile": "cod_generic"}]
    p = cfg.with_name("node-profiles.json")
    p.write_text(json.dumps(d))
    return p


def check_boot(mpy: Path, cfg: Path, mode: str = MODE) -> None:
    """The boot a board makes first with a new config: checked, kept beside it (<cfg>.checked), reset.
    Every figure is then of the boots that follow, the ones a board runs on (no validator loaded)."""
    cfg.with_name(cfg.name + ".checked").unlink(missing_ok=True)  # (one kept for another config of this name)
    argv, env = fw_argv(mode, mpy, "256k", *main_args(mode), str(cfg), "--lean")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=str(cfg.parent), env=env)
    if r.returncode != 75:
        raise RuntimeError(f"the check boot of {cfg} ended with {r.returncode}: {(r.stdout + r.stderr)[-400:]}")


def run_fw(mpy: Path, cfg: Path, heap: str, cycles: int, timeout: float = 900, mode: str = MODE):
    check_boot(mpy, cfg, mode)  # (0.3 s: the config file may have been rewritten since)
    t0 = time.perf_counter()
    argv, env = fw_argv(mode, mpy, heap, *main_args(mode), str(cfg), "--cycles", str(cycles))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=str(cfg.parent), env=env)
    return r, time.perf_counter() - t0


def heap_run(mpy: Path, cfg: Path, work: Path, heap: str, cycles: int, mode: str = MODE) -> dict:
    shutil.rmtree(work / "state", ignore_errors=True)
    r, wall = run_fw(mpy, cfg, heap, cycles, mode=mode)
    out = r.stdout + r.stderr
    peaks = [int(x) for x in re.findall(r"heap_peak=(\d+)", r.stdout)]
    live = [int(x) for x in re.findall(r" heap_live=(\d+)", r.stdout)]
    started = re.search(r"^started: heap_live=(\d+) modules=(\S+)$", r.stdout, re.M)
    ok = r.returncode == 0 and "MemoryError" not in out and len(peaks) == cycles
    return {"ok": ok, "peak": max(peaks) if peaks else None, "live": max(live) if live else None,
            "start_live": int(started.group(1)) if started else None,
            "modules": started.group(2).split(",") if started else [], "wall_s": wall,
            "memory_errors": out.count("MemoryError"), "cycles": len(peaks),
            # the link itself: connect/publish failures, and whether the last cycle had it up
            "mqtt_errors": len(re.findall(r"^error mqtt", r.stdout, re.M)),
            "mqtt_up_at_end": r.stdout.rstrip().endswith("mqtt=up"),
            "tail": "" if ok else out[-600:]}
