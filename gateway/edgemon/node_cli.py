"""`edgemon node ...`: the technician's and operator's commands for one node; this module has the
group and the commands that talk to a running node over MQTT (cmd, status, probe), and
node_setup_cli.py those that prepare one (provision, config, build, flash). `node cmd` sends a
signed command on the node's cmd topic and waits for its signed ack (commands.py has the payloads).

Exit codes of `node cmd` (for scripts): 0 the node ran it; 1 bad configuration (gateway.toml, keys); 2 bad usage;
3 the node refused it (the reason is printed); 4 no ack in time (node offline, or no subscription)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import click

EXIT_REFUSED = 3
EXIT_NO_ACK = 4


@click.group()
def node():
    """Commands for one node (site/node as in its topics)."""


def _load_gateway(config: Path):
    from .config import load
    from .configschema import ConfigError, report

    try:
        return load(config).gateway
    except ConfigError as exc:
        raise click.ClickException(report(exc)) from None


def _connect(cfg, suffix: str):
    import paho.mqtt.client as paho

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"{cfg.client_id}-{suffix}-{os.getpid()}",
                         clean_session=True)
    from .mqtt_link import apply_credentials

    apply_credentials(client, cfg)
    try:
        client.connect(cfg.mqtt_host, cfg.mqtt_port, keepalive=30)
    except OSError as exc:
        raise click.ClickException(f"broker {cfg.mqtt_host}:{cfg.mqtt_port} (gateway.toml [mqtt]): {exc}") from None
    return client


def _send_command(cfg, config: Path, site: str, node_name: str, op: str, cargs: dict, expires: float, wait: float):
    """Send one signed command and wait for its ack: (Ack, id); exits 4 when none came. Journalled
    in <state_dir>/commands.jsonl (sent, then the ack or its absence)."""
    from . import commands as c
    from .contract import ContractError

    key = (cfg.keys or {}).get(f"{site}/{node_name}")
    if key is None:
        raise click.ClickException(f"{config}: no key for {site}/{node_name} in trust.keys_file; "
                                   f"fix: add the node's key there (commands are signed with it)")
    log = c.CommandLog(cfg.state_dir)
    now = int(time.time() * 1000)
    cid = c.next_id(log.last_id(site, node_name), now)
    payload = c.build_command(cid, op, cargs, now + int(expires * 1000), key)
    got: list = []
    forged: list[str] = []
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(client, userdata, msg):
        try:
            a = c.parse_ack(msg.payload, key)
        except ContractError as exc:
            forged.append(str(exc))
            return
        if a.id == cid:
            got.append(a)
            done.set()

    client = _connect(cfg, "cmd")
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.subscribe(c.ack_topic(site, node_name), qos=1)
    client.loop_start()
    try:
        if not subscribed.wait(10):
            raise click.ClickException(f"broker {cfg.mqtt_host}:{cfg.mqtt_port}: no SUBACK for "
                                       f"{c.ack_topic(site, node_name)} within 10 s")
        log.append({"t": now, "site": site, "node": node_name, "id": cid, "cmd": op, "args": cargs,
                    "exp": now + int(expires * 1000), "sent": True})
        client.publish(c.cmd_topic(site, node_name), payload, qos=1).wait_for_publish(10)
        done.wait(wait)
    finally:
        client.loop_stop()
        client.disconnect()
    for reason in forged:
        click.echo(f"ignored an ack on {c.ack_topic(site, node_name)}: {reason}", err=True)
    if not got:
        log.append({"t": int(time.time() * 1000), "site": site, "node": node_name, "id": cid, "ack": None})
        click.echo(f"{site}/{node_name}: no ack for {op} (id {cid}) within {wait:g} s: is the node online "
                   f"(edgemon node status) and subscribed to {c.cmd_topic(site, node_name)}?", err=True)
        sys.exit(EXIT_NO_ACK)
    a = got[0]
    log.append({"t": int(time.time() * 1000), "site": site, "node": node_name, "id": cid, "ack": {
        "ok": a.ok, "ts": a.ts, "result": a.result, "err": a.err}})
    return a, cid


@node.command("cmd", epilog="""\b
Examples:
  edgemon node cmd --config /etc/edgemon/gateway.toml qd-plant node01 time
  edgemon node cmd --config gateway.toml qd-plant node01 time --arg sync=true
  edgemon node cmd --config gateway.toml qd-plant node01 reboot --expires 30 --wait 60
Ops: time (the node's clock; sync=true runs NTP first), status (retained status now), reboot.
Exit codes: 0 done, 1 bad configuration, 2 bad usage, 3 refused by the node, 4 no ack in time.""")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="gateway.toml: the broker, the keys file, the state folder (commands.jsonl)")
@click.argument("site")
@click.argument("node_name", metavar="NODE")
@click.argument("op")
@click.option("--arg", "args", multiple=True, metavar="KEY=VALUE",
              help="an argument of the op (JSON values: true, 3, \"text\"); repeatable")
@click.option("--expires", default=60.0, show_default=True, type=click.FloatRange(min=1),
              help="seconds the command stays valid; the node refuses it after")
@click.option("--wait", default=30.0, show_default=True, type=click.FloatRange(min=0.1),
              help="seconds to wait for the node's ack")
@click.option("--json", "as_json", is_flag=True, help="print the ack as JSON")
def cmd(config: Path, site: str, node_name: str, op: str, args: tuple[str, ...], expires: float, wait: float,
        as_json: bool):
    """Send a signed command to SITE/NODE and wait for its ack."""
    from . import commands as c
    from .contract import ID_RE

    for what, value in (("SITE", site), ("NODE", node_name)):
        if not ID_RE.fullmatch(value):
            raise click.UsageError(f"{what} {value!r}: letters, digits, _ and - (1-64 characters)")
    if op not in c.OPS:
        raise click.UsageError(f"op {op!r}: one of {', '.join(sorted(c.OPS))}")
    try:
        cargs = c.parse_args(args)
    except ValueError as exc:
        raise click.UsageError(f"--arg {exc}") from None
    cfg = _load_gateway(config)
    a, cid = _send_command(cfg, config, site, node_name, op, cargs, expires, wait)
    if as_json:
        click.echo(json.dumps({"id": cid, "cmd": op, "ok": a.ok, "ts": a.ts, "result": a.result, "err": a.err},
                              ensure_ascii=False))
    elif a.ok:
        click.echo(f"{site}/{node_name}: {op} done (id {cid}): {json.dumps(a.result, ensure_ascii=False)}")
    if not a.ok:
        if not as_json:
            click.echo(f"{site}/{node_name}: {op} refused (id {cid}): {a.err}", err=True)
        sys.exit(EXIT_REFUSED)


def verified_status(payload: bytes, key: bytes | None):
    """(Status, "signature ok" | "unsigned") for a status payload; ValueError saying what is wrong
    when it is not signed with `key` (given) or is not a status."""
    from .contract import ContractError, parse_status, split_signature
    from .keys import sign

    signed = "unsigned"
    if key is not None:
        body, sig = split_signature(payload)
        if sig is None or sign(body, key) != sig.lower():
            raise ValueError(f"is {'unsigned' if sig is None else 'forged'}: not from the node whose key the "
                             f"gateway has")
        signed = "signature ok"
    try:
        return parse_status(payload), signed
    except ContractError as exc:
        raise ValueError(f"is unreadable: {exc}") from None


@node.command("status", epilog="""\b
Examples:
  edgemon node status --config /etc/edgemon/gateway.toml qd-plant node01
  edgemon node status --config gateway.toml qd-plant node01 --json
Reads the node's retained status from the broker and checks its signature with the node's key.
Exit codes: 0 online, 1 bad configuration, 2 bad usage, 3 offline (its last will or clean stop),
4 no status on the broker (never connected, or the retained status was cleared),
5 a status whose signature does not match (not from this node).""")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="gateway.toml: the broker and the keys file")
@click.argument("site")
@click.argument("node_name", metavar="NODE")
@click.option("--wait", default=5.0, show_default=True, type=click.FloatRange(min=0.1),
              help="seconds to wait for the retained status")
@click.option("--json", "as_json", is_flag=True, help="print the status as JSON")
def status_cmd(config: Path, site: str, node_name: str, wait: float, as_json: bool):
    """The node's retained status (online/offline, firmware, uptime, queue, clock, heap), signature checked."""
    cfg = _load_gateway(config)
    key = (cfg.keys or {}).get(f"{site}/{node_name}")
    topic = f"edge/v1/{site}/{node_name}/status"
    got: list[bytes] = []
    done = threading.Event()

    def on_message(client, userdata, msg):
        got.append(msg.payload)
        done.set()

    client = _connect(cfg, "status")
    client.on_message = on_message
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        done.wait(wait)
    finally:
        client.loop_stop()
        client.disconnect()
    if not got:
        click.echo(f"{site}/{node_name}: no status on {topic} within {wait:g} s (never connected?)", err=True)
        sys.exit(EXIT_NO_ACK)
    try:
        st, signed = verified_status(got[0], key)
    except ValueError as exc:
        click.echo(f"{site}/{node_name}: the status on {topic} {exc}", err=True)
        sys.exit(5)
    info = {"state": st.state, "fw": st.fw, "up_s": st.up, "queue": st.queue, "clk": st.clk, "heap_free": st.heap,
            "rssi": st.rssi, "cn": list(st.cn) if st.cn else None, "signed": signed}
    if as_json:
        click.echo(json.dumps(info))
    else:
        click.echo(f"{site}/{node_name}: {st.state}" + ("" if not st.online else
                   f", fw {st.fw}, up {st.up:g} s, {st.queue:g} records waiting, clock {st.clk}, "
                   f"heap free {st.heap:g} B") + f" (boot {st.cn[0] if st.cn else '?'}; {signed})")
    sys.exit(0 if st.online else EXIT_REFUSED)


@node.command("probe", epilog="""\b
Examples:
  edgemon node probe --config /etc/edgemon/gateway.toml qd-plant node01
  edgemon node probe --config gateway.toml --alarms alarms.toml qd-plant node01 --analyzer cod --all-orders
  edgemon node probe --config gateway.toml qd-plant node01 --scan --units 1-32 --bauds 9600,19200
  edgemon node probe --port /dev/ttyUSB0 qd-plant node01   (over USB: no network, no gateway.toml)
Asks the node (a signed `probe` command) to read its analyzers now and shows, per parameter, the raw
registers in hex, the decoded value, its flag and unit, and the limit the alarms will check it
against (with --alarms). --all-orders also reads the same registers as every type and word/byte
order: the line that shows the value the analyzer's display shows names the profile's type and order.
--scan asks instead who answers on the analyzer's bus, at each unit id (and baud rate, on a UART bus).
--port/--virtual: over the board's USB link instead of the broker: the node is stopped, the board
reads its analyzers with its own code, and is reset into the node after.
Exit codes: 0 read, 1 bad configuration, 2 bad usage, 3 refused by the node, 4 no answer.""")
@click.option("--config", "config", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="gateway.toml: the broker and the keys file (not needed with --port/--virtual)")
@click.option("--alarms", "alarms_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="alarms.toml: show each parameter's limit for this site")
@click.argument("site")
@click.argument("node_name", metavar="NODE")
@click.option("--analyzer", default=None, help="only this analyzer (its name in the node config)")
@click.option("--all-orders", is_flag=True, help="the registers read as every type and word/byte order")
@click.option("--wait", default=30.0, show_default=True, type=click.FloatRange(min=0.1))
@click.option("--json", "as_json", is_flag=True, help="print the rows as JSON")
@click.option("--port", default=None, help="over the board's USB link instead (mpremote), e.g. /dev/ttyUSB0")
@click.option("--virtual", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="over the virtual board's link instead (edgemon.dev.virtualboard DIR)")
@click.option("--scan", is_flag=True, help="instead: who answers on the analyzer's bus (unit ids, bauds)")
@click.option("--units", default="1-247", show_default=True, help="with --scan: the unit ids tried")
@click.option("--bauds", default=None, help="with --scan, a UART bus: baud rates tried, e.g. 9600,19200")
@click.option("--scan-timeout-ms", default=100, show_default=True, type=click.IntRange(20, 2000),
              help="with --scan: how long each unit id has to answer")
def probe_cmd(config: Path, alarms_path: Path | None, site: str, node_name: str, analyzer: str | None,
              all_orders: bool, wait: float, as_json: bool, port: str | None, virtual: Path | None, scan: bool,
              units: str, bauds: str | None, scan_timeout_ms: int):
    """Read the node's analyzers now: raw registers, decoded values, flags, units, limits."""
    from . import probeview as pv
    from .alarms.messages import PARAMS

    if port or virtual:
        from .usbprobe import run_over_link

        result, cid = run_over_link(port, virtual, analyzer), "USB"
    else:
        result, cid = None, None
    if result is None and config is None:
        raise click.UsageError("--config gateway.toml (over the broker), or --port/--virtual (over USB)")
    cfg = _load_gateway(config) if result is None else None
    if scan and result is None:
        from .probe_scan import parse_bauds, parse_units, run_scan

        return run_scan(cfg, config, site, node_name, analyzer, parse_units(units), parse_bauds(bauds),
                        scan_timeout_ms, as_json)
    limits: dict[str, str] = {}
    if alarms_path is not None:
        from .alarms.config import load as load_alarms
        from .configschema import ConfigError, report

        try:
            sc = load_alarms(alarms_path).sites.get(site)
        except ConfigError as exc:
            raise click.ClickException(report(exc)) from None
        if sc is None:
            click.echo(f"{alarms_path}: no [sites.{site}]: no limits shown", err=True)
        else:
            limits = {p: pv.limit_text(lim) for p, lim in sc.site.limits.items()}
    if result is None:
        a, cid = _send_command(cfg, config, site, node_name, "probe", {"analyzer": analyzer} if analyzer else {},
                               60.0, wait)
        if not a.ok:
            click.echo(f"{site}/{node_name}: probe refused (id {cid}): {a.err}", err=True)
            sys.exit(EXIT_REFUSED)
        result = a.result
    units = {code: str(v.get("unit", "")) for code, v in PARAMS.items()}
    table = pv.rows(result or {}, units, limits)
    if all_orders:
        for r in table:
            r["all_orders"] = pv.all_orders(r["regs"]) if r["regs"] else {}
    if as_json:
        click.echo(json.dumps(table, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{site}/{node_name} probe (id {cid})")
    for col in ("analyzer", "unit id", "param", "raw", "type order", "value", "flag", "unit", "limit"):
        t.add_column(col)
    for r in table:
        t.add_row(r["analyzer"], str(r["unit_id"]), r["param"], r["raw"], f"{r['type']} {r['order']}",
                  "" if r["value"] is None else f"{r['value']:g}", r["flag"], r["unit"], r["limit"] or "")
    Console(width=140).print(t)
    if all_orders:
        for r in table:
            if r["all_orders"]:
                click.echo(f"{r['param']} ({r['raw']}): " + "; ".join(
                    f"{k} = {v:.6g}" for k, v in r["all_orders"].items()))


from .node_setup_cli import SETUP_COMMANDS  # noqa: E402  (provision, config, build, flash)

from .node_deploy_cli import deploy_cmd, reconfigure_cmd  # noqa: E402
from .node_logs_cli import logs_cmd  # noqa: E402
from .node_update_cli import update_cmd  # noqa: E402
from .node_resend_cli import resend_cmd  # noqa: E402

for _command in (*SETUP_COMMANDS, deploy_cmd, reconfigure_cmd, logs_cmd, update_cmd, resend_cmd):
    node.add_command(_command)
