"""`edgemon node config`: node.json from a site inventory and the provisioned secrets, checked by the
firmware's own validator; a bad inventory is refused with every problem at once and nothing written."""

import json
import stat

from click.testing import CliRunner

from edgemon.cli import main

INVENTORY = """format = 1
[sites.qd-plant]
poll_s = 10
broker = { host = "10.20.0.5", port = 1883 }
wifi = { ssid = "qd-plant-iot", password_env = "QD_WIFI_PASSWORD" }
[sites.qd-plant.nodes.node01]
bus = { kind = "rtu", uart = 2, baud = 9600, tx = 17, rx = 16, de = 4 }
analyzers = [
  { name = "cod", profile = "cod_hach_cdab", unit = 1 },
  { name = "flow", profile = "flow_lmag", unit = 2, poll_s = 60 },
]
[sites.qd-plant.nodes.node02]
poll_s = 30
broker = { host = "10.20.0.6" }
analyzers = [{ name = "ph", profile = "ph_temp", unit = 3, transport = { kind = "tcp", host = "10.20.1.9", port = 502 } }]
"""
SECRETS = {"site": "qd-plant", "node": "node01", "mqtt": {"user": "qd-plant.node01", "password": "pw-1"}, "key": "ab" * 32}


def run(tmp_path, inventory, node="node01", secrets=SECRETS, env=None):
    (tmp_path / "sites.toml").write_text(inventory)
    (tmp_path / "s.json").write_text(json.dumps(dict(secrets, node=node) if secrets is SECRETS else secrets))
    out = tmp_path / "node.json"
    r = CliRunner().invoke(main, ["node", "config", "--inventory", str(tmp_path / "sites.toml"), "--secrets",
                                  str(tmp_path / "s.json"), "qd-plant", node, "-o", str(out)],
                           env={"QD_WIFI_PASSWORD": "wifi-pw"} if env is None else env)
    return r, out


def test_a_node_config_from_the_inventory_and_the_secrets(tmp_path):
    r, out = run(tmp_path, INVENTORY)
    assert r.exit_code == 0, r.output
    assert "2 analyzer(s), 3 parameter(s)" in r.output  # the profiles' values, as the firmware reads them
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    cfg = json.loads(out.read_text())
    assert cfg["mqtt"] == {"host": "10.20.0.5", "port": 1883, "user": "qd-plant.node01", "password": "pw-1"}
    assert cfg["key"] == "ab" * 32 and cfg["wifi"] == {"ssid": "qd-plant-iot", "password": "wifi-pw"}
    assert [(a["name"], a["profile"], a["unit"], a["transport"]["kind"]) for a in cfg["analyzers"]] == [
        ("cod", "cod_hach_cdab", 1, "rtu"), ("flow", "flow_lmag", 2, "rtu")]
    assert cfg["analyzers"][1]["poll_s"] == 60 and "values" not in cfg["analyzers"][0]  # profiles stay by name
    # a node's own broker, poll period and transport override the site's
    r2, out2 = run(tmp_path, INVENTORY, node="node02")
    assert r2.exit_code == 0, r2.output
    cfg2 = json.loads(out2.read_text())
    assert cfg2["poll_s"] == 30 and cfg2["mqtt"]["host"] == "10.20.0.6" and cfg2["mqtt"]["port"] == 1883
    assert cfg2["analyzers"][0]["transport"] == {"kind": "tcp", "host": "10.20.1.9", "port": 502}


def test_every_problem_at_once_and_nothing_written(tmp_path):
    bad = (INVENTORY.replace("format = 1\n", "")
           .replace('profile = "cod_hach_cdab", unit = 1', 'profile = "cod_hach", unit = 1')
           .replace('unit = 2, poll_s = 60', 'unit = 300, poll_s = 60')
           .replace("[sites.qd-plant.nodes.node01]\n", '[sites.qd-plant.nodes.node01]\ncolour = "red"\n'))
    r, out = run(tmp_path, bad, env={})
    assert r.exit_code == 1 and not out.exists()
    lines = [ln for ln in r.output.splitlines() if ln.startswith(str(tmp_path / "sites.toml"))]
    assert len(lines) == 5, r.output
    want = ["format: missing", "nodes.node01.colour: unknown field", "wifi.password_env: $QD_WIFI_PASSWORD is not set",
            "analyzers[0].profile: no profile file", "analyzers[1].unit: must be an integer 1-247, got 300"]
    for ln, w in zip(lines, want):
        assert w in ln and "; fix:" in ln, (ln, w)


def test_format_site_node_and_secrets_are_checked(tmp_path):
    r, _ = run(tmp_path, INVENTORY.replace("format = 1", "format = 2"))
    assert r.exit_code == 1 and "format: 2: this edgemon reads format 1" in r.output
    r, _ = run(tmp_path, INVENTORY, node="node09")
    assert r.exit_code == 1 and "sites.qd-plant.nodes.node09: no such node" in r.output and "node01, node02" in r.output
    r, _ = run(tmp_path, INVENTORY, secrets={"site": "qd-plant", "node": "node02", "mqtt": {"user": "u", "password": "p"},
                                               "key": "ab" * 32})
    assert r.exit_code == 1 and "the secrets of qd-plant/node02, not qd-plant/node01" in r.output
    r, _ = run(tmp_path, INVENTORY, secrets={"mqtt": {}})
    assert r.exit_code == 1 and "not a provisioned secrets file" in r.output
