"""`make demo`: the whole system on this PC with simulated analyzers, and a live view of what reached InfluxDB.

Three sites (demo_sites.py): their analyzers are firmware profiles served by pymodbus buses, each node
is the real firmware (MicroPython unix port) signing its payloads, one gateway runs from a generated
gateway.toml with node keys, liveness and alarms, and SMS go to a GSM modem simulated on a
pseudo-terminal. Part-way through, the enterprise outfall's COD is pushed over its limit so an alarm,
its Chinese SMS and the clear show. Ctrl-C stops every process this started, by PID.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from .demo_sites import SITES, Site
from .nodeproc import FirmwareProcess, profile_analyzer, profile_node_config
from .procutil import child_kwargs
from .simulator import BusSimulator
from .sms.modemsim import ModemSimulator
from .stack import LocalStack

log = logging.getLogger("edgemon.demo")

FLAG_NAMES = {"N": "normal", "F": "stopped", "M": "maintenance", "S": "manual", "D": "fault",
              "C": "calibration", "T": "over range", "B": "no answer"}
DUTY_PHONE = "+8613800000001"
NODE_HEAP = "256k"  # the firmware runs from source here; the compiler needs heap the device (.mpy) does not


def _param_names() -> dict[str, tuple[str, str]]:
    import tomllib

    doc = tomllib.loads((Path(__file__).parent / "data" / "params.toml").read_text("utf-8"))
    return {code: (v.get("short") or v.get("name", code), v.get("unit", "")) for code, v in doc.items()}


def _query(influx_url: str, database: str, q: str) -> list[dict]:
    r = requests.get(influx_url + "/query", params={"db": database, "q": q, "epoch": "ms"}, timeout=5)
    r.raise_for_status()
    rows = []
    for result in r.json().get("results", []):
        for series in result.get("series", []) or []:
            for values in series["values"]:
                row = dict(zip(series["columns"], values))
                row.update(series.get("tags", {}))
                rows.append(row)
    return rows


def latest_readings(influx_url: str, database: str) -> list[dict]:
    """The newest `reading` point of every site/node/param, straight from InfluxDB."""
    rows = _query(influx_url, database, 'SELECT * FROM "reading" WHERE time > now() - 1h '
                                        'GROUP BY "site","node","param" ORDER BY time DESC LIMIT 1')
    return sorted(rows, key=lambda r: (r["site"], r["node"], r["param"]))


def node_states(influx_url: str, database: str) -> dict[tuple[str, str], bool]:
    rows = _query(influx_url, database, 'SELECT last("online") AS online FROM "node" GROUP BY "site","node"')
    return {(r["site"], r["node"]): bool(r["online"]) for r in rows}


def alarm_events(influx_url: str, database: str) -> list[dict]:
    return _query(influx_url, database, 'SELECT * FROM "alarm" ORDER BY time DESC LIMIT 6')


# --- the files a technician and an operator would write ----------------------------------------------

def write_gateway_files(run_dir: Path, stack: LocalStack, keys: dict[str, str], modem_path: str,
                        poll_s: float) -> Path:
    keys_path = run_dir / "keys.toml"
    keys_path.write_text("[keys]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in keys.items()))
    os.chmod(keys_path, 0o600)
    alarms = [
        "[sms]", f'port = "{modem_path}"', "send_timeout_s = 10", "",
        "[people.duty]", 'name = "值班员"', f'phone = "{DUTY_PHONE}"', "",
    ]
    sites_toml = []
    for s in SITES:
        alarms += [f"[sites.{s.site}]", f'name = "{s.name_zh}"', f'profile = "{s.limit_profile}"',
                   'roles = { duty = ["duty"] }', "notify = [\"duty\"]",
                   f"[sites.{s.site}.rules.instant]", "raise_n = 2", "clear_n = 2", ""]
        nodes = ", ".join(f'"{n.node}"' for n in s.nodes)
        sites_toml += [f"[sites.{s.site}]", f"poll_s = {poll_s}", f"nodes = [{nodes}]", ""]
    (run_dir / "alarms.toml").write_text("\n".join(alarms), encoding="utf-8")
    gw = [
        "[gateway]", 'id = "demo-gateway"', f'state_dir = "{run_dir / "gateway"}"', "",
        "[mqtt]", f'host = "{stack.mosquitto.host}"', f"port = {stack.mosquitto.port}",
        f'username = "{stack.gateway_user}"', 'password_env = "EDGEMON_MQTT_PASSWORD"', "",
        "[influx]", 'api = "v1"', f'url = "{stack.influx.url}"', f'database = "{stack.influx.database}"', "",
        "[trust]", f'keys_file = "{keys_path}"', "require_signatures = true", "",
        "[liveness]", f"default_poll_s = {poll_s}", "silent_periods = 5", "",
        "[alarms]", f'config = "{run_dir / "alarms.toml"}"', "",
    ] + sites_toml
    path = run_dir / "gateway.toml"
    path.write_text("\n".join(gw), encoding="utf-8")
    return path


class Demo:
    """Everything the demo starts, so that stop() can always stop exactly that."""

    def __init__(self, run_dir: Path, poll_s: float, day_s: float, breach_at_s: float, breach_for_s: float):
        self.run_dir = Path(run_dir)
        self.poll_s, self.day_s = poll_s, day_s
        self.breach_at_s, self.breach_for_s = breach_at_s, breach_for_s
        self.stack = LocalStack(self.run_dir)
        self.modem: ModemSimulator | None = None
        self.buses: dict[tuple[str, str], BusSimulator] = {}
        self.nodes: dict[tuple[str, str], FirmwareProcess] = {}
        self.gateway: subprocess.Popen | None = None
        self.started = time.time()
        self.phase = {(s.site, a.name, p): random.uniform(0, 2 * math.pi)
                      for s in SITES for n in s.nodes for a in n.analyzers for p in a.signals}

    def start(self, console: Console):
        console.print("[bold]starting Mosquitto and InfluxDB…[/bold]")
        self.stack.start()
        (self.run_dir / "dev").mkdir(exist_ok=True)
        self.modem = ModemSimulator(self.run_dir / "dev").start()
        keys: dict[str, str] = {}
        for s in SITES:
            for n in s.nodes:
                bus = BusSimulator(framing=n.framing)
                for a in n.analyzers:
                    bus.add(a.unit, a.profile)
                self.buses[(s.site, n.node)] = bus.start()
                keys[f"{s.site}/{n.node}"] = secrets.token_hex(32)
        self.drive_values()
        gw_toml = write_gateway_files(self.run_dir, self.stack, keys, self.modem.path, self.poll_s)
        env = dict(os.environ, EDGEMON_MQTT_PASSWORD=self.stack.gateway_password)
        gw_log = open(self.run_dir / "gateway.log", "a")
        self.gateway = subprocess.Popen([sys.executable, "-m", "edgemon.cli", "gateway", "run", "--config",
                                         str(gw_toml)], env=env, stdout=gw_log, stderr=subprocess.STDOUT,
                                        **child_kwargs())
        for s in SITES:
            for n in s.nodes:
                bus = self.buses[(s.site, n.node)]
                user = f"{s.site}.{n.node}"
                cfg = profile_node_config(
                    s.site, n.node, mqtt_port=self.stack.mosquitto.port, mqtt_user=user,
                    mqtt_password=self.stack.mosquitto.add_user(user),
                    analyzers=[profile_analyzer(a.name, a.profile, a.unit, bus.port, framing=n.framing)
                               for a in n.analyzers],
                    state_dir=self.run_dir / "nodes" / s.site / n.node / "state", poll_s=self.poll_s)
                cfg["key"] = keys[f"{s.site}/{n.node}"]
                proc = FirmwareProcess(cfg, self.run_dir / "nodes" / s.site / n.node / "node.json",
                                       heapsize=NODE_HEAP)
                self.nodes[(s.site, n.node)] = proc.start()
                console.print(f"  {s.site} ({s.label}) {n.node}: {len(n.analyzers)} analyzer(s) on "
                              f"127.0.0.1:{bus.port} ({'RTU over TCP' if n.framing == 'rtu' else 'Modbus TCP'}), "
                              f"firmware pid {proc.proc.pid}")
        self.started = time.time()

    def breach_active(self, now: float) -> bool:
        t = now - self.started
        return self.breach_at_s <= t < self.breach_at_s + self.breach_for_s

    def drive_values(self):
        """Move every simulated value along its daily cycle; hold the staged breach while it lasts."""
        now = time.time()
        for s in SITES:
            for n in s.nodes:
                bus = self.buses[(s.site, n.node)]
                for a in n.analyzers:
                    for param, sig in a.signals.items():
                        angle = 2 * math.pi * now / self.day_s + self.phase[(s.site, a.name, param)]
                        v = sig.mean + sig.swing * math.sin(angle) + random.gauss(0, sig.noise)
                        bus.set_value(a.unit, param, round(max(v, 0.0), 3))
            if s.staged_breach and self.breach_active(now):
                node, unit, param, value = s.staged_breach
                self.buses[(s.site, node)].set_value(unit, param, value)

    def stop(self) -> list[int]:
        pids = [p.proc.pid for p in self.nodes.values() if p.proc]
        for p in self.nodes.values():
            p.stop()
        if self.gateway and self.gateway.poll() is None:
            self.gateway.send_signal(signal.SIGTERM)  # graceful: the gateway finishes its batch in flight
            try:
                self.gateway.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
                self.gateway.wait()
        if self.gateway:
            pids.append(self.gateway.pid)
        for bus in self.buses.values():
            bus.stop()
        if self.modem:
            self.modem.stop()
        self.stack.stop()
        pids += [p.pid for p in (self.stack.mosquitto.proc, self.stack.influx.proc) if p]
        return pids

    # --- the live view -----------------------------------------------------------------------------
    def render(self):
        names = _param_names()
        table = Table(title="Latest readings in InfluxDB", expand=True)
        for col in ("site", "node", "parameter", "value", "flag", "age", "node", "fw heap peak"):
            table.add_column(col)
        url, db = self.stack.influx.url, self.stack.influx.database
        try:
            rows, states, alarms = latest_readings(url, db), node_states(url, db), alarm_events(url, db)
        except requests.RequestException as exc:
            rows, states, alarms = [], {}, []
            table.caption = f"InfluxDB query failed: {exc}"
        now_ms = time.time() * 1000
        for row in rows:
            short, unit = names.get(row["param"], (row["param"], ""))
            value = "—" if row.get("value") is None else f"{row['value']:.3g} {unit}"
            flag = row.get("flag") or "?"
            style = "green" if flag == "N" else "yellow"
            online = states.get((row["site"], row["node"]))
            proc = self.nodes.get((row["site"], row["node"]))
            heap = f"{proc.heap_peak / 1024:.0f} KiB" if proc and proc.heap_peak else "—"
            table.add_row(row["site"], row["node"], f"{short} {row['param']}", value,
                          f"[{style}]{flag} {FLAG_NAMES.get(flag, '')}[/{style}]",
                          f"{(now_ms - row['time']) / 1000:.1f} s",
                          "online" if online else ("offline" if online is not None else "—"), heap)
        if not rows:
            table.add_row("(waiting for the first records…)", *[""] * 7)
        events = [f"{time.strftime('%H:%M:%S', time.localtime(a['time'] / 1000))} {a['site']} {a['param']} "
                  f"[bold]{a['state']}[/bold] value {a['value']} limit {a['limit']}" for a in alarms]
        texts = [f"→ {num}: {text}" for num, text in (self.modem.texts() if self.modem else [])][-4:]
        t = time.time() - self.started
        staged = next(s for s in SITES if s.staged_breach)
        if t < self.breach_at_s:
            plan = f"staged exceedance at {staged.site} in {self.breach_at_s - t:.0f} s"
        elif self.breach_active(time.time()):
            plan = f"[red]staged exceedance at {staged.site} now (COD {staged.staged_breach[3]} mg/L)[/red]"
        else:
            plan = "staged exceedance over: the alarm clears after two clean readings"
        alarm_text = "\n".join(events or ["(no alarm yet)"]) + "\n\n[bold]SMS sent to the modem:[/bold]\n" + \
            "\n".join(texts or ["(none yet)"])
        info = self.stack.describe()
        gw_ok = self.gateway is not None and self.gateway.poll() is None
        where = (f"InfluxDB {info['influxdb']}  database [bold]{info['database']}[/bold]   "
                 f"MQTT broker {info['mqtt']}   run folder {info['run_dir']}\n"
                 f"gateway {'running' if gw_ok else '[red]stopped[/red]'} (gateway.log)   "
                 f"firmware processes alive {sum(p.alive() for p in self.nodes.values())}/{len(self.nodes)}   "
                 f"up {t:.0f} s   {plan}   Ctrl-C stops everything")
        return Group(table, Panel(alarm_text, title="alarms (InfluxDB `alarm`) and SMS"),
                     Panel(where, title="where the data lives"))


def run_demo(run_dir: Path, duration_s: float | None = None, poll_s: float = 2.0, day_s: float = 600.0,
             breach_at_s: float = 20.0, breach_for_s: float = 20.0, console: Console | None = None) -> dict:
    """Run until Ctrl-C (or for duration_s). Returns what was seen, for tests and the summary line."""
    console = console or Console()
    demo = Demo(run_dir, poll_s, day_s, breach_at_s, breach_for_s)
    summary: dict = {}
    stop = {"flag": False}
    old_term = signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("flag", True))
    try:
        demo.start(console)
        with Live(demo.render(), console=console, refresh_per_second=1, transient=False) as live:
            while not stop["flag"] and (duration_s is None or time.time() - demo.started < duration_s):
                time.sleep(1)
                demo.drive_values()
                live.update(demo.render())
        url, db = demo.stack.influx.url, demo.stack.influx.database
        summary["rows"] = latest_readings(url, db)
        summary["alarms"] = _query(url, db, 'SELECT * FROM "alarm" ORDER BY time')
        summary["quarantined"] = _query(url, db, 'SELECT * FROM "gateway" ORDER BY time DESC LIMIT 1')
    except KeyboardInterrupt:
        console.print("\n[bold]Ctrl-C: stopping everything…[/bold]")
    finally:
        signal.signal(signal.SIGTERM, old_term)
        summary["sms"] = demo.modem.texts() if demo.modem else []
        summary["heap_peak"] = {f"{s}/{n}": p.heap_peak for (s, n), p in demo.nodes.items()}
        summary["pids"] = demo.stop()
        console.print(f"stopped: firmware, gateway, simulators, modem, Mosquitto and InfluxDB "
                      f"(data and logs kept in {run_dir})")
    (Path(run_dir) / "summary.json").write_text(json.dumps(
        {k: v for k, v in summary.items() if k in ("sms", "heap_peak", "alarms")}, ensure_ascii=False, indent=1))
    return summary


__all__ = ["run_demo", "Demo", "SITES", "Site"]
