"""`make bench` part: the firmware's figures. The smallest `-X heapsize` (from 52k up; the goal is 64k) in which the real
firmware (.mpy built by mpy-cross in a ROMFS image executed in place, MicroPython unix port) polls
4 analyzers x 5 values for 1,000 cycles without a MemoryError (and the same for .mpy files loaded
into the heap, as from LittleFS; and with the MQTT link over TLS, CA pinned, to a TLS Mosquitto), its peak and live heap and the code's share of it; flash bytes per
record; how long a day's backlog (8,640 10-s or 1,440 1-min records) takes to replay into a real
Mosquitto; Modbus time beside wire time."""

from __future__ import annotations

import json
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..dev.nodeproc import FIRMWARE_DIR, build_mpy
from .fwcmd import command_run
from .fwrig import (MODE, PARAMS, BenchSlave, bench_node_config, check_boot, fw_argv, heap_run, main_args,
                    profile_config, run_fw, start_mosquitto, start_mosquitto_tls, tls_files, with_tls)

_PROBE = """
import gc, os, sys
if os.getenv("EDGEMON_ROMFS"):  # mount the image as romboot.py does
    import uctypes, vfs
    a, n = [int(x) for x in os.getenv("EDGEMON_ROMFS").split(":")]
    vfs.mount(vfs.VfsRom(uctypes.bytearray_at(a, n)), "/rom")
    sys.path.insert(0, "/rom")
gc.collect()
base = gc.mem_alloc()
for m in sys.argv[1].split(","):
    __import__(m)
gc.collect()
print("code", gc.mem_alloc() - base)
"""


# One Modbus transaction (FC03, 10 registers = 5 float32) through the firmware's own master and TCP
# transport, against the bench slave on loopback, beside the same request/response bytes through a
# bare socket in the same interpreter: the difference is the firmware's CPU time per transaction
# (framing, CRC, checks), which a real bus adds to its wire time.
_TXN_PROBE = """
import os, sys, time, socket, select
if os.getenv("EDGEMON_ROMFS"):
    import uctypes, vfs
    vfs.mount(vfs.VfsRom(uctypes.bytearray_at(*[int(x) for x in os.getenv("EDGEMON_ROMFS").split(":")])), "/rom")
    sys.path.insert(0, "/rom")
from modbus_master import ModbusMaster
from transport_tcp import TcpTransport
from modbus_rtu import build_request
port, n = int(sys.argv[1]), int(sys.argv[2])
m = ModbusMaster(TcpTransport("127.0.0.1", port, "rtu"))
m.read_registers(1, 3, 0, 10, 1000)
t0 = time.ticks_us()
for _ in range(n):
    m.read_registers(1, 3, 0, 10, 1000)
fw = time.ticks_diff(time.ticks_us(), t0) / n
s = socket.socket()
s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
p = select.poll()
p.register(s, select.POLLIN)
req = build_request(1, 3, 0, 10)
t0 = time.ticks_us()
for _ in range(n):
    s.send(req)
    got = 0
    while got < 25:
        p.poll(1000)
        got += len(s.recv(25 - got))
raw = time.ticks_diff(time.ticks_us(), t0) / n
print("txn_us %.1f raw_us %.1f" % (fw, raw))
"""


# The TLS context and one connection's share of the GC heap, and a handshake in a heap too small
# for mbedTLS's record buffers (16 KB in + 4 KB out on this port): what lives outside the GC heap.
_TLS_PROBE = """
import gc, socket, sys, tls
port, ca = int(sys.argv[1]), open(sys.argv[2], "rb").read()
gc.collect()
a0 = gc.mem_alloc()
c = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
c.verify_mode = tls.CERT_REQUIRED
c.load_verify_locations(ca)
ca = None
gc.collect()
a1 = gc.mem_alloc()
s = socket.socket()
s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
t = c.wrap_socket(s, server_hostname="127.0.0.1")
gc.collect()
print("tls_ctx %d tls_conn %d heap %d" % (a1 - a0, gc.mem_alloc() - a1, gc.mem_alloc() + gc.mem_free()))
t.close()
"""


def _tls_probe(work: Path, port: int, ca: Path, heap: str = "16k") -> dict | None:
    probe = work / "probe_tls.py"
    probe.write_text(_TLS_PROBE)
    argv, env = fw_argv("mpy", work, heap, str(probe), str(port), str(ca))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    m = re.search(r"^tls_ctx (\d+) tls_conn (\d+) heap (\d+)$", r.stdout, re.M)
    return {"ctx": int(m.group(1)), "conn": int(m.group(2)), "heap": heap} if m else None


def _transaction_us(mpy: Path, work: Path, slave_port: int, n: int = 2000) -> tuple[float, float] | None:
    probe = work / "probe_txn.py"
    probe.write_text(_TXN_PROBE)
    argv, env = fw_argv(MODE, mpy, "64k", str(probe), str(slave_port), str(n))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    m = re.search(r"^txn_us ([\d.]+) raw_us ([\d.]+)$", r.stdout, re.M)
    return (float(m.group(1)), float(m.group(2))) if m else None


def _code_bytes(mpy: Path, work: Path, modules: list[str], mode: str = MODE) -> int | None:
    """Heap taken by just importing the modules the running node holds: its code share."""
    modules = [m for m in modules if m not in ("__main__", "main", "romboot")]  # main would run the node
    probe = work / "probe_code.py"
    probe.write_text(_PROBE)
    argv, env = fw_argv(mode, mpy, "256k", str(probe), ",".join(modules))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    m = re.search(r"^code (\d+)$", r.stdout, re.M)
    return int(m.group(1)) if m else None


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


def _replay(mpy: Path, work: Path, slave_port: int, mqtt_port: int, heap: str, records: int) -> dict:
    """Store `records` records with the broker unreachable, then start the node (poll 10 s) with the
    broker up and time the backlog until every record has arrived at a subscriber."""
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()
    shutil.rmtree(work / "state", ignore_errors=True)
    fill, _ = run_fw(mpy, bench_node_config(work, slave_port, dead_port, 0.001), "256k", records)
    if fill.returncode != 0:
        return {"error": "fill failed: " + (fill.stdout + fill.stderr)[-300:]}
    import paho.mqtt.client as paho
    arrivals: list[float] = []
    count = [0]
    seqs: set[int] = set()

    def on_msg(c, u, m):
        if m.topic.endswith("/data"):
            d = json.loads(m.payload)
            recs = d["batch"] if "batch" in d else [d]
            count[0] += len(recs)
            seqs.update(x["seq"] for x in recs)
            arrivals.append(time.perf_counter())

    sub = paho.Client(paho.CallbackAPIVersion.VERSION2)
    sub.on_message = on_msg
    sub.connect("127.0.0.1", mqtt_port)
    sub.subscribe("edge/v1/bench/fw/data", qos=1)
    sub.loop_start()
    time.sleep(0.3)
    log = work / f"replay-{heap}-{records}.log"
    limit = 300
    t0 = time.perf_counter()
    # enough 10-s cycles to outlive the limit: the node is stopped once the last record arrived, so a
    # slow replay is measured, not cut off when its cycles run out
    cfg = bench_node_config(work, slave_port, mqtt_port, 10)
    check_boot(mpy, cfg)
    argv, env = fw_argv(MODE, mpy, heap, *main_args(MODE), str(cfg), "--cycles", str(limit // 10 + 2))
    proc = subprocess.Popen(argv, cwd=str(work), env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    while len(seqs) < records and time.perf_counter() - t0 < limit and proc.poll() is None:
        time.sleep(0.01)  # (a node that died at boot will not send the rest: no point waiting)
    proc.kill()  # our child, by PID
    proc.wait(5)
    sub.loop_stop()
    sub.disconnect()
    out: dict = {"records": records, "heap": heap, "received": len(seqs), "messages": len(arrivals),
                 "memory_errors": log.read_text().count("MemoryError")}
    if len(seqs) >= records and len(arrivals) > 1:
        out["records_per_s"] = round(records / (arrivals[-1] - t0), 1)
        out["drain_s"] = round(arrivals[-1] - t0, 2)  # from process start (boot, connect, status) to the last record
    else:
        out["error"] = "incomplete: " + log.read_text()[-400:]
    return out


HEAPS = ("52k", "54k", "56k", "58k", "60k", "62k", "64k", "72k", "80k", "88k", "96k", "104k", "112k", "128k")


def run(results: dict) -> None:
    fw: dict = {}
    with tempfile.TemporaryDirectory(prefix="edgemon-benchfw-") as tmp:
        work = Path(tmp)
        mpy = build_mpy(work / "build")  # the .mpy the device would run (nodeproc.build_mpy)
        slave = BenchSlave()
        broker, mport = start_mosquitto(work)
        try:
            bpr = _bytes_per_record(work)
            fw["bytes_per_record"] = round(bpr, 1)
            fw["days_in_2mb"] = round(2 * 1024 * 1024 / (bpr * 1440), 1)
            txn = _transaction_us(mpy, work, slave.port)
            if txn is not None:
                fw["modbus_txn_us"], fw["modbus_txn_raw_socket_us"] = round(txn[0], 1), round(txn[1], 1)
                fw["modbus_txn_cpu_beyond_io_us"] = round(txn[0] - txn[1], 1)

            # Heap: 1,000 poll cycles of 4 analyzers x 5 values (poll 0: as fast as the analyzers
            # answer; the heap a cycle needs does not depend on the period), smallest heap that holds.
            cfg = bench_node_config(work, slave.port, mport, 0.001)
            tried = {}
            for heap in HEAPS:
                run1 = heap_run(mpy, cfg, work, heap, 1000)
                tried[heap] = run1["ok"]
                print(f"  heap {heap}: {'1000 cycles, no MemoryError' if run1['ok'] else 'FAILED'}"
                      f" peak={run1['peak']} live={run1['live']} ({run1['wall_s']:.1f} s)", flush=True)
                if not run1["ok"] and run1["tail"]:
                    print("    " + run1["tail"].strip().splitlines()[-1][:200])
                if run1["ok"]:
                    fw["heap_size_needed"] = heap
                    fw["runs_in_64k"] = int(heap[:-1]) <= 64
                    fw["heap_peak_bytes"] = run1["peak"]  # gc.mem_alloc high-water, garbage included
                    fw["heap_live_bytes"] = run1["live"]  # after a collection: what the node really holds
                    fw["heap_live_at_start"] = run1["start_live"]
                    fw["cycle_ms"] = round(run1["wall_s"] * 1000 / 1000, 2)
                    fw["modules_loaded"] = len(run1["modules"])
                    code = _code_bytes(mpy, work, run1["modules"])
                    if code is not None:
                        fw["code_bytes_in_heap"] = code
                        fw["code_share_of_live"] = round(code / run1["live"], 2)
                    break
            fw["heaps_tried"] = tried
            # The same poll loop with its MQTT link over TLS (CA pinned, TLS 1.2, ECDSA P-256 certificates
            # from edgemon.pki) to a TLS Mosquitto, from the plain loop's heap upwards; held means 1,000
            # cycles, no MemoryError, no failed connect or publish, the link up at the end.
            files = tls_files(work)
            tls_broker, tport = start_mosquitto_tls(work, files)
            try:
                tcfg = with_tls(cfg, tport, files)
                for heap in HEAPS[HEAPS.index(fw.get("heap_size_needed", "64k")):]:
                    t1 = heap_run(mpy, tcfg, work, heap, 1000)
                    ok = t1["ok"] and not t1["mqtt_errors"] and t1["mqtt_up_at_end"]
                    print(f"  TLS heap {heap}: {'1000 cycles, no MemoryError, link up' if ok else 'FAILED'}"
                          f" peak={t1['peak']} live={t1['live']} mqtt errors={t1['mqtt_errors']}", flush=True)
                    if ok:
                        fw["tls_heap_size_needed"] = heap
                        fw["tls_runs_in_64k"] = int(heap[:-1]) <= 64
                        fw["tls_heap_peak_bytes"] = t1["peak"]
                        fw["tls_heap_live_bytes"] = t1["live"]
                        fw["tls_heap_live_at_start"] = t1["start_live"]
                        break
                roomy_tls = heap_run(mpy, tcfg, work, "256k", 1000)
                fw["tls_heap_live_bytes_256k"] = roomy_tls["live"]
                probe = _tls_probe(work, tport, files["node_ca"])
                if probe:
                    fw["tls_context_gc_bytes"] = probe["ctx"]
                    fw["tls_connection_gc_bytes"] = probe["conn"]
                    fw["tls_handshake_in_heap"] = probe["heap"]
            finally:
                tls_broker.terminate()
                tls_broker.wait(10)
            # The same with the .mpy loaded into the heap (files on LittleFS, no romfs partition).
            for heap in HEAPS[HEAPS.index(fw.get("heap_size_needed", "64k")):]:
                alt = heap_run(mpy, cfg, work, heap, 1000, mode="mpy")
                print(f"  (.mpy in heap) heap {heap}: {'1000 cycles, no MemoryError' if alt['ok'] else 'FAILED'}"
                      f" peak={alt['peak']} live={alt['live']}", flush=True)
                if alt["ok"]:
                    fw["heap_size_needed_mpy_in_heap"] = heap
                    fw["heap_live_bytes_mpy_in_heap"] = alt["live"]
                    break
            # The same run at a roomy heap: peak and live without GC pressure.
            roomy = heap_run(mpy, cfg, work, "256k", 1000)
            fw["heap_live_bytes_256k"] = roomy["live"]
            if fw.get("tls_heap_live_bytes_256k") and roomy["live"]:
                fw["tls_extra_live_bytes_256k"] = fw["tls_heap_live_bytes_256k"] - roomy["live"]
            # The same node as a technician writes it: analyzers given as profiles (the profile
            # code and its names join the heap at startup): the smallest heap that holds it, from
            # the one that held the loop upwards.
            pcfg = profile_config(cfg)
            for heap in HEAPS[HEAPS.index(fw.get("heap_size_needed", "64k")):]:
                prof = heap_run(mpy, pcfg, work, heap, 1000)
                print(f"  profiles config at {heap}: {'1000 cycles, no MemoryError' if prof['ok'] else 'FAILED'}"
                      f" peak={prof['peak']} live={prof['live']}", flush=True)
                if prof["ok"]:
                    fw["profiles_config_heap_needed"] = heap
                    fw["profiles_config_runs_in_64k"] = int(heap[:-1]) <= 64
                    fw["profiles_config_heap_peak_bytes"] = prof["peak"]
                    fw["profiles_config_heap_live_bytes"] = prof["live"]
                    break
            # The command channel: the loop with signed commands arriving, from the loop's heap up.
            for heap in HEAPS[HEAPS.index(fw.get("heap_size_needed", "64k")):]:
                cr = command_run(mpy, cfg, work, heap, mport)
                print(f"  commands at {heap}: {'ok' if cr['ok'] else 'FAILED'} acks {cr['acks_ok']}/{cr['commands']}"
                      f" peak={cr['peak']} ack p50 {cr['ack_p50_ms']} ms max {cr['ack_max_ms']} ms", flush=True)
                if cr["ok"]:
                    fw["commands_heap_needed"] = heap
                    fw["commands_runs_in_64k"] = int(heap[:-1]) <= 64
                    fw["commands_heap_peak_bytes"] = cr["peak"]
                    fw["command_ack_p50_ms"] = cr["ack_p50_ms"]
                    fw["command_ack_max_ms"] = cr["ack_max_ms"]
                    break

            # Replay: a day's backlog, both readings of "a day": 8,640 records (10-s poll) and 1,440
            # records (1-min poll), measured end to end (not extrapolated), at the smallest heap that
            # held the poll loop and at 128k.
            # A node that reboots with a backlog must boot and replay in its heap too: the smallest
            # heap, from the one that held the poll loop upwards, that drains a day's backlog.
            loop_heap = fw.get("heap_size_needed", "128k")
            small = None
            for heap in HEAPS[HEAPS.index(loop_heap):]:
                rep = _replay(mpy, work, slave.port, mport, heap, 8640)
                ok = "records_per_s" in rep and not rep.get("memory_errors")
                print(f"  replay 8640 records at {heap}: {'ok' if ok else 'FAILED'} {rep}", flush=True)
                if ok:
                    small = heap
                    break
            fw["replay_heap_needed"] = small
            small = small or "128k"
            for heap in dict.fromkeys((small, "128k")):
                for n, name in ((8640, "day_10s"), (1440, "day_1min"), (360, "hour_10s")):
                    rep = _replay(mpy, work, slave.port, mport, heap, n)
                    print(f"  replay {n} records at {heap}: {rep}", flush=True)
                    key = f"replay_{name}_{heap}"
                    fw[key + "_s"] = rep.get("drain_s")
                    fw[key + "_records_per_s"] = rep.get("records_per_s")
                    fw[key + "_memory_errors"] = rep.get("memory_errors")
            fw["replay_records_per_s"] = fw.get(f"replay_day_10s_{small}_records_per_s")
            fw["replay_day_10s_s"] = fw.get(f"replay_day_10s_{small}_s")
            fw["replay_day_1min_s"] = fw.get(f"replay_day_1min_{small}_s")
            fw["replay_hour_10s_s"] = fw.get(f"replay_hour_10s_{small}_s")
            fw["replay_hour_10s_records_per_s"] = fw.get(f"replay_hour_10s_{small}_records_per_s")
            fw["replay_heap"] = small
        finally:
            broker.terminate()
            broker.wait(10)
            slave.stop()
    wire_bytes = 8 + 5 + 2 * 10  # request + response for 5 float32 values (10 registers)
    fw["wire_ms_per_transaction_9600"] = round(wire_bytes * 10 / 9600 * 1000, 1)
    print(f"\n{'firmware (MicroPython unix port, 64-bit, .mpy in a ROMFS image)':62} {'value':>12}")
    small = fw.get("replay_heap")
    rows = [("smallest -X heapsize that held 1000 cycles (goal 64k)", fw.get("heap_size_needed"), ""),
            ("  heap peak gc.mem_alloc (garbage included) there", fw.get("heap_peak_bytes"), "bytes"),
            ("  heap live after gc.collect, max over cycles", fw.get("heap_live_bytes"), "bytes"),
            ("  of which code (the node's modules, from ROMFS)", fw.get("code_bytes_in_heap"), "bytes"),
            ("smallest heap, the same loop with MQTT over TLS (CA pinned)", fw.get("tls_heap_size_needed"), ""),
            ("  heap live after gc.collect there", fw.get("tls_heap_live_bytes"), "bytes"),
            ("  TLS's extra live GC heap (both at 256k)", fw.get("tls_extra_live_bytes_256k"), "bytes"),
            ("  of which the TLS context (certificates, RNG, config)", fw.get("tls_context_gc_bytes"), "bytes"),
            (f"  a handshake in a {fw.get('tls_handshake_in_heap', '16k')} heap: its record buffers are outside",
             "ok" if fw.get("tls_handshake_in_heap") else None, ""),
            ("smallest heap, analyzers given as profiles (19 params)", fw.get("profiles_config_heap_needed"), ""),
            ("smallest heap, loop with signed commands arriving (cmd -> ack)", fw.get("commands_heap_needed"), ""),
            ("  command publish -> its ack at the sender, p50", fw.get("command_ack_p50_ms"), "ms"),
            ("  heap live after gc.collect there", fw.get("profiles_config_heap_live_bytes"), "bytes"),
            ("same, .mpy loaded into the heap (LittleFS): smallest heap", fw.get("heap_size_needed_mpy_in_heap"), ""),
            ("  heap live after gc.collect there", fw.get("heap_live_bytes_mpy_in_heap"), "bytes"),
            ("Modbus transaction (FC03, 10 registers) via the firmware, loopback", fw.get("modbus_txn_us"), "us"),
            ("  reference: the same bytes through a bare socket, same run", fw.get("modbus_txn_raw_socket_us"), "us"),
            ("  firmware CPU per transaction beyond the I/O", fw.get("modbus_txn_cpu_beyond_io_us"), "us"),
            ("  reference: wire time of one such transaction at 9600 baud",
             round(fw["wire_ms_per_transaction_9600"] * 1000), "us"),
            ("poll cycle, loopback: 4 Modbus requests + store + publish", fw.get("cycle_ms"), "ms"),
            ("reference: wire time of those 4 requests at 9600 baud", 4 * fw["wire_ms_per_transaction_9600"], "ms"),
            ("flash per record, 10 float32 params, 1-min", fw.get("bytes_per_record"), "bytes"),
            ("days of 1-min records in 2 MB (goal 30)", fw.get("days_in_2mb"), "days"),
            ("smallest heap that boots with a day's backlog and drains it", fw.get("replay_heap_needed"), ""),
            (f"replay, heap {small}", fw.get("replay_records_per_s"), "rec/s"),
            ("  after a one-hour outage (360 10-s records)", fw.get("replay_hour_10s_records_per_s"), "rec/s"),
            ("  reference: records a 9600-baud bus yields (4 requests each)",
             round(1000 / (4 * fw["wire_ms_per_transaction_9600"]), 1), "rec/s"),
            ("  one-hour outage drained in (from process start)", fw.get("replay_hour_10s_s"), "s"),
            ("  a day of 10-s records (8640) drained in (goal < 60)", fw.get("replay_day_10s_s"), "s"),
            ("  a day of 1-min records (1440) drained in (goal < 60)", fw.get("replay_day_1min_s"), "s"),
            ("replay, heap 128k", fw.get("replay_day_10s_128k_records_per_s"), "rec/s"),
            ("  a day of 10-s records (8640) drained in", fw.get("replay_day_10s_128k_s"), "s")]
    for name, v, unit in rows:
        print(f"{name:62} {('n/a' if v is None else v)!s:>12} {unit}")
    results["firmware"] = {k: v for k, v in fw.items() if v is not None}
