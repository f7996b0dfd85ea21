"""`edgemon node logs`: a node's health in one view. Its retained status (signature checked), its
last events as the gateway stored them in InfluxDB, then with --follow the live events and
statuses from the broker (each signature checked: a forged one is shown as refused, never as the
node's) and, from a board on USB (--port, pyserial) or the virtual board (--virtual), the lines the
board prints on its console."""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import time
from pathlib import Path

import click

BEIJING = dt.timezone(dt.timedelta(hours=8))


def when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def event_text(ts: int, kind: str, detail) -> str:
    shown = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False, separators=(",", ":"))
    return f"{when(ts)}  event {kind:<15} {shown}"


def _history(cfg, site: str, node: str, last: int) -> list[str]:
    """The last events the gateway wrote for the node, oldest first (InfluxDB v1 API)."""
    from .influx import InfluxError, InfluxV1Writer

    if cfg.influx_api != "v1":
        return ["(stored events: read with InfluxQL, which this command speaks to api = \"v1\" only)"]
    reader = InfluxV1Writer(cfg.influx_url, cfg.influx_db, cfg.influx_user, cfg.influx_password)
    try:
        rows = reader.query_rows(f"SELECT detail FROM event WHERE site = '{site}' AND node = '{node}' "
                                 f"GROUP BY kind ORDER BY time DESC LIMIT {int(last)}")
    except InfluxError as exc:
        return [f"(stored events not read: {exc})"]
    finally:
        reader.close()
    rows.sort(key=lambda r: r["time"])
    rows = rows[-last:]
    out = []
    for r in rows:
        try:
            detail = json.loads(r["detail"])
        except (TypeError, ValueError):
            detail = r["detail"]
        out.append(event_text(r["time"], r.get("kind", "?"), detail))
    return out or ["(no stored events)"]


def _console_virtual(folder: Path, lines: queue.Queue, stop: threading.Event):
    path = folder / "console.log"
    while not path.exists() and not stop.is_set():
        time.sleep(0.1)
    with open(path, "rb") as f:
        f.seek(0, 2)  # from now on, as a terminal opened now would show
        buf = b""
        while not stop.is_set():
            chunk = f.read(4096)
            if not chunk:
                time.sleep(0.1)
                continue
            buf += chunk
            *done, buf = buf.split(b"\n")
            for ln in done:
                lines.put("console  " + ln.decode("utf-8", "replace"))


def _console_serial(port: str, lines: queue.Queue, stop: threading.Event):
    import serial  # pyserial (mpremote's dependency)

    try:
        s = serial.Serial(port, 115200, timeout=0.2)
    except (serial.SerialException, OSError) as exc:
        lines.put(f"console  (cannot open {port}: {exc}; is it plugged in, in use by another program, "
                  f"group dialout?)")
        return
    buf = b""
    with s:
        while not stop.is_set():
            buf += s.read(256)
            *done, buf = buf.split(b"\n")
            for ln in done:
                lines.put("console  " + ln.decode("utf-8", "replace").rstrip("\r"))


@click.command("logs", epilog="""\b
Examples:
  edgemon node logs --config /etc/edgemon/gateway.toml qd-plant node01
  edgemon node logs --config gateway.toml qd-plant node01 --follow --port /dev/ttyUSB0
  edgemon node logs --config gateway.toml qd-plant node01 --follow --for 60 --virtual run/board1
Shows the node's retained status (signature checked), its last --last events stored by the gateway,
then with --follow (until Ctrl-C, or --for SECONDS) the live events and statuses from the broker,
each signature checked, and the board's console lines (--port over USB, --virtual DIR).
Times are Beijing time (UTC+8). Exit codes: 0 shown, 1 bad configuration, 2 bad usage, 5 a forged
status or event was seen.""")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="gateway.toml: the broker, InfluxDB and the keys file")
@click.option("--last", default=20, show_default=True, type=click.IntRange(1, 1000), help="stored events to show")
@click.option("--follow", "-f", is_flag=True, help="then show live events, statuses and console lines")
@click.option("--for", "for_s", type=click.FloatRange(min=0.1), default=None, help="stop following after SECONDS")
@click.option("--port", default=None, help="the board's USB serial port, for its console lines")
@click.option("--virtual", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="a virtual board's folder, for its console lines")
@click.argument("site")
@click.argument("node_name", metavar="NODE")
def logs_cmd(config: Path, last: int, follow: bool, for_s: float | None, port: str | None, virtual: Path | None,
             site: str, node_name: str):
    """The node's status, its last events, and (--follow) live events and console lines."""
    from .contract import ContractError, parse_event, split_signature
    from .keys import sign
    from .node_cli import _connect, _load_gateway, verified_status

    if port and virtual:
        raise click.UsageError("give --port or --virtual, not both")
    cfg = _load_gateway(config)
    key = (cfg.keys or {}).get(f"{site}/{node_name}")
    base = f"edge/v1/{site}/{node_name}"
    lines: queue.Queue = queue.Queue()
    forged = []

    def on_message(client, userdata, msg):
        payload = bytes(msg.payload)
        if msg.topic.endswith("/status"):
            try:
                st, signed = verified_status(payload, key)
            except ValueError as exc:
                forged.append(msg.topic)
                lines.put(f"REFUSED  status {exc}")
                return
            what = "retained" if msg.retain else "live"
            detail = "" if not st.online else (f", fw {st.fw}, up {st.up:g} s, {st.queue:g} waiting, clock {st.clk}, "
                                               f"heap free {st.heap:g} B")
            lines.put(f"status   {st.state}{detail} (boot {st.cn[0] if st.cn else '?'}; {signed}; {what})")
            return
        body, sig = split_signature(payload)
        if key is not None and (sig is None or sign(body, key) != sig.lower()):
            forged.append(msg.topic)
            lines.put(f"REFUSED  event {'unsigned' if sig is None else 'forged'}: not from the node whose key "
                      f"the gateway has")
            return
        try:
            ev = parse_event(payload)
        except ContractError as exc:
            lines.put(f"REFUSED  event unreadable: {exc}")
            return
        lines.put(event_text(ev.ts, ev.kind, ev.detail))

    client = _connect(cfg, "logs")
    client.on_message = on_message
    client.subscribe(base + "/status", qos=1)
    client.loop_start()
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 2.0
        got_status = False
        while time.monotonic() < deadline and not got_status:  # the retained status first
            try:
                ln = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            click.echo(ln)
            got_status = True
        if not got_status:
            click.echo(f"status   none on {base}/status (never connected, or cleared)")
        for ln in _history(cfg, site, node_name, last):
            click.echo(ln)
        if not follow:
            return
        client.subscribe(base + "/event", qos=1)
        if virtual or port:
            target = _console_virtual if virtual else _console_serial
            threading.Thread(target=target, args=(Path(virtual) if virtual else port, lines, stop), daemon=True).start()
        click.echo(f"following {base} (Ctrl-C to stop)")
        end = time.monotonic() + for_s if for_s else None
        while end is None or time.monotonic() < end:
            try:
                click.echo(lines.get(timeout=0.2))
            except queue.Empty:
                pass
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        client.loop_stop()
        client.disconnect()
        while not lines.empty():
            click.echo(lines.get())
    if forged:
        raise SystemExit(5)
