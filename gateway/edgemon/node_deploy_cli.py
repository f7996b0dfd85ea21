"""`edgemon node deploy`: the image and the node's config onto a board (USB with mpremote, or the
virtual board), every file checked by hash on the board, the board reset, and its first status
awaited on the broker. What goes where: deploy.py; the links: boardlink.py, dev/virtualboard.py."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import click

EXIT_FAILED, EXIT_NO_STATUS, EXIT_FORGED = 1, 4, 5


def _step(msg: str):
    click.echo(f"  {msg} ... ", nl=False)


def _image(target: str, image: Path | None) -> tuple[Path, dict]:
    from .deploy import DeployError

    if image is None:
        from .dev.fwmanifest import ManifestError
        from .node_setup_cli import build_image

        try:
            return build_image(target)
        except (ManifestError, RuntimeError, FileNotFoundError) as exc:
            raise DeployError(f"building the image: {exc}") from None
    listing = image.with_suffix(".files.json")
    try:
        files = json.loads(listing.read_text())
    except FileNotFoundError:
        raise DeployError(f"{listing}: not found: build the image with `edgemon node build` (it writes the "
                          f"file list beside the image)") from None
    if files.get("image") and Path(files["image"]).resolve() != image.resolve():
        raise DeployError(f"{listing} lists {files['image']}, not {image}: build again")
    return image, files


class StatusWatch:
    """The node's status topic: the retained status now (the old boot), then the next one."""

    def __init__(self, cfg, site: str, node: str):
        from .node_cli import _connect

        self.topic = f"edge/v1/{site}/{node}/status"
        self.got: list[tuple[bytes, bool]] = []
        self.event = threading.Event()
        self.client = _connect(cfg, "deploy")
        self.client.on_message = self._on
        self.client.subscribe(self.topic, qos=1)
        self.client.loop_start()

    def _on(self, client, userdata, msg):
        self.got.append((bytes(msg.payload), bool(msg.retain)))
        self.event.set()

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


@click.command("deploy", epilog="""\b
Examples:
  edgemon node deploy --config gateway.toml --port /dev/ttyUSB0 qd-plant node01 qd-plant.node01.json
  edgemon node deploy --config gateway.toml --virtual run/board1 qd-plant node01 qd-plant.node01.json
Steps, each shown: the node config checked (for SITE/NODE, with its key); the image built
(`edgemon node build`, or --image); the node stopped; the romfs partition written; /node.json and
/main.py copied; every file hashed on the board by the board and compared with the build's list
(a mismatch stops here: the board is not reset); the board reset; its first status after the
reset awaited on the broker, its signature checked with the node's key.
MQTT over TLS: the files node.json's mqtt.tls names (/certs/ca.der, /certs/node.der,
/certs/node.key.der) are copied from the folder beside NODE_JSON named as it is with .certs for .json
(`edgemon node config` writes it) to the board's /certs and hashed with the rest; a file not there is refused before the
board is touched.
--virtual DIR deploys to a virtual board instead (python -m edgemon.dev.virtualboard DIR powers it).
Exit codes: 0 the node is up, 1 refused or failed (one line says why), 2 bad usage,
4 no status from the node within --wait, 5 a status not signed with the node's key.""")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="gateway.toml: the broker and the keys file")
@click.option("--port", default=None, help="the board's serial port, e.g. /dev/ttyUSB0")
@click.option("--virtual", "virtual", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="a virtual board's folder instead of --port")
@click.option("--image", default=None, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="a ROMFS image from `edgemon node build` (default: build it now)")
@click.option("--wait", default=60.0, show_default=True, type=click.FloatRange(min=1),
              help="seconds to wait for the node's first status")
@click.argument("site")
@click.argument("node_name", metavar="NODE")
@click.argument("node_json", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def deploy_cmd(config: Path, port: str | None, virtual: Path | None, image: Path | None, wait: float, site: str,
               node_name: str, node_json: Path):
    """Copy the image and node.json to a board, check every file on the board, reset, wait for it."""
    from .deploy import (MAIN_STUB, DeployError, check_node_json, compare, expected_files, forget_script, hash_script,
                         mkdir_script, parse_hashes, tls_files)
    from .dev.nodeproc import FIRMWARE_DIR
    from .node_cli import _load_gateway, verified_status
    from .nodeconfig import certs_dir

    if (port is None) == (virtual is None):
        raise click.UsageError("give the board: --port /dev/ttyUSB0, or --virtual DIR")
    cfg = _load_gateway(config)
    key = (cfg.keys or {}).get(f"{site}/{node_name}")
    if key is None:
        raise click.ClickException(f"{site}/{node_name} has no key in the gateway's keys file: run "
                                   f"`edgemon node provision` first")
    t0 = time.monotonic()
    click.echo(f"{site}/{node_name} -> {port or virtual}")
    watch = None
    try:
        data = node_json.read_bytes()
        _step(f"node config {node_json.name}")
        node_cfg = check_node_json(data, site, node_name)
        # the TLS files it names: from SITE.NODE.certs/ beside it, all there before the board is touched
        tls_dir = certs_dir(node_json)
        named = [(k, board_path, tls_dir / board_path.rsplit("/", 1)[1]) for k, board_path in tls_files(node_cfg)]
        tls = [(board_path, local) for _, board_path, local in named]
        missing = [f"mqtt.tls.{k} {board_path}: {local} is not there" for k, board_path, local in named
                   if not local.is_file()]
        if missing:
            raise DeployError("the node config names TLS files that are not here (nothing was sent):\n  "
                              + "\n  ".join(missing) + f"\n  fix: make {node_json.name} and its files with `edgemon "
                              f"node config` (it writes them in {tls_dir.name}/ beside it), or copy them there")
        tls_data = [(board_path, local.read_bytes(), local) for board_path, local in tls]
        click.echo(f"ok (TLS: {', '.join(bp for bp, _ in tls)} from {tls_dir.name}/)" if tls else "ok")
        _step("image")
        image, listing = _image("pc" if virtual else "board", image)
        slotboot = (FIRMWARE_DIR / "slotboot.py").read_bytes()
        want = expected_files(listing, data, slotboot, [(bp, d) for bp, d, _ in tls_data])
        click.echo(f"{image.name}, {len(listing['files'])} files, {listing['image_bytes']:,} bytes")
        if virtual:
            from .dev.virtualboard import VirtualBoardLink

            link = VirtualBoardLink(virtual)
        else:
            from .boardlink import MpremoteLink

            link = MpremoteLink(port)
        watch = StatusWatch(cfg, site, node_name)
        _step("stopping the node")
        link.halt()
        click.echo("ok")
        _step("writing the romfs partition")
        link.write_romfs(image)
        click.echo("ok")
        _step("copying /node.json, /main.py, /slotboot.py" + "".join(f", {bp}" for bp, _, _ in tls_data))
        if tls_data:
            link.run(mkdir_script(sorted({bp.rsplit("/", 1)[0] for bp, _, _ in tls_data} - {""}), link.root))
            for board_path, tls_bytes, local in tls_data:
                link.put(tls_bytes, board_path, local)
        link.put(data, "/node.json", node_json)
        link.put(slotboot, "/slotboot.py", FIRMWARE_DIR / "slotboot.py")
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".py") as stub:
            stub.write(MAIN_STUB)
            stub.flush()
            link.put(MAIN_STUB, "/main.py", Path(stub.name))
        link.run(forget_script(link.root))  # the old config's checked copy and any pending config op
        click.echo("ok")
        _step(f"checking {len(want)} files on the board")
        problems = compare(want, parse_hashes(link.run(hash_script([e.path for e in want], root=link.root))))
        if problems:
            click.echo("FAILED")
            raise DeployError("the board does not hold what was sent; it is not reset. Run the deploy again "
                              "(a copy cut short?):\n  " + "\n  ".join(problems))
        click.echo("all match")
        time.sleep(0.5)  # the retained status, if any, has arrived: it is the old boot's
        old = len(watch.got)
        watch.event.clear()
        _step("resetting")
        link.reset()
        click.echo("ok")
        _step(f"waiting for its first status (up to {wait:g} s)")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            fresh = [p for p, retained in watch.got[old:] if not retained]
            for payload in fresh:
                try:
                    st, signed = verified_status(payload, key)
                except ValueError as exc:
                    click.echo("FAILED")
                    click.echo(f"{site}/{node_name}: the status {exc}", err=True)
                    sys.exit(EXIT_FORGED)
                if st.online:
                    click.echo("online")
                    click.echo(f"{site}/{node_name} is up: fw {st.fw}, boot {st.cn[0] if st.cn else '?'}, "
                               f"{signed}, in {time.monotonic() - t0:.1f} s. Next: edgemon node probe "
                               f"--config {config} {site} {node_name}")
                    return
            watch.event.wait(0.2)
            watch.event.clear()
        click.echo("none")
        click.echo(f"{site}/{node_name}: no status within {wait:g} s after the reset: the files are on the board "
                   f"and checked; see what it prints (WiFi, broker address and account{', TLS port and CA' if tls else ''} "
                   f"in {node_json.name})",
                   err=True)
        sys.exit(EXIT_NO_STATUS)
    except DeployError as exc:
        click.echo("FAILED")
        raise click.ClickException(str(exc)) from None
    finally:
        if watch:
            watch.close()


@click.command("reconfigure", epilog="""\b
Examples:
  edgemon node reconfigure --config /etc/edgemon/gateway.toml qd-plant node01 qd-plant.node01.json
  edgemon node reconfigure --config gateway.toml qd-plant node01 new.json --trial 120 --wait 180
Sends a new node config over the command channel (the `config` op, signed). It is checked here by
the firmware's validator first, then on the node again; the node keeps the running config, swaps
in the new one and resets. The new config is on trial: the node confirms it once it reaches the
broker with it; if it does not within --trial seconds it resets and brings the previous config
back by itself (a wrong WiFi or broker setting cannot strand a node on site).
Exit codes: 0 the node is up with the new config, 1 refused here or by the node, 2 bad usage,
4 no ack, or no status from the node within --wait (it restores the old config after --trial).""")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="gateway.toml: the broker and the keys file")
@click.option("--trial", "trial_s", default=300, show_default=True, type=click.IntRange(10, 3600),
              help="seconds the node has to reach the broker with the new config")
@click.option("--wait", default=90.0, show_default=True, type=click.FloatRange(min=1),
              help="seconds to wait for the node's status after its reset")
@click.argument("site")
@click.argument("node_name", metavar="NODE")
@click.argument("node_json", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def reconfigure_cmd(config: Path, trial_s: int, wait: float, site: str, node_name: str, node_json: Path):
    """Send SITE/NODE a new config over the air; it rolls back by itself if it does not come up."""
    from .deploy import DeployError, check_node_json
    from .node_cli import EXIT_REFUSED, _load_gateway, _send_command, verified_status
    from .nodeconfig import _firmware_validator

    cfg = _load_gateway(config)
    key = (cfg.keys or {}).get(f"{site}/{node_name}")
    try:
        new = check_node_json(node_json.read_bytes(), site, node_name)
    except DeployError as exc:
        raise click.ClickException(str(exc)) from None
    validate, fw_error = _firmware_validator()
    try:
        validate(json.loads(json.dumps(new)))
    except fw_error as exc:
        raise click.ClickException("refused here, nothing sent:\n" + "\n".join(
            f"{node_json}: {field}: {reason}" for field, reason in exc.errors)) from None
    watch = StatusWatch(cfg, site, node_name)
    try:
        time.sleep(0.5)
        old = len(watch.got)
        a, cid = _send_command(cfg, config, site, node_name, "config", {"config": new, "trial_s": trial_s}, 60, 30)
        if not a.ok:
            click.echo(f"{site}/{node_name}: config refused by the node (id {cid}): {a.err}", err=True)
            sys.exit(EXIT_REFUSED)
        click.echo(f"{site}/{node_name}: config accepted (id {cid}), on trial for {trial_s} s; the node resets")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for payload, retained in watch.got[old:]:
                if retained:
                    continue
                try:
                    st, signed = verified_status(payload, key)
                except ValueError:
                    continue
                if st.online:
                    click.echo(f"{site}/{node_name} is up with the new config: fw {st.fw}, boot "
                               f"{st.cn[0] if st.cn else '?'}, {signed} (connected: the trial is over)")
                    return
            watch.event.wait(0.2)
            watch.event.clear()
        click.echo(f"{site}/{node_name}: no status within {wait:g} s after the reset; unless it reaches the broker "
                   f"within {trial_s} s of its boot, it brings back the previous config by itself", err=True)
        sys.exit(EXIT_NO_STATUS)
    finally:
        watch.close()
