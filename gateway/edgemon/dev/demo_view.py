"""What the demo shows: its queries against InfluxDB, the live view (a terminal) and the plain
progress lines (output piped, e.g. `make demo | tee log`), and the line of a log that explains a
failure. Times are Beijing time (UTC+8), the zone the SMS texts use."""

from __future__ import annotations

import re
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import requests
from rich.console import Group
from rich.panel import Panel
from rich.table import Table

BEIJING = ZoneInfo("Asia/Shanghai")
TZ_LABEL = "Beijing time, UTC+8"
FLAG_NAMES = {"N": "normal", "F": "stopped", "M": "maintenance", "S": "manual", "D": "fault",
              "C": "calibration", "T": "over range", "B": "no answer"}
PARAMS_FILE = Path(__file__).parents[1] / "data" / "params.toml"


def param_names() -> dict[str, tuple[str, str, str]]:
    """code -> (Chinese name, short name, unit), from data/params.toml (the names the SMS use)."""
    doc = tomllib.loads(PARAMS_FILE.read_text("utf-8"))
    return {code: (v.get("name", code), v.get("short", ""), v.get("unit", "")) for code, v in doc.items()}


def beijing(ms: float, fmt: str = "%H:%M:%S") -> str:
    return datetime.fromtimestamp(ms / 1000, BEIJING).strftime(fmt)


def fmt_value(v: float | None) -> str:
    """Readable at a glance: 57.3, 7.21, 0.123, 152345.6 (a totaliser is not 1.52e+05)."""
    if v is None:
        return "—"
    return f"{v:.1f}" if abs(v) >= 100 else f"{v:.3g}"


# --- queries ------------------------------------------------------------------------------------

def query(influx_url: str, database: str, q: str) -> list[dict]:
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
    rows = query(influx_url, database, 'SELECT * FROM "reading" WHERE time > now() - 1h '
                                       'GROUP BY "site","node","param" ORDER BY time DESC LIMIT 1')
    return sorted(rows, key=lambda r: (r["site"], r["node"], r["param"]))


def node_states(influx_url: str, database: str) -> dict[tuple[str, str], bool]:
    rows = query(influx_url, database, 'SELECT last("online") AS online FROM "node" GROUP BY "site","node"')
    return {(r["site"], r["node"]): bool(r["online"]) for r in rows}


def alarm_events(influx_url: str, database: str, limit: int = 6) -> list[dict]:
    return query(influx_url, database, f'SELECT * FROM "alarm" ORDER BY time DESC LIMIT {int(limit)}')


# --- why something failed -----------------------------------------------------------------------

_ERROR = re.compile(r"error|exception|failed|refused|not found|denied|cannot", re.IGNORECASE)


def explaining_line(path: Path) -> str | None:
    """The first line of a log that says what went wrong (an error line, or the exception that
    ended a traceback), else its last line; None for a missing or empty log."""
    try:
        lines = [ln.rstrip() for ln in Path(path).read_text("utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    for i, ln in enumerate(lines):
        if ln.startswith("Traceback"):
            rest = [x for x in lines[i + 1:] if not x.startswith((" ", "\t"))]
            return rest[0] if rest else ln
        if _ERROR.search(ln):
            return ln
    return lines[-1] if lines else None


def exit_text(code: int | None) -> str:
    if code is None:
        return "running"
    return f"killed by signal {-code}" if code < 0 else f"exited with code {code}"


# --- one look at the system, shared by both views -------------------------------------------------

@dataclass
class Snapshot:
    rows: list[dict] = field(default_factory=list)
    states: dict = field(default_factory=dict)
    alarms: list[dict] = field(default_factory=list)
    query_error: str | None = None
    sms: list[tuple[str, str]] = field(default_factory=list)
    heap_peak: dict[tuple[str, str], int] = field(default_factory=dict)
    uptime_s: float = 0.0
    plan: str = ""
    gateway: str = "running"
    nodes_alive: tuple[int, int] = (0, 0)
    where: dict = field(default_factory=dict)
    failure: str | None = None

    @classmethod
    def take(cls, influx_url: str, database: str, **kw) -> "Snapshot":
        snap = cls(**kw)
        try:
            snap.rows = latest_readings(influx_url, database)
            snap.states = node_states(influx_url, database)
            snap.alarms = alarm_events(influx_url, database)
        except requests.RequestException as exc:
            snap.query_error = f"InfluxDB query failed: {exc}"
        return snap


def live_view(s: Snapshot, heap_limit: int):
    names = param_names()
    table = Table(title="Latest readings in InfluxDB", expand=True)
    for col in ("site", "node", "parameter", "value", "flag", "age", "node", f"fw heap peak (of {heap_limit // 1024} KiB)"):
        table.add_column(col)
    if s.query_error:
        table.caption = s.query_error
    now_ms = time.time() * 1000
    for row in s.rows:
        zh, short, unit = names.get(row["param"], ("?", "", ""))
        flag = row.get("flag") or "?"
        style = "green" if flag == "N" else "yellow"
        online = s.states.get((row["site"], row["node"]))
        peak = s.heap_peak.get((row["site"], row["node"]))
        table.add_row(row["site"], row["node"], f"{zh} {short} {row['param']}",
                      f"{fmt_value(row.get('value'))} {unit}".strip(),
                      f"[{style}]{flag} {FLAG_NAMES.get(flag, '')}[/{style}]",
                      f"{(now_ms - row['time']) / 1000:.1f} s",
                      "online" if online else ("offline" if online is not None else "—"),
                      f"{peak / 1024:.1f} KiB" if peak else "—")
    if not s.rows:
        table.add_row("(waiting for the first records…)", *[""] * 7)
    events = [alarm_line(a, names) for a in s.alarms]
    texts = [f"→ {num}: {text}" for num, text in s.sms][-4:]
    body = "\n".join(events or ["(no alarm yet)"]) + "\n\n[bold]SMS sent to the modem:[/bold]\n" + \
        "\n".join(texts or ["(none yet)"])
    w = s.where
    where = (f"InfluxDB {w.get('influxdb')}  database [bold]{w.get('database')}[/bold]   "
             f"MQTT broker {w.get('mqtt')}   run folder {w.get('run_dir')}\n"
             f"gateway {s.gateway if s.gateway == 'running' else '[red]' + s.gateway + '[/red]'} (gateway.log)   "
             f"firmware processes alive {s.nodes_alive[0]}/{s.nodes_alive[1]}   "
             f"up {s.uptime_s:.0f} s   {s.plan}   Ctrl-C stops everything")
    parts = [table, Panel(body, title=f"alarms (InfluxDB `alarm`; {TZ_LABEL}, as in the SMS) and SMS"),
             Panel(where, title="where the data lives")]
    if s.failure:
        parts.append(Panel(f"[bold red]{s.failure}[/bold red]", title="the demo stopped: something failed"))
    return Group(*parts)


def alarm_line(a: dict, names: dict) -> str:
    zh = names.get(a.get("param"), (a.get("param"), "", ""))[0]
    return (f"{beijing(a['time'])} {a['site']} {a.get('node', '')} {zh} {a.get('param')} "
            f"{a['state']} value {a.get('value')} limit {a.get('limit')}")


class PlainView:
    """Progress as plain lines for a pipe or a log file: a status line every `every_s`, and each new
    alarm transition and SMS once, as it appears."""

    def __init__(self, print_line, every_s: float = 5.0):
        self.print = print_line
        self.every_s = every_s
        self._last = 0.0
        self._seen_alarms: set = set()
        self._seen_sms = 0

    def update(self, s: Snapshot, force: bool = False):
        names = param_names()
        for a in reversed(s.alarms):
            key = (a["time"], a["site"], a.get("param"), a["state"])
            if key not in self._seen_alarms:
                self._seen_alarms.add(key)
                self.print(f"alarm {alarm_line(a, names)} ({TZ_LABEL})")
        for num, text in s.sms[self._seen_sms:]:
            self.print(f"SMS to {num}: {text}")
        self._seen_sms = len(s.sms)
        if s.failure:
            self.print(f"FAILED: {s.failure}")
        now = time.monotonic()
        if force or now - self._last >= self.every_s:
            self._last = now
            sites = {r["site"] for r in s.rows}
            peaks = [p for p in s.heap_peak.values() if p]
            self.print(f"{beijing(time.time() * 1000)} ({TZ_LABEL}) up {s.uptime_s:.0f} s: "
                       f"{len(s.rows)} parameters from {len(sites)} sites in InfluxDB; gateway {s.gateway}; "
                       f"firmware {s.nodes_alive[0]}/{s.nodes_alive[1]} alive"
                       + (f", heap peak up to {max(peaks) / 1024:.1f} KiB" if peaks else "")
                       + (f"; {s.query_error}" if s.query_error else "") + f"; {s.plan}")
