"""`edgemon node provision|config|build|flash`: the commands that prepare a node before it is on the
broker (server-side account and key, its config, its image, the board's firmware). The commands that
talk to a running node over MQTT (cmd, status, probe) are in node_cli.py, which defines the group and adds these (SETUP_COMMANDS)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("provision", epilog="""\b
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
@click.option("--ca", "ca_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="also a client certificate for mutual TLS, signed by this CA (edgemon broker ca init), "
                   "next to the secrets file")
def provision_cmd(config: Path, site: str, node_name: str, passwd: Path, acl: Path, poll_s: float,
                  secrets_dir: Path | None, rotate: bool, show_secrets: bool, ca_dir: Path | None):
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
    if ca_dir is not None:
        from .pki import CertificateAuthority, PkiError

        try:
            cert = CertificateAuthority(ca_dir).node(got.secrets_path.parent, site, node_name)
        except PkiError as exc:
            raise click.ClickException(f"{exc} (the account, key and ACL entry are made; run again with a "
                                       "valid --ca for the certificate)") from None
        click.echo(f"client certificate {cert.cert} (key {cert.key}, CN {site}.{node_name}) for mutual TLS")
    click.echo(f"{site}/{node_name}: broker account {got.user} "
               f"({'new password' if got.password else 'kept'}), ACL entry in {acl}, "
               f"key {'new' if got.new_key else 'kept'} in {resolve(Path(keys))}, listed in {config}")
    click.echo(f"secrets for the node's config: {got.secrets_path} (mode 0600)")
    if show_secrets:
        click.echo(json.dumps(json.loads(got.secrets_path.read_text())))
    click.echo("the broker re-reads its password and ACL files on SIGHUP (systemctl reload mosquitto)")


@click.command("config", epilog="""\b
Examples:
  edgemon node config --inventory sites.toml --secrets /var/lib/edgemon/provisioned/qd-plant.node01.secrets.json \\
      qd-plant node01 -o node.json
The inventory (TOML, `format = 1`) lists a bureau's sites, nodes and analyzers; its layout is in
the docstring of edgemon/nodeconfig.py and in README "Commissioning a site". The result is checked
by the firmware's own validator with its profiles: a bad one is refused, every problem named with
its field and fix, and nothing is written.
MQTT over TLS: give the broker's CA in the inventory's broker table (tls_ca = ".../ca.crt", and
tls_mutual = true for the node's own certificate from `edgemon node provision --ca`). node.json then
names /certs/ca.der (and /certs/node.der, /certs/node.key.der), and their DER copies are written
beside it in <node.json's name without .json>.certs/ (key 0600); `edgemon node deploy` copies them to the board's /certs.
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
    from .nodeconfig import certs_dir, node_config_files, read_secrets
    from .provision import write_private

    try:
        secrets = read_secrets(secrets_path)
        if (secrets.get("site"), secrets.get("node")) != (site, node_name):
            raise click.ClickException(f"{secrets_path}: the secrets of {secrets.get('site')}/{secrets.get('node')}, "
                                       f"not {site}/{node_name}; fix: give {site}.{node_name}.secrets.json")
        cfg, checked, tls_src = node_config_files(inventory, site, node_name, secrets, secrets_path=secrets_path)
    except ConfigError as exc:
        raise click.ClickException(report(exc)) from None
    out = output or Path(f"{site}.{node_name}.json")
    tls_note = ""
    if tls_src:
        from .nodetls import write_node_tls

        certs = certs_dir(out)
        written = write_node_tls(certs, tls_src["ca"], tls_src.get("cert"), tls_src.get("key"))
        for stale in ("node.der", "node.key.der"):  # from an earlier mutual config: deploy copies only what is named
            if stale not in {Path(v).name for v in written.values()}:
                (certs / stale).unlink(missing_ok=True)
        tls_note = (f", TLS with the CA pinned{' and the node certificate (mutual)' if 'cert' in written else ''}: "
                    f"{', '.join(Path(v).name for v in written.values())} in {certs}/ for the board's /certs")
    write_private(out, json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    params = sum(len(a["values"]) for a in checked["analyzers"])
    click.echo(f"{out}: {site}/{node_name}, {len(cfg['analyzers'])} analyzer(s), {params} parameter(s), "
               f"poll {cfg['poll_s']} s, broker {cfg['mqtt']['host']}:{cfg['mqtt']['port']}{tls_note}; checked by "
               f"the firmware's validator (mode 0600: it holds the node's password and key)")


def build_image(target: str, src: Path | None = None) -> tuple[Path, dict]:
    """(the ROMFS image, its listing: the firmware version, each file's path, size and SHA-256, the
    image's), the listing also written beside the image as <image>.files.json. src: a firmware tree
    other than firmware/. Raises ManifestError, RuntimeError."""
    import hashlib
    import re

    from .dev.nodeproc import FIRMWARE_DIR, build_mpy, build_romfs

    mpy = build_mpy(target=target, src=src)
    image = build_romfs(target=target, src=src)
    version = re.search(r'^FW_VERSION = "([^"]+)"', ((src or FIRMWARE_DIR) / "record.py").read_text(), re.M)
    files = []
    for f in sorted(p for p in mpy.rglob("*") if p.is_file()):
        data = f.read_bytes()
        files.append({"path": str(f.relative_to(mpy)), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    blob = image.read_bytes()
    result = {"target": target, "fw_version": version[1] if version else None, "image": str(image), "image_bytes": len(blob),
              "image_sha256": hashlib.sha256(blob).hexdigest(), "mpy_dir": str(mpy), "files": files}
    image.with_suffix(".files.json").write_text(json.dumps(result, indent=2) + "\n")
    return image, result


@click.command("build", epilog="""\b
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
    from .dev.fwmanifest import ManifestError

    try:
        image, result = build_image(target)
    except (ManifestError, RuntimeError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    files = result["files"]
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for f in files:
        click.echo(f"  {f['bytes']:>7,}  {f['sha256'][:16]}  {f['path']}")
    click.echo(f"{len(files)} files, {sum(f['bytes'] for f in files):,} bytes -> {image} "
               f"({result['image_bytes']:,} bytes, sha256 {result['image_sha256']})")


@click.command("flash", epilog="""\b
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


SETUP_COMMANDS = (provision_cmd, config_cmd, build_cmd, flash_cmd)
