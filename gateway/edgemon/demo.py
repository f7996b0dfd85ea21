"""`make demo`: the whole system on this PC with simulated analyzers, and a live table of what reached InfluxDB.

Three sites, each a pymodbus analyzer and a real firmware process (MicroPython unix port), one gateway,
our own Mosquitto and InfluxDB. Ctrl-C stops every process this started, by PID.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from .procutil import child_kwargs
from .nodeproc import FirmwareProcess, cod_node_config
from .simulator import AnalyzerSimulator, cod_profile
from .stack import LocalStack

log = logging.getLogger("edgemon.demo")

FLAG_NAMES = {"N": "normal", "F": "stopped", "M": "maintenance", "S": "manual", "D": "fault",
              "C": "calibration", "T": "over range", "B": "no answer"}
PARAM_NAMES = {"w01018": ("COD", "mg/L")}


@dataclass
class DemoSite:
    site: str
    node: str
    label: str
    cod_base: float
    cod_amplitude: float
    word_order: str


SITES = [
    DemoSite("qd_wwtp_outlet", "node01", "wastewater plant outlet", 28.0, 6.0, "ABCD"),
    DemoSite("laixi_ent_07", "node01", "enterprise outfall", 65.0, 15.0, "CDAB"),
    DemoSite("river_sec_03", "node01", "river section", 16.0, 3.0, "ABCD"),
]


def latest_readings(influx_url: str, database: str) -> list[dict]:
    """The newest `reading` point of every site/node/param, straight from InfluxDB."""
    q = 'SELECT * FROM "reading" WHERE time > now() - 1h GROUP BY "site","node","param" ORDER BY time DESC LIMIT 1'
    r = requests.get(influx_url + "/query", params={"db": database, "q": q, "epoch": "ms"}, timeout=5)
    r.raise_for_status()
    rows = []
    for result in r.json().get("results", []):
        for series in result.get("series", []) or []:
            cols = series["columns"]
            for values in series["values"]:
                row = dict(zip(cols, values))
                row.update(series.get("tags", {}))
                rows.append(row)
    return sorted(rows, key=lambda r: (r["site"], r["node"], r["param"]))


def node_states(influx_url: str, database: str) -> dict[tuple[str, str], bool]:
    q = 'SELECT last("online") FROM "node" GROUP BY "site","node"'
    r = requests.get(influx_url + "/query", params={"db": database, "q": q}, timeout=5)
    r.raise_for_status()
    out = {}
    for result in r.json().get("results", []):
        for series in result.get("series", []) or []:
            tags = series.get("tags", {})
            out[(tags.get("site"), tags.get("node"))] = bool(series["values"][0][1])
    return out


def render(stack: LocalStack, nodes: dict[str, FirmwareProcess], started: float, gateway_ok: bool):
    table = Table(title="Latest readings in InfluxDB", expand=True)
    for col in ("site", "node", "parameter", "value", "flag", "age", "node status", "fw heap peak"):
        table.add_column(col)
    try:
        rows = latest_readings(stack.influx.url, stack.influx.database)
        states = node_states(stack.influx.url, stack.influx.database)
    except requests.RequestException as exc:
        rows, states = [], {}
        table.caption = f"InfluxDB query failed: {exc}"
    now_ms = time.time() * 1000
    for row in rows:
        name, unit = PARAM_NAMES.get(row["param"], (row["param"], ""))
        value = "—" if row.get("value") is None else f"{row['value']:.2f} {unit}"
        flag = row.get("flag") or "?"
        flag_text = f"{flag} {FLAG_NAMES.get(flag, '')}"
        style = "green" if flag == "N" else "yellow"
        age = f"{(now_ms - row['time']) / 1000:.1f} s"
        online = states.get((row["site"], row["node"]))
        proc = nodes.get(row["site"])
        heap = f"{proc.heap_peak / 1024:.1f} KiB" if proc and proc.heap_peak else "—"
        table.add_row(row["site"], row["node"], f"{name} ({row['param']})", value,
                      f"[{style}]{flag_text}[/{style}]", age,
                      "online" if online else ("offline" if online is not None else "—"), heap)
    if not rows:
        table.add_row("(waiting for the first records…)", "", "", "", "", "", "", "")
    info = stack.describe()
    where = (f"InfluxDB {info['influxdb']}  database [bold]{info['database']}[/bold]   "
             f"MQTT broker {info['mqtt']}   run folder {info['run_dir']}\n"
             f"gateway {'running' if gateway_ok else '[red]stopped[/red]'}   "
             f"firmware processes alive {sum(p.alive() for p in nodes.values())}/{len(nodes)}   "
             f"up {time.time() - started:.0f} s   Ctrl-C stops everything")
    return Group(table, Panel(where, title="where the data lives"))


def run_demo(run_dir: Path, duration_s: float | None = None, poll_s: float = 2.0, period_s: float = 600.0,
             console: Console | None = None) -> dict:
    """Run until Ctrl-C (or for duration_s). Returns a summary: rows seen and firmware heap peaks."""
    console = console or Console()
    run_dir = Path(run_dir)
    stack = LocalStack(run_dir)
    sims: list[AnalyzerSimulator] = []
    nodes: dict[str, FirmwareProcess] = {}
    gateway: subprocess.Popen | None = None
    summary: dict = {}
    stop = {"flag": False}

    def on_term(*_):
        stop["flag"] = True

    old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        console.print("[bold]starting Mosquitto and InfluxDB…[/bold]")
        stack.start()
        env = dict(os.environ, EDGEMON_MQTT_PASSWORD=stack.gateway_password)
        gw_log = open(run_dir / "gateway.log", "a")
        gateway = subprocess.Popen(
            [sys.executable, "-m", "edgemon.cli", "gateway", "run",
             "--mqtt-host", stack.mosquitto.host, "--mqtt-port", str(stack.mosquitto.port),
             "--mqtt-user", stack.gateway_user, "--influx-url", stack.influx.url,
             "--influx-db", stack.influx.database, "--state-dir", str(run_dir / "gateway")],
            env=env, stdout=gw_log, stderr=subprocess.STDOUT, **child_kwargs())
        for s in SITES:
            sim = AnalyzerSimulator(cod_profile(base=s.cod_base, amplitude=s.cod_amplitude,
                                                period_s=period_s, word_order=s.word_order)).start()
            sims.append(sim)
            user = f"{s.site}.{s.node}"
            password = stack.mosquitto.add_user(user)
            node_dir = run_dir / "nodes" / s.site
            cfg = cod_node_config(s.site, s.node, mqtt_port=stack.mosquitto.port, mqtt_user=user,
                                  mqtt_password=password, analyzer_port=sim.port, state_dir=node_dir / "state",
                                  poll_s=poll_s, word_order=s.word_order)
            nodes[s.site] = FirmwareProcess(cfg, node_dir / "node.json").start()
            console.print(f"  site {s.site} ({s.label}): analyzer on 127.0.0.1:{sim.port}, "
                          f"firmware pid {nodes[s.site].proc.pid}")
        started = time.time()
        with Live(render(stack, nodes, started, True), console=console, refresh_per_second=1,
                  transient=False) as live:
            while not stop["flag"] and (duration_s is None or time.time() - started < duration_s):
                time.sleep(1)
                live.update(render(stack, nodes, started, gateway.poll() is None))
        summary["rows"] = latest_readings(stack.influx.url, stack.influx.database)
    except KeyboardInterrupt:
        console.print("\n[bold]Ctrl-C: stopping everything…[/bold]")
    finally:
        signal.signal(signal.SIGTERM, old_term)
        summary["pids"] = [p.proc.pid for p in nodes.values() if p.proc] + \
            [p.pid for p in (gateway, stack.mosquitto.proc, stack.influx.proc) if p]
        summary["heap_peak"] = {site: p.heap_peak for site, p in nodes.items()}
        for p in nodes.values():
            p.stop()
        if gateway and gateway.poll() is None:
            gateway.send_signal(signal.SIGINT)  # graceful: the gateway flushes its batch in flight
            try:
                gateway.wait(timeout=15)
            except subprocess.TimeoutExpired:
                gateway.kill()
                gateway.wait()
        for sim in sims:
            sim.stop()
        stack.stop()
        console.print("stopped: firmware, gateway, simulators, Mosquitto and InfluxDB "
                      f"(data kept in {run_dir})")
    return summary
