"""`edgemon node deploy`, the pure part: what goes onto a board, the script the board runs to hash
what it holds, and the comparison of the two. The copying is boardlink.py (mpremote, USB) or
dev/virtualboard.py (the virtual board); the CLI is node_deploy_cli.py.

A deployed board holds (docs/ARCHITECTURE.md, "Commissioning"):
- the ROMFS image from `edgemon node build` in its romfs partition, mounted at /rom: the firmware's
  .mpy files and profiles, executed in place (a 64k heap cannot hold them loaded);
- /node.json from `edgemon node config` (the node's password and key: written only to the board);
- with MQTT over TLS, the files node.json's mqtt.tls names (/certs/ca.der, and /certs/node.der,
  /certs/node.key.der for mutual TLS), taken from the SITE.NODE.certs/ folder `edgemon node config`
  wrote beside node.json (tls_files() says which; the CLI refuses when one is not there);
- /main.py, a stub that has /slotboot.py choose the romfs partition (A/B, for updates) and starts
  boardmain from /rom (the board runs main.py from its filesystem after boot.py).

Every file is checked on the board itself: the board reads each one back and hashes it with its
own hashlib, so a copy that was cut short, a partition too small or a stale file is found before
the board is reset. Pure: no I/O here."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

# The board runs /main.py after boot.py. MicroPython has mounted romfs partition 0 at /rom; with an
# update waiting or on trial, slotboot.py (beside it on the filesystem, not in any image) says which.
MAIN_STUB = b"""# written by edgemon node deploy: the firmware is in a romfs partition (/rom), /slotboot.py picks it
import vfs
exec(open("/slotboot.py").read())  # its choose(), from the filesystem: never from an image it may leave
i = choose(vfs.rom_ioctl(1))
if i:
    vfs.umount("/rom")
    vfs.mount(vfs.VfsRom(vfs.rom_ioctl(2, i)), "/rom")
del choose, _write, i
import boardmain
"""
MARK = "EDGEMON-HASH"  # prefix of the board's answer lines, so REPL noise around them is ignored


class DeployError(Exception):
    """Refused before or during a deploy; the message says what and what to do."""


@dataclass(frozen=True)
class Expected:
    path: str          # as the board names it: /rom/node.mpy, /node.json, /main.py
    sha256: str
    size: int


def expected_files(image_list: dict, node_json: bytes, slotboot: bytes,
                   extra: list[tuple[str, bytes]] = ()) -> list[Expected]:
    """What the board must hold after the deploy: every file of the image (the build's
    <image>.files.json) under /rom, then /node.json, /main.py and /slotboot.py (firmware/slotboot.py),
    then extra: (board path, bytes) of the node's TLS files (tls_files())."""
    files = image_list.get("files")
    if not isinstance(files, list) or not files:
        raise DeployError("the image's file list has no files: run `edgemon node build` again")
    out = [Expected("/rom/" + f["path"], f["sha256"], f["bytes"]) for f in files]
    for path, data in (("/node.json", node_json), ("/main.py", MAIN_STUB), ("/slotboot.py", slotboot), *extra):
        out.append(Expected(path, hashlib.sha256(data).hexdigest(), len(data)))
    return out


TLS_FILE_KEYS = ("ca", "cert", "key")  # the mqtt.tls fields that name a file on the board (or hold inline PEM)


def tls_files(cfg: dict) -> list[tuple[str, str]]:
    """(mqtt.tls field, board path) of each file the node config's mqtt.tls names: what the deploy
    copies beside /node.json. Inline PEM text (the firmware takes it too) is no file: left out."""
    tls = (cfg.get("mqtt") or {}).get("tls")
    if not isinstance(tls, dict):
        return []
    out = []
    for k in TLS_FILE_KEYS:
        v = tls.get(k)
        if isinstance(v, str) and v and not v.startswith("-----"):
            if not v.startswith("/") or v.startswith("/rom/") or v == "/node.json" or v.endswith("/"):
                raise DeployError(f"node config's mqtt.tls.{k} is {v!r}: not a file the deploy can put on the board; "
                                  f"make node.json with `edgemon node config` (it names /certs/...)")
            out.append((k, v))
    return out


def mkdir_script(dirs: list[str], root: str = "") -> str:
    """MicroPython code the board runs before files are copied into DIRS (mpremote's cp does not make
    folders): each made if it is not there, parents first. root: as in hash_script."""
    want: list[str] = []
    for d in dirs:
        parts = d.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            p = "/" + "/".join(parts[:i])
            if p != "/" and p not in want:
                want.append(p)
    return "\n".join(["import os", f"for p in {want!r}:", " try:", f"  os.mkdir({root!r}+p)",
                      " except OSError:", "  pass"]) + "\n"


def check_node_json(data: bytes, site: str, node: str) -> dict:
    """The node config is the one for SITE/NODE (a technician with ten node.json files in one folder)."""
    try:
        cfg = json.loads(data)
    except ValueError as exc:
        raise DeployError(f"node config is not JSON ({exc}): make it with `edgemon node config`") from None
    if not isinstance(cfg, dict) or (cfg.get("site"), cfg.get("node")) != (site, node):
        got = f"{cfg.get('site')}/{cfg.get('node')}" if isinstance(cfg, dict) else "?"
        raise DeployError(f"node config is for {got}, not {site}/{node}: give {site}.{node}.json")
    for field in ("key", "mqtt"):
        if field not in cfg:
            raise DeployError(f"node config has no {field!r}: make it with `edgemon node config` from the "
                              f"provisioned secrets")
    return cfg


def hash_script(paths: list[str], rom_mount: bool = True, root: str = "") -> str:
    """MicroPython code the board runs: mounts the romfs partition at /rom if it is not mounted
    (rom_mount; after `mpremote romfs deploy` it is not), then prints one line per path:
    MARK path sha256 size, or MARK path - - when the file cannot be read. Small reads: the
    board's heap. root: prefixed to paths outside /rom (the virtual board's folder)."""
    lines = ["import hashlib,binascii,os"]
    if rom_mount:
        lines += ["try:", " os.stat('/rom')", "except OSError:", " import vfs",
                  " vfs.mount(vfs.VfsRom(vfs.rom_ioctl(2,0)),'/rom')"]
    lines += ["def h(p):", " d=hashlib.sha256()", " n=0", " f=open(p,'rb')", " while 1:", "  b=f.read(512)",
              "  if not b:", "   break", "  n+=len(b)", "  d.update(b)", " f.close()",
              " return binascii.hexlify(d.digest()).decode(),n",
              f"for p in {paths!r}:", " try:", f"  print('{MARK}',p,'%s %d'%h(p if p.startswith('/rom') else {root!r}+p))",
              " except OSError:", f"  print('{MARK}',p,'- -')"]
    return "\n".join(lines) + "\n"


# What a board keeps beside /node.json (firmware start.py, cfgswap.py): the checked copy of the config
# (valid for one config text and firmware version; a new image may bring other profiles under the same
# version) and a config op's pending swap. A deploy replaces both the config and the firmware: all go.
NODE_JSON_SIDECARS = ("/node.json.checked", "/node.json.config-new", "/node.json.config-trial",
                      "/slot")  # (the image deployed is partition 0's: slotboot.py mounts it with no /slot)


def forget_script(root: str = "") -> str:
    """MicroPython code the board runs after a deploy copied /node.json: removes NODE_JSON_SIDECARS,
    printing MARK and each path it removed."""
    return "\n".join([
        "import os", f"for p in {list(NODE_JSON_SIDECARS)!r}:", " try:", f"  os.remove({root!r}+p)",
        f"  print('{MARK}',p)", " except OSError:", "  pass"]) + "\n"


def parse_hashes(output: str) -> dict[str, tuple[str, int] | None]:
    got: dict[str, tuple[str, int] | None] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == MARK:
            got[parts[1]] = None if parts[2] == "-" else (parts[2], int(parts[3]))
    return got


def compare(expected: list[Expected], got: dict[str, tuple[str, int] | None]) -> list[str]:
    """One line per file the board does not hold as it should; empty when all match."""
    problems = []
    for e in expected:
        if e.path not in got:
            problems.append(f"{e.path}: the board did not answer for it")
        elif got[e.path] is None:
            problems.append(f"{e.path}: missing on the board")
        elif got[e.path] != (e.sha256, e.size):
            sha, size = got[e.path]
            problems.append(f"{e.path}: on the board {size} bytes sha256 {sha[:16]}, expected {e.size} bytes "
                            f"sha256 {e.sha256[:16]}")
    return problems
