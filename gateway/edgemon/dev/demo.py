"""`make demo`: the whole system on this PC with simulated analyzers, and a live view of what reached InfluxDB.

Three sites (demo_sites.py): their analyzers are firmware profiles served by pymodbus buses, each node
is the real firmware (MicroPython unix port) signing its payloads, one gateway runs from a generated
gateway.toml with node keys, liveness and alarms, and SMS go to a GSM modem simulated on a
pseudo-terminal. Part-way through, the enterprise outfall's COD is pushed over its limit so an alarm,
its Chinese SMS and the clear show. Ctrl-C stops every process this started, by PID.
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live

from . import demo_view as view
from .demo_sites import SITES, Site
from .nodeproc import FirmwareProcess, profile_analyzer, profile_node_config
from .procutil import child_kwargs
from .bussim import BusSimulator
from .modemsim import ModemSimulator
from .platformsim import PlatformSimulator
from .stack import LocalStack

DUTY_PHONE = "+8613800000001"
# The nodes run as a board runs them: .mpy bytecode in a ROMFS image executed in place, in the
# ESP32's 64 KiB heap (-X heapsize=64k).
NODE_HEAP = "64k"
NODE_MODE = "romfs"
FIRST_RECORD_TIMEOUT_S = 60.0


# --- the files a technician and an operator would write ----------------------------------------------

PLATFORM_PW = "123456"


def demo_mn(k: int) -> str:
    """The demo sites' MNs: 24 hex digits, as an HJ 212-2025 platform assigns them."""
    return f"370200{k + 1:018X}"


def write_gateway_files(run_dir: Path, stack: LocalStack, keys: dict[str, str], modem_path: str,
                        poll_s: float, platform_port: int | None = None) -> Path:
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
        # Paths in gateway.toml are read relative to its own folder (run_dir).
        "[gateway]", 'id = "demo-gateway"', 'state_dir = "gateway"', "",
        "[mqtt]", f'host = "{stack.mosquitto.host}"', f"port = {stack.mosquitto.port}",
        f'username = "{stack.gateway_user}"', 'password_env = "EDGEMON_MQTT_PASSWORD"', "",
        "[influx]", 'api = "v1"', f'url = "{stack.influx.url}"', f'database = "{stack.influx.database}"', "",
        "[trust]", f'keys_file = "{keys_path.name}"', "require_signatures = true", "",
        "[liveness]", f"default_poll_s = {poll_s}", "silent_periods = 5", "",
        "[alarms]", 'config = "alarms.toml"', "",
        # the demo's minutes are computed 5 s after they end, so the platform sees them soon
        "[aggregates]", "close_after_s = 5", "",
    ] + sites_toml
    if platform_port is not None:  # the bureau's platform: the HJ 212 simulator on loopback
        gw += ["[uplink.platforms.demo-platform]", 'host = "127.0.0.1"', f"port = {platform_port}",
               "over_time_s = 5", "re_count = 3", "reconnect_s = 5", ""]
        for k, s in enumerate(SITES):
            gw += [f"[uplink.sites.{s.site}]", f'mn = "{demo_mn(k)}"', f'pw = "{PLATFORM_PW}"', 'st = "32"',
                   'platforms = ["demo-platform"]', "rtd_interval_s = 30", ""]
    path = run_dir / "gateway.toml"
    path.write_text("\n".join(gw), encoding="utf-8")
    return path


class Demo:
    """Everything the demo starts, so that stop() can always stop exactly that."""

    def __init__(self, run_dir: Path, poll_s: float, day_s: float, breach_at_s: float, breach_for_s: float,
                 first_record_timeout_s: float = FIRST_RECORD_TIMEOUT_S):
        # Resolved once: the gateway reads its files relative to gateway.toml and the firmware runs
        # in firmware/, so no path handed to a child may depend on our working directory.
        self.run_dir = Path(run_dir).resolve()
        self.poll_s, self.day_s = poll_s, day_s
        self.breach_at_s, self.breach_for_s = breach_at_s, breach_for_s
        self.first_record_timeout_s = first_record_timeout_s
        self.stack = LocalStack(self.run_dir)
        self.modem: ModemSimulator | None = None
        self.buses: dict[tuple[str, str], BusSimulator] = {}
        self.nodes: dict[tuple[str, str], FirmwareProcess] = {}
        self.gateway: subprocess.Popen | None = None
        self.platform: PlatformSimulator | None = None
        self.grafana = None  # dashboards.grafana_local.LocalGrafana
        self.started = time.time()
        self.first_record_at: float | None = None
        self.phase = {(s.site, a.name, p): random.uniform(0, 2 * math.pi)
                      for s in SITES for n in s.nodes for a in n.analyzers for p in a.signals}
        self.totals: dict[tuple[str, str, str], dict[str, float]] = {}  # running totalisers per analyzer
        self._driven_at: float | None = None

    def start(self, console: Console):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        console.print("starting Mosquitto and InfluxDB…")
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
        self.platform = PlatformSimulator().start()
        console.print(f"HJ 212 platform simulator (the bureau's side) on 127.0.0.1:{self.platform.port}")
        gw_toml = write_gateway_files(self.run_dir, self.stack, keys, self.modem.path, self.poll_s,
                                      self.platform.port)
        self.gateway_toml = gw_toml
        from ..dashboards.grafana_local import prepare, start_if_installed  # the inspectors' dashboards
        self.grafana = start_if_installed(prepare(self.run_dir, gw_toml, self.stack.influx.url,
                                                  self.stack.influx.database), self.run_dir)
        for text in self.grafana.lines():
            console.print(text, soft_wrap=True, markup=False, highlight=False)
        env = dict(os.environ, EDGEMON_MQTT_PASSWORD=self.stack.gateway_password)
        with open(self.run_dir / "gateway.log", "a") as gw_log:
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
                                       heapsize=NODE_HEAP, mode=NODE_MODE)
                self.nodes[(s.site, n.node)] = proc.start()
                console.print(f"  {s.site} ({s.label}) {n.node}: {len(n.analyzers)} analyzer(s) on "
                              f"127.0.0.1:{bus.port} ({'RTU over TCP' if n.framing == 'rtu' else 'Modbus TCP'}), "
                              f"firmware pid {proc.proc.pid} (ROMFS, heap {NODE_HEAP})")
        self._write_processes()
        self.started = time.time()

    def _write_processes(self):
        """run_dir/processes.json: what runs where, for an operator (and the tests)."""
        doc = {"demo": os.getpid(), "gateway": self.gateway.pid if self.gateway else None,
               "mosquitto": self.stack.mosquitto.proc.pid if self.stack.mosquitto.proc else None,
               "influxd": self.stack.influx.proc.pid if self.stack.influx.proc else None,
               "nodes": {f"{s}/{n}": p.proc.pid for (s, n), p in self.nodes.items() if p.proc},
               **self.stack.describe()}
        (self.run_dir / "processes.json").write_text(json.dumps(doc, indent=1, default=str))

    def breach_active(self, now: float) -> bool:
        t = now - self.started
        return self.breach_at_s <= t < self.breach_at_s + self.breach_for_s

    def drive_values(self):
        """Move every simulated value along its daily cycle, run the totalisers on in real time, and
        hold the staged breach while it lasts."""
        now = time.time()
        dt = 0.0 if self._driven_at is None else now - self._driven_at
        self._driven_at = now
        for s in SITES:
            for n in s.nodes:
                bus = self.buses[(s.site, n.node)]
                for a in n.analyzers:
                    phase = {p: self.phase[(s.site, a.name, p)] for p in a.signals}
                    totals = self.totals.setdefault((s.site, n.node, a.name), {})
                    for param, v in a.step(now, dt, self.day_s, phase, totals).items():
                        bus.set_value(a.unit, param, v)
            if s.staged_breach and self.breach_active(now):
                node, unit, param, value = s.staged_breach
                self.buses[(s.site, node)].set_value(unit, param, value)

    def failure(self, rows_seen: bool) -> str | None:
        """Why the demo cannot go on (a process died, or no record reached InfluxDB in time), with the
        line of the log that explains it; None while all is well."""
        rd = self.run_dir
        if self.gateway is not None and self.gateway.poll() is not None:
            why = view.explaining_line(rd / "gateway.log")
            return (f"gateway {view.exit_text(self.gateway.returncode)}"
                    + (f": {why}" if why else "") + f" (see {rd / 'gateway.log'})")
        for (site, node), p in self.nodes.items():
            if not p.alive():
                why = view.explaining_line(p.log_path)
                return (f"firmware {site}/{node} {view.exit_text(p.proc.returncode if p.proc else None)}"
                        + (f": {why}" if why else "") + f" (see {p.log_path})")
        for name, proc in (("Mosquitto", self.stack.mosquitto.proc), ("InfluxDB", self.stack.influx.proc)):
            if proc is not None and proc.poll() is not None:
                return f"{name} {view.exit_text(proc.returncode)} (see its log under {rd})"
        if rows_seen:
            self.first_record_at = self.first_record_at or time.time()
        elif time.time() - self.started > self.first_record_timeout_s:
            hints = [h for h in [view.explaining_line(rd / "gateway.log"),
                                 *(view.explaining_line(p.log_path) for p in self.nodes.values())]
                     if h and view._ERROR.search(h)]
            return (f"no record reached InfluxDB within {self.first_record_timeout_s:.0f} s"
                    + (f": {hints[0]}" if hints else "; gateway.log and nodes/*/*/node.log say no more"))
        return None

    def plan_text(self) -> str:
        t = time.time() - self.started
        staged = next(s for s in SITES if s.staged_breach)
        if t < self.breach_at_s:
            return f"staged exceedance at {staged.site} in {self.breach_at_s - t:.0f} s"
        if self.breach_active(time.time()):
            return f"staged exceedance at {staged.site} now (COD {staged.staged_breach[3]} mg/L)"
        return "staged exceedance over: the alarm clears after two clean readings"

    def platform_counts(self) -> dict[str, dict[str, int]]:
        """What the platform simulator accepted: site -> CN -> packets."""
        by_mn = {demo_mn(k): s.site for k, s in enumerate(SITES)}
        out: dict[str, dict[str, int]] = {}
        for r in self.platform.received if self.platform else []:
            site = by_mn.get(r.packet.mn, r.packet.mn)
            out.setdefault(site, {})[r.packet.cn] = out.get(site, {}).get(r.packet.cn, 0) + 1
        return out

    def daily_report(self) -> list[Path]:
        """Today's compliance report of every site (so far), under run_dir/reports."""
        from datetime import datetime, timedelta, timezone
        from ..report.daily import write_daily_reports
        today = datetime.now(timezone(timedelta(hours=8))).date()
        # the report reads gateway.toml whole, which names the broker password's variable
        os.environ.setdefault("EDGEMON_MQTT_PASSWORD", self.stack.gateway_password)
        return write_daily_reports(self.gateway_toml, today, self.run_dir / "reports")

    def snapshot(self) -> view.Snapshot:
        gw = view.exit_text(self.gateway.poll() if self.gateway else None)
        snap = view.Snapshot.take(
            self.stack.influx.url, self.stack.influx.database,
            sms=self.modem.texts() if self.modem else [],
            heap_peak={k: p.heap_peak for k, p in self.nodes.items()},
            uptime_s=time.time() - self.started, plan=self.plan_text(), gateway=gw,
            nodes_alive=(sum(p.alive() for p in self.nodes.values()), len(self.nodes)),
            where=self.stack.describe())
        snap.failure = self.failure(bool(snap.rows))
        return snap

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
        if self.platform:
            self.platform.stop()
        if self.grafana:
            self.grafana.stop()
        if self.modem:
            self.modem.stop()
        pids += [p.pid for p in (self.stack.mosquitto.proc, self.stack.influx.proc) if p]
        self.stack.stop()
        return pids


def heap_limit_bytes() -> int:
    return int(NODE_HEAP.rstrip("k")) * 1024


def run_demo(run_dir: Path, duration_s: float | None = None, poll_s: float = 2.0, day_s: float = 600.0,
             breach_at_s: float = 20.0, breach_for_s: float = 20.0, console: Console | None = None,
             first_record_timeout_s: float = FIRST_RECORD_TIMEOUT_S) -> dict:
    """Run until Ctrl-C / SIGINT / SIGTERM (or for duration_s), or until something fails. Returns what
    was seen (also written to run_dir/summary.json); summary["failure"] is the reason when it failed.
    On a terminal it shows a live view; otherwise (piped) it prints plain progress lines."""
    console = console or Console()
    demo = Demo(run_dir, poll_s, day_s, breach_at_s, breach_for_s, first_record_timeout_s)
    summary: dict = {"failure": None, "stopped_by": None}
    stop: dict = {"signal": None}

    def on_signal(signum, _frame):
        if stop["signal"] is not None:  # asked twice: stop now, whatever we were doing
            raise KeyboardInterrupt
        stop["signal"] = signal.Signals(signum).name

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    snap = None
    try:
        demo.start(console)
        def line(text: str):  # one log line per event: no wrapping, no markup
            console.print(text, soft_wrap=True, markup=False, highlight=False)

        plain = None if console.is_terminal else view.PlainView(line)
        if plain:
            w = demo.stack.describe()
            line(f"InfluxDB {w['influxdb']} database {w['database']}; MQTT broker {w['mqtt']}; "
                          f"run folder {w['run_dir']}; no terminal: progress as plain lines, Ctrl-C stops")

        def keep_going():
            return (stop["signal"] is None and (snap is None or snap.failure is None)
                    and (duration_s is None or time.time() - demo.started < duration_s))

        if plain:
            while keep_going():
                time.sleep(1)
                demo.drive_values()
                snap = demo.snapshot()
                plain.update(snap)
            if snap is not None:
                plain.update(snap, force=True)
        else:
            snap = demo.snapshot()
            with Live(view.live_view(snap, heap_limit_bytes()), console=console, refresh_per_second=1) as live:
                while keep_going():
                    time.sleep(1)
                    demo.drive_values()
                    snap = demo.snapshot()
                    live.update(view.live_view(snap, heap_limit_bytes()))
        summary["failure"] = snap.failure if snap else None
        summary["stopped_by"] = stop["signal"] or ("failure" if summary["failure"] else "duration")
    except KeyboardInterrupt:
        summary["stopped_by"] = "interrupt"
    except Exception as exc:  # a start-up step failed: say which, stop what did start
        summary["failure"] = f"{type(exc).__name__}: {exc}"
        summary["stopped_by"] = "failure"
    finally:
        if stop["signal"] or summary["stopped_by"] == "interrupt":
            console.print(f"\n{stop['signal'] or 'Ctrl-C'}: stopping everything…")
        try:
            url, db = demo.stack.influx.url, demo.stack.influx.database
            summary["rows"] = view.latest_readings(url, db)
            summary["alarms"] = view.query(url, db, 'SELECT * FROM "alarm" ORDER BY time')
        except Exception as exc:  # InfluxDB never started or already gone: the summary says so
            summary.setdefault("rows", [])
            summary.setdefault("alarms", [])
            summary["query_error"] = str(exc)
        summary["sms"] = demo.modem.texts() if demo.modem else []
        summary["platform"] = demo.platform_counts()
        summary["platform_rejected"] = len(demo.platform.rejected) if demo.platform else 0
        for site, cns in sorted(summary["platform"].items()):
            console.print(f"HJ 212 platform received from {site}: " + ", ".join(
                f"{n} x CN {cn}" for cn, n in sorted(cns.items())), soft_wrap=True)
        try:
            summary["reports"] = [str(p) for p in demo.daily_report()] if summary.get("rows") else []
            for path in summary["reports"]:
                if path.endswith(".pdf"):
                    console.print(f"daily compliance report: {path}", soft_wrap=True)
        except Exception as exc:  # noqa: BLE001 - the report must not hide the rest of the summary
            summary["report_error"] = f"{type(exc).__name__}: {exc}"
            console.print(f"daily report failed: {summary['report_error']}", soft_wrap=True)
        summary["grafana"] = ({"provisioning": str(demo.grafana.provisioning), "url": demo.grafana.url}
                              if demo.grafana else None)
        summary["heap_peak"] = {f"{s}/{n}": p.heap_peak for (s, n), p in demo.nodes.items()}
        summary["heap_limit"] = heap_limit_bytes()
        summary["pids"] = demo.stop()
        for sig, handler in old.items():
            signal.signal(sig, handler)
        demo.run_dir.mkdir(parents=True, exist_ok=True)
        (demo.run_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1, default=str))
        console.print(f"stopped: firmware, gateway, simulators, modem, Mosquitto and InfluxDB "
                      f"(data and logs kept in {demo.run_dir}; summary.json)", soft_wrap=True)
    return summary


__all__ = ["run_demo", "Demo", "SITES", "Site"]
