"""The firmware bench's command-channel run: the bench node polls as fast as its analyzers answer
while signed `time` commands arrive on its cmd topic one after another (each sent when the previous
one's ack came back). Counts the acks, the MemoryErrors and the heap peak, and times each command
from its publish to its ack at the sender: what the channel costs the poll loop at one heap size."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from ..commands import build_command
from .fwrig import MODE, check_boot, fw_argv, main_args

SITE, NODE = "bench", "fw"  # fwrig.bench_node_config's node


def command_run(mpy: Path, cfg: Path, work: Path, heap: str, mqtt_port: int, cycles: int = 3000,
                commands: int = 20) -> dict:
    import paho.mqtt.client as paho

    key = bytes.fromhex(json.loads(cfg.read_text())["key"])
    shutil.rmtree(work / "state", ignore_errors=True)
    acks: list[tuple[float, dict]] = []
    got = threading.Condition()

    def on_msg(c, u, m):
        with got:
            acks.append((time.perf_counter(), json.loads(m.payload)))
            got.notify()

    sub = paho.Client(paho.CallbackAPIVersion.VERSION2)
    sub.on_message = on_msg
    sub.connect("127.0.0.1", mqtt_port)
    sub.subscribe(f"edge/v1/{SITE}/{NODE}/cmd/ack", qos=1)
    sub.loop_start()
    log = work / f"cmd-{heap}.log"
    check_boot(mpy, cfg)
    argv, env = fw_argv(MODE, mpy, heap, *main_args(MODE), str(cfg), "--cycles", str(cycles))
    proc = subprocess.Popen(argv, cwd=str(cfg.parent), env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    rtts: list[float] = []
    try:
        deadline = time.monotonic() + 20
        while "mqtt=up" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # connected, so subscribed (the subscription comes before the first publish)
        base = int(time.time() * 1000)
        for i in range(commands):
            if proc.poll() is not None:
                break
            t0 = time.perf_counter()
            sub.publish(f"edge/v1/{SITE}/{NODE}/cmd",
                        build_command(base + i, "time", {}, base + 600_000, key), qos=1)
            with got:
                got.wait_for(lambda: any(a.get("id") == base + i for _, a in acks), timeout=5)
            for t, a in acks:
                if a.get("id") == base + i:
                    rtts.append((t - t0) * 1000)
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()  # our child, by PID
            proc.wait(5)
        sub.loop_stop()
        sub.disconnect()
    out = log.read_text()
    peaks = [int(x) for x in re.findall(r"heap_peak=(\d+)", out)]
    ok_acks = sum(1 for _, a in acks if a.get("ok") is True)
    rtts.sort()
    return {"heap": heap, "ok": proc.returncode == 0 and ok_acks == commands and "MemoryError" not in out,
            "acks_ok": ok_acks, "commands": commands, "memory_errors": out.count("MemoryError"),
            "peak": max(peaks) if peaks else None,
            "ack_p50_ms": round(rtts[len(rtts) // 2], 1) if rtts else None,
            "ack_max_ms": round(rtts[-1], 1) if rtts else None,
            "tail": "" if proc.returncode == 0 else out[-400:]}
