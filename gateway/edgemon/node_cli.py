"""`edgemon node ...`: the technician's and operator's commands for one node. `node cmd` sends a
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
    if cfg.mqtt_user:
        client.username_pw_set(cfg.mqtt_user, cfg.mqtt_password)
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


@node.command("provision", epilog="""\b
Examples:
  edgemon node provision --config /etc/edgemon/gateway.toml qd-plant node01
  edgemon node provision --config gateway.toml --passwd run/mosquitto/passwd --acl run/mosquitto/acl \\
      --poll-s 60 laixi-river node02
Writes: the broker account SITE.NODE (--passwd), its ACL entry (--acl: publish only its own data,
status, event, cmd/ack; read only its own cmd), its HMAC key ([trust] keys_file, mode 0600), its
entry in gateway.toml ([sites.SITE] nodes), and the secrets for `edgemon node config` (mode 0600).
Running it again keeps what exists; --rotate makes a new password and key.
Exit codes: 0 done, 1 refused (nothing written), 2 bad usage.""")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="gateway.toml ([trust] keys_file names the keys file)")
@click.argument("site")
@click.argument("node_name", metavar="NODE")
@click.option("--passwd", type=click.Path(dir_okay=False, path_type=Path), default=Path("/etc/mosquitto/passwd"),
              show_default=True, help="Mosquitto's password_file")
@click.option("--acl", type=click.Path(dir_okay=False, path_type=Path), default=Path("/etc/mosquitto/acl"),
              show_default=True, help="Mosquitto's acl_file")
@click.option("--poll-s", default=10.0, show_default=True, type=click.FloatRange(min=1),
              help="the site's poll period, for a new [sites.SITE] (silence is judged from it)")
@click.option("--secrets-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where SITE.NODE.secrets.json goes [default: <state_dir>/provisioned]")
@click.option("--rotate", is_flag=True, help="a new broker password and key (the node needs its config again)")
@click.option("--show-secrets", is_flag=True, help="print the password and key too")
def provision_cmd(config: Path, site: str, node_name: str, passwd: Path, acl: Path, poll_s: float,
                  secrets_dir: Path | None, rotate: bool, show_secrets: bool):
    """Make SITE/NODE known to the broker and the gateway: account, ACL, key, config entry."""
    import tomllib

    from .provision import ProvisionError, provision

    try:
        doc = tomllib.loads(config.read_text("utf-8"))
    except FileNotFoundError:
        raise click.ClickException(f"{config}: not found; fix: point --config at the gateway's gateway.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise click.ClickException(f"{config}: not valid TOML: {exc}") from None
    base = config.resolve().parent
    keys = (doc.get("trust") or {}).get("keys_file")
    if not keys:
        raise click.ClickException(f"{config}: trust.keys_file: not set; fix: add [trust] keys_file = "
                                   f"\"/etc/edgemon/keys.toml\" (nodes sign with the keys kept there)")
    state = Path((doc.get("gateway") or {}).get("state_dir") or "run/gateway")
    resolve = (lambda p: p if p.is_absolute() else base / p)
    try:
        got = provision(site, node_name, gateway_toml=config, keys_file=resolve(Path(keys)), passwd=passwd,
                        acl=acl, secrets_dir=secrets_dir or resolve(state) / "provisioned", poll_s=poll_s,
                        rotate=rotate)
    except ProvisionError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{site}/{node_name}: broker account {got.user} "
               f"({'new password' if got.password else 'kept'}), ACL entry in {acl}, "
               f"key {'new' if got.new_key else 'kept'} in {resolve(Path(keys))}, listed in {config}")
    click.echo(f"secrets for the node's config: {got.secrets_path} (mode 0600)")
    if show_secrets:
        click.echo(json.dumps(json.loads(got.secrets_path.read_text())))
    click.echo("the broker re-reads its password and ACL files on SIGHUP (systemctl reload mosquitto)")


@node.command("config", epilog="""\b
Examples:
  edgemon node config --inventory sites.toml --secrets /var/lib/edgemon/provisioned/qd-plant.node01.secrets.json \\
      qd-plant node01 -o node.json
The inventory (TOML, `format = 1`) lists a bureau's sites, nodes and analyzers; its layout is in
the docstring of edgemon/nodeconfig.py and in README "Commissioning a site". The result is checked
by the firmware's own validator with its profiles: a bad one is refused, every problem named with
its field and fix, and nothing is written.
Exit codes: 0 written, 1 refused (nothing written), 2 bad usage.""")
@click.option("--inventory", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the site inventory (TOML)")
@click.option("--secrets", "secrets_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="SITE.NODE.secrets.json from `edgemon node provision` (broker password, key)")
@click.argument("site")
@click.argument("node_name", metavar="NODE")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="where node.json goes [default: SITE.NODE.json here]; written with mode 0600")
def config_cmd(inventory: Path, secrets_path: Path, site: str, node_name: str, output: Path | None):
    """Write SITE/NODE's node.json from the site inventory, checked as the firmware checks it."""
    from .configschema import ConfigError, report
    from .nodeconfig import node_config, read_secrets
    from .provision import write_private

    try:
        secrets = read_secrets(secrets_path)
        if (secrets.get("site"), secrets.get("node")) != (site, node_name):
            raise click.ClickException(f"{secrets_path}: the secrets of {secrets.get('site')}/{secrets.get('node')}, "
                                       f"not {site}/{node_name}; fix: give {site}.{node_name}.secrets.json")
        cfg, checked = node_config(inventory, site, node_name, secrets)
    except ConfigError as exc:
        raise click.ClickException(report(exc)) from None
    out = output or Path(f"{site}.{node_name}.json")
    write_private(out, json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    params = sum(len(a["values"]) for a in checked["analyzers"])
    click.echo(f"{out}: {site}/{node_name}, {len(cfg['analyzers'])} analyzer(s), {params} parameter(s), "
               f"poll {cfg['poll_s']} s, broker {cfg['mqtt']['host']}:{cfg['mqtt']['port']}; checked by the "
               f"firmware's validator (mode 0600: it holds the node's password and key)")


@node.command("build", epilog="""\b
Examples:
  edgemon node build                      # the ESP32 image, under build/firmware-mpy/
  edgemon node build --target pc --json   # the unix-port image the tests and the demo run
Builds exactly what firmware/MANIFEST lists (mpy-cross, then a ROMFS image as `mpremote romfs
deploy` writes it) and prints each file's size and SHA-256, the image's size and SHA-256; the same
list is written beside the image as <image>.files.json (what a deploy checks on the board).
Exit codes: 0 built, 1 the manifest or a module is broken.""")
@click.option("--target", type=click.Choice(["board", "pc"]), default="board", show_default=True,
              help="board: leaves out the PC-only files; pc: leaves out the board-only ones")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def build_cmd(target: str, as_json: bool):
    """Build the firmware image from firmware/MANIFEST, with its size and hash."""
    import hashlib

    from .dev.fwmanifest import ManifestError
    from .dev.nodeproc import build_mpy, build_romfs

    try:
        mpy = build_mpy(target=target)
        image = build_romfs(target=target)
    except (ManifestError, RuntimeError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    files = []
    for f in sorted(p for p in mpy.rglob("*") if p.is_file()):
        data = f.read_bytes()
        files.append({"path": str(f.relative_to(mpy)), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    blob = image.read_bytes()
    result = {"target": target, "image": str(image), "image_bytes": len(blob),
              "image_sha256": hashlib.sha256(blob).hexdigest(), "mpy_dir": str(mpy), "files": files}
    image.with_suffix(".files.json").write_text(json.dumps(result, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for f in files:
        click.echo(f"  {f['bytes']:>7,}  {f['sha256'][:16]}  {f['path']}")
    click.echo(f"{len(files)} files, {sum(f['bytes'] for f in files):,} bytes -> {image} "
               f"({len(blob):,} bytes, sha256 {result['image_sha256']})")


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
    from .contract import ContractError, parse_status

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
    payload = got[0]
    signed = "unsigned"
    if key is not None:
        from .contract import split_signature
        from .keys import sign

        body, sig = split_signature(payload)
        if sig is None or sign(body, key) != sig.lower():
            click.echo(f"{site}/{node_name}: the status on {topic} is {'unsigned' if sig is None else 'forged'}: "
                       f"not from the node whose key the gateway has", err=True)
            sys.exit(5)
        signed = "signature ok"
    try:
        st = parse_status(payload)
    except ContractError as exc:
        click.echo(f"{site}/{node_name}: unreadable status: {exc}", err=True)
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


@node.command("flash", epilog="""\b
Examples:
  edgemon node flash --port /dev/ttyUSB0 ESP32_GENERIC-20250415-v1.25.0.bin
  edgemon node flash --port /dev/ttyACM0 --chip esp32s3 --erase ESP32_GENERIC_S3-v1.25.0.bin
  edgemon node flash --port /dev/ttyUSB0 --dry-run firmware.bin     # print the esptool command only
Writes a MicroPython firmware image (the .bin from micropython.org, one with a romfs partition for
`edgemon node build`'s image) with esptool at the chip's offset (0x1000 on the classic ESP32 and
S2, 0x0 on S3/C3/C6), showing esptool's progress, then resets the board.
Exit codes: 0 written, 1 refused or failed (one line says why and what to do), 2 bad usage.""")
@click.option("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
@click.option("--chip", type=click.Choice(["esp32", "esp32c3", "esp32c6", "esp32s2", "esp32s3"]),
              default="esp32", show_default=True)
@click.option("--baud", default=460800, show_default=True, type=click.IntRange(9600, 2000000))
@click.option("--erase", is_flag=True, help="erase the whole flash first (also the node's queue and config)")
@click.option("--dry-run", is_flag=True, help="print the esptool command and stop")
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
def flash_cmd(port: str, chip: str, baud: int, erase: bool, dry_run: bool, image: Path):
    """Write a MicroPython firmware image to a board with esptool."""
    import shlex
    import subprocess

    from .flashing import FlashError, check, command, explain

    argv = command(chip, port, image, baud, erase)
    if dry_run:
        click.echo(shlex.join(argv))
        return
    try:
        check(chip, port, image)
    except FlashError as exc:
        raise click.ClickException(str(exc)) from None
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    seen = []
    for line in proc.stdout:  # esptool's own lines, its progress bar among them
        seen.append(line)
        click.echo(line, nl=False)
    if proc.wait():
        raise click.ClickException(f"{port}: {explain(''.join(seen))}")
    from .flashing import OFFSETS

    click.echo(f"{port}: {image.name} written at {hex(OFFSETS[chip])} and the board reset; "
               f"next: edgemon node build, then the image and node.json onto the board")


@node.command("probe", epilog="""\b
Examples:
  edgemon node probe --config /etc/edgemon/gateway.toml qd-plant node01
  edgemon node probe --config gateway.toml --alarms alarms.toml qd-plant node01 --analyzer cod --all-orders
Asks the node (a signed `probe` command) to read its analyzers now and shows, per parameter, the raw
registers in hex, the decoded value, its flag and unit, and the limit the alarms will check it
against (with --alarms). --all-orders also reads the same registers as every type and word/byte
order: the line that shows the value the analyzer's display shows names the profile's type and order.
Exit codes: 0 read, 1 bad configuration, 2 bad usage, 3 refused by the node, 4 no answer.""")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="gateway.toml: the broker and the keys file")
@click.option("--alarms", "alarms_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="alarms.toml: show each parameter's limit for this site")
@click.argument("site")
@click.argument("node_name", metavar="NODE")
@click.option("--analyzer", default=None, help="only this analyzer (its name in the node config)")
@click.option("--all-orders", is_flag=True, help="the registers read as every type and word/byte order")
@click.option("--wait", default=30.0, show_default=True, type=click.FloatRange(min=0.1))
@click.option("--json", "as_json", is_flag=True, help="print the rows as JSON")
def probe_cmd(config: Path, alarms_path: Path | None, site: str, node_name: str, analyzer: str | None,
              all_orders: bool, wait: float, as_json: bool):
    """Read the node's analyzers now: raw registers, decoded values, flags, units, limits."""
    from . import probeview as pv
    from .alarms.messages import PARAMS

    cfg = _load_gateway(config)
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
    a, cid = _send_command(cfg, config, site, node_name, "probe", {"analyzer": analyzer} if analyzer else {},
                           60.0, wait)
    if not a.ok:
        click.echo(f"{site}/{node_name}: probe refused (id {cid}): {a.err}", err=True)
        sys.exit(EXIT_REFUSED)
    units = {code: str(v.get("unit", "")) for code, v in PARAMS.items()}
    table = pv.rows(a.result or {}, units, limits)
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
