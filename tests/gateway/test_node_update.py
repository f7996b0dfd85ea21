"""edgemon node update's refusals before anything is sent, and its parts (the image server, the
target list): every problem named, nothing served, no node touched."""
import hashlib
import json
import subprocess
import sys
import urllib.request

import pytest

from edgemon.otaserve import ImageServer, parse_listen, read_targets


def test_the_image_server_serves_the_image_at_its_hash_only():
    blob = bytes(range(256)) * 40
    sha = hashlib.sha256(blob).hexdigest()
    with ImageServer(blob, sha, "127.0.0.1", 0) as srv:
        assert srv.url.endswith(f"/{sha}.romfs")
        with urllib.request.urlopen(srv.url, timeout=5) as resp:
            assert resp.headers["Content-Length"] == str(len(blob)) and resp.read() == blob
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(srv.url.replace(sha, "0" * 64), timeout=5)
        assert e.value.code == 404
    assert srv.served == [("127.0.0.1", len(blob))]


def test_targets_and_listen_address_are_checked_with_every_bad_line_named(tmp_path):
    f = tmp_path / "fleet.txt"
    f.write_text("# the canary\nqd/n1\n\nqd/n2  # second\nqd\nqd/n3/x\n")
    with pytest.raises(ValueError) as e:
        read_targets(f)
    assert f"{f}:5: 'qd'" in str(e.value) and f"{f}:6: 'qd/n3/x'" in str(e.value)
    f.write_text("qd/n1\nqd/n2  # second\n")
    assert read_targets(f) == ["qd/n1", "qd/n2"]
    assert parse_listen("192.168.10.2:8470") == ("192.168.10.2", 8470)
    for bad in ("8470", "host:", ":80", "h:99999"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_listen(bad)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgemon.cli", "node", "update", *args], capture_output=True,
                          text=True, timeout=60)


def test_refused_here_a_node_without_key_an_image_without_its_listing_or_a_listing_of_another(tmp_path):
    kf = tmp_path / "keys.toml"
    kf.write_text(f'[keys]\n"qd/n1" = "{"ab" * 32}"\n')
    kf.chmod(0o600)
    gt = tmp_path / "gateway.toml"
    gt.write_text(f'[gateway]\nid = "gw"\nstate_dir = "st"\n[mqtt]\nhost = "127.0.0.1"\nport = 1\n'
                  f'[influx]\nurl = "http://127.0.0.1:1"\ndatabase = "x"\n[trust]\nkeys_file = "{kf}"\n')
    img = tmp_path / "img.romfs"
    img.write_bytes(b"image")
    base = ("--config", str(gt), "--serve", "127.0.0.1:0", "--image", str(img))
    r = _cli(*base, "qd/n1", "qd/n9")
    assert r.returncode == 1 and "no key for qd/n9" in r.stderr, r.stderr
    r = _cli(*base, "qd/n1")
    assert r.returncode == 1 and "img.files.json" in r.stderr and "edgemon node build" in r.stderr
    (tmp_path / "img.files.json").write_text(json.dumps({"image_sha256": "0" * 64, "fw_version": "0.3.1"}))
    r = _cli(*base, "qd/n1")
    assert r.returncode == 1 and "does not describe" in r.stderr
    r = _cli(*base)
    assert r.returncode == 1 and "no node given" in r.stderr
    r = _cli("--config", str(gt), "--serve", "nohost", "--image", str(img), "qd/n1")
    assert r.returncode == 1 and "HOST:PORT" in r.stderr
