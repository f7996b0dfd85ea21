"""`edgemon hj212 platform`: a simulated HJ 212 platform (platformsim.py) on a terminal, one line per
packet received, for technicians pointing a site at it and for the demo."""

from __future__ import annotations

import signal
import threading
from datetime import datetime

from .platformsim import PlatformSimulator, Received, Rejected


def serve(host: str, port: int, crc_variant: str, echo=print) -> None:
    """`edgemon hj212 platform`: run a simulator, one line per packet received, until SIGINT/SIGTERM."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    sim = PlatformSimulator(host, port, crc_variant).start()
    echo(f"HJ 212 platform simulator listening on {host}:{sim.port} (CRC {crc_variant}); Ctrl-C stops")
    n_ok = n_bad = 0
    try:
        while not stop.is_set():
            stop.wait(0.1)
            ok, bad = sim.received[n_ok:], sim.rejected[n_bad:]
            n_ok, n_bad = n_ok + len(ok), n_bad + len(bad)
            for ev in sorted(ok + bad, key=lambda e: e.at):
                echo(_line(ev))
    finally:
        sim.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    echo(f"stopped: {n_ok} packet(s) accepted, {n_bad} refused")


def _line(ev: Received | Rejected) -> str:
    when, peer = datetime.fromtimestamp(ev.at).strftime("%H:%M:%S.%f")[:-3], f"{ev.peer[0]}:{ev.peer[1]}"
    if isinstance(ev, Rejected):
        text = ev.raw.decode("utf-8", "replace").rstrip("\r\n")
        return f"{when} {peer} REJECTED {ev.kind}: {ev.reason} | {text[:60]}{'...' if len(text) > 60 else ''}"
    k = ev.packet
    dev = f" deviations: {'; '.join(ev.deviations)}" if ev.deviations else ""
    return f"{when} {peer} MN={k.mn} CN={k.cn} QN={k.qn or '-'} -> {ev.answer or 'no reply'}{dev}"
