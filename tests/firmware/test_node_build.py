"""`edgemon node build`: the image from firmware/MANIFEST for each kind of machine, with the size and
SHA-256 of every file and of the image, also written beside the image for a deploy to check."""

import hashlib
import json

from click.testing import CliRunner

from edgemon.cli import main
from edgemon.dev.fwmanifest import image_files
from fwpaths import FIRMWARE
from pathlib import Path


def build(target):
    r = CliRunner().invoke(main, ["node", "build", "--target", target, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_each_target_gets_its_files_with_their_hashes():
    for target in ("board", "pc"):
        got = build(target)
        want = sorted(p[:-3] + ".mpy" if p.endswith(".py") else p for p in image_files(Path(FIRMWARE), target))
        assert sorted(f["path"] for f in got["files"]) == want
        image = Path(got["image"]).read_bytes()
        assert got["image_bytes"] == len(image) and got["image_sha256"] == hashlib.sha256(image).hexdigest()
        for f in got["files"]:
            data = (Path(got["mpy_dir"]) / f["path"]).read_bytes()
            assert f["bytes"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest()
        assert json.loads(Path(got["image"]).with_suffix(".files.json").read_text()) == got
    board, pc = build("board"), build("pc")
    names = {f["path"] for f in board["files"]}
    assert {"boardmain.mpy", "hw_esp32.mpy"} <= names and not {"hw_unix.mpy", "romboot.mpy"} & names
    assert board["image_sha256"] != pc["image_sha256"]
