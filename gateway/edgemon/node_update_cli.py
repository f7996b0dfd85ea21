"""`edgemon node update`: a firmware image over the air to one node or a fleet, a canary first.
The node's half is firmware/fwupdate.py and firmware/slotboot.py (A/B romfs partitions, trial,
rollback); the image server is otaserve.py; docs/ARCHITECTURE.md section 3 has the whole flow."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from pathlib import Path

import click

EXIT_FAILED, EXIT_REFUSED, EXIT_NOT_UPDATED = 1, 3, 4


class NodeWatch:
    """The node's statuses and events as they arrive, each signature checked with its key."""

    def __init__(self, cfg, site: str, node: str, key: bytes | None):
        from .node_cli import _connect

        self.key = key
        self.statuses: list = []   # parse_status results, live ones
        self.retained = None       # the retained one: the running boot's
        self.events: list = []     # parse_event results
        self.forged = 0
        self.event = threading.Event()
        self.client = _connect(cfg, "update")
        self.client.on_message = self._on
        base = f"edge/v1/{site}/{node}"
        self.client.subscribe([(base + "/status", 1), (base + "/event", 1)])
        self.client.loop_start()

    def _on(self, client, userdata, msg):
        from .contract import ContractError, parse_event, split_signature
        from .keys import sign
        from .node_cli import verified_status

        payload = bytes(msg.payload)
        try:
            if msg.topic.endswith("/status"):
                st = verified_status(payload, self.key)[0]
                if msg.retain:
                    self.retained = st
                else:
                    self.statuses.append(st)
            else:
                body, sig = split_signature(payload)
                if self.key is not None and (sig is None or sign(body, self.key) != sig.lower()):
                    raise ValueError("forged")
                self.events.append(parse_event(payload))
        except (ValueError, ContractError):
            self.forged += 1
        self.event.set()

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def update_one(cfg, config: Path, target: str, manifest: dict, wait: float, ack_wait: float = 120) -> tuple[int, str]:
    """(exit code, one line) for one node: the update op sent, its ack, then the node's own
    confirmation (an "update" event from the new image) or its return to the old one."""
    from .node_cli import _send_command

    site, node = target.split("/")
    key = (cfg.keys or {}).get(target)
    watch = NodeWatch(cfg, site, node, key)
    t0 = time.monotonic()
    try:
        time.sleep(0.5)  # the retained status: the boot that gets the command
        old_boot = watch.retained.cn[0] if watch.retained is not None and watch.retained.cn else -1
        try:  # the node downloads and checks the image before it answers
            a, cid = _send_command(cfg, config, site, node, "update", manifest, ack_wait, ack_wait)
        except SystemExit:  # no ack (reported by _send_command)
            return EXIT_NOT_UPDATED, "no ack: the node is not online, or the command was not signed with its key"
        if not a.ok:
            return EXIT_REFUSED, f"refused by the node: {a.err}"
        click.echo(f"image written and checked (partition {a.result.get('slot')}); resetting ... ", nl=False)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for ev in watch.events:
                if ev.kind == "update" and isinstance(ev.detail, dict) and ev.detail.get("fw") == manifest["version"]:
                    return 0, f"updated: fw {manifest['version']}, confirmed by the node ({time.monotonic() - t0:.1f} s)"
            back = [s for s in watch.statuses if s.online and s.fw != manifest["version"] and s.cn and s.cn[0] > old_boot]
            if back:  # a later boot of the image it ran before
                return EXIT_NOT_UPDATED, (f"rolled back by itself: the new image did not confirm itself within "
                                          f"{manifest['trial_s']} s; running fw {back[-1].fw} again")
            watch.event.wait(0.2)
            watch.event.clear()
        seen = sorted({s.fw for s in watch.statuses if s.online})
        return EXIT_NOT_UPDATED, (f"not confirmed within {wait:g} s (statuses seen: fw {', '.join(seen) or 'none'}); "
                                  f"unless it confirms within {manifest['trial_s']} s of its boot it returns to "
                                  f"the previous image by itself")
    finally:
        watch.close()


@click.command("update", epilog="""\b
Examples:
  edgemon node update --config /etc/edgemon/gateway.toml --serve 192.168.10.2:8470 \\
      --image build/firmware-mpy/0123abcd.romfs qd-plant/node01
  edgemon node update --config gateway.toml --serve 192.168.10.2:8470 --image img.romfs --targets fleet.txt
The image (from `edgemon node build`, with its .files.json) is served over HTTP at --serve for the
rollout; each node gets a signed manifest (version, size, SHA-256) as the `update` command, downloads
the image into its other romfs partition, checks it twice, and boots it on trial: it confirms itself
after its health check (a record delivered to the broker, an analyzer answering, its flash queue
intact) or returns to the previous image by itself after --trial seconds. Nodes go one at a time,
the first alone as the canary; the rollout halts at the first node that is not updated.
--targets: a file with SITE/NODE per line (# comments).
Exit codes: 0 every node updated, 1 refused here (image, listing, targets), 2 bad usage,
3 refused by a node, 4 a node not updated (no ack, rolled back, not confirmed in time): halted.""")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="gateway.toml: the broker and the keys file")
@click.option("--image", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="the ROMFS image from `edgemon node build` (its .files.json beside it)")
@click.option("--serve", required=True, metavar="HOST:PORT",
              help="the address the nodes reach this host at; the image is served there (PORT 0: any)")
@click.option("--targets", "targets_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="file of SITE/NODE lines, updated in that order (the first is the canary)")
@click.option("--trial", "trial_s", default=300, show_default=True, type=click.IntRange(30, 3600),
              help="seconds the new image has to confirm itself on a node")
@click.option("--wait", default=None, type=click.FloatRange(min=1),
              help="seconds to wait for a node's confirmation  [default: --trial + 60]")
@click.option("--ack-wait", default=120.0, show_default=True, type=click.FloatRange(min=1),
              help="seconds a node has to download and check the image and answer")
@click.argument("targets", nargs=-1, metavar="[SITE/NODE]...")
def update_cmd(config: Path, image: Path, serve: str, targets_file: Path | None, trial_s: int, wait: float | None,
               ack_wait: float, targets: tuple[str, ...]):
    """Update the firmware of nodes over the air: a canary first, halted at the first failure."""
    from .node_cli import _load_gateway
    from .otaserve import ImageServer, parse_listen, read_targets

    try:
        host, port = parse_listen(serve)
        todo = list(targets) + (read_targets(targets_file) if targets_file else [])
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    bad = [t for t in todo if t.count("/") != 1 or not all(t.split("/"))]
    if bad or not todo:
        raise click.ClickException("; ".join(f"{t!r}: SITE/NODE expected" for t in bad) or
                                   "no node given: SITE/NODE arguments or --targets FILE")
    cfg = _load_gateway(config)
    missing = [t for t in todo if t not in (cfg.keys or {})]
    if missing:
        raise click.ClickException(f"{config}: no key for {', '.join(missing)} in trust.keys_file (the manifest is "
                                   f"signed with each node's key); fix: provision them, or remove them from the list")
    listing_path = image.with_suffix(".files.json")
    try:
        listing = json.loads(listing_path.read_text())
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{listing_path}: {exc}: build the image with `edgemon node build`") from None
    blob = image.read_bytes()
    sha = hashlib.sha256(blob).hexdigest()
    if listing.get("image_sha256") != sha or not listing.get("fw_version"):
        raise click.ClickException(f"{listing_path} does not describe {image} (hash or fw_version): build again")
    version = listing["fw_version"]
    wait = wait if wait is not None else trial_s + 60
    try:
        server = ImageServer(blob, sha, host, port)
    except OSError as exc:
        raise click.ClickException(f"--serve {serve}: {exc}") from None
    with server:
        manifest = {"url": server.url, "version": version, "bytes": len(blob), "sha256": sha, "trial_s": trial_s}
        click.echo(f"fw {version}: {image.name}, {len(blob):,} bytes, sha256 {sha[:16]}..., served at {server.url}")
        done = 0
        for i, target in enumerate(todo):
            label = "canary" if i == 0 and len(todo) > 1 else f"[{i + 1}/{len(todo)}]"
            click.echo(f"{label} {target}: ", nl=False)
            code, line = update_one(cfg, config, target, manifest, wait, ack_wait)
            click.echo(line)
            if code:
                rest = len(todo) - i - 1
                click.echo(f"halted at {target}: {done} of {len(todo)} updated"
                           + (f", {rest} not tried" if rest else ""), err=True)
                sys.exit(code)
            done += 1
        click.echo(f"{done} of {len(todo)} node(s) on fw {version}")
