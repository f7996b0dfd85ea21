"""gateway.toml: loading and resolving, errors naming file, field and fix, the shipped example."""

import os

import pytest
from click.testing import CliRunner

from edgemon.config import ConfigError, load
from edgemon.gateway_cli import gateway as gateway_cli


GOOD = """
[gateway]
id = "gw1"
state_dir = "state"
[mqtt]
host = "127.0.0.1"
port = 1883
username = "gateway"
password_env = "EDGEMON_TEST_PW"
[influx]
api = "v2"
url = "http://127.0.0.1:8086"
bucket = "edge"
org = "bureau"
token_env = "EDGEMON_TEST_TOKEN"
[sites.qd-plant]
poll_s = 5
nodes = ["node01", "node02"]
"""


def test_config_loads_and_resolves(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEMON_TEST_PW", "pw")
    monkeypatch.setenv("EDGEMON_TEST_TOKEN", "tok")
    path = tmp_path / "gateway.toml"
    path.write_text(GOOD)
    cfg = load(path).gateway
    assert (cfg.influx_api, cfg.influx_db, cfg.influx_org, cfg.influx_token) == ("v2", "edge", "bureau", "tok")
    assert cfg.state_dir == tmp_path / "state" and cfg.mqtt_password == "pw"
    assert cfg.nodes == [("qd-plant", "node01", 5.0), ("qd-plant", "node02", 5.0)]
    result = CliRunner().invoke(gateway_cli, ["check-config", str(path)])
    assert result.exit_code == 0 and "ok: mqtt 127.0.0.1:1883 as gw1" in result.output


def test_config_errors_name_file_field_and_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEMON_TEST_TOKEN", raising=False)
    monkeypatch.setenv("EDGEMON_TEST_PW", "pw")
    keys = tmp_path / "keys.toml"
    keys.write_text("[keys]\n")
    os.chmod(keys, 0o640)
    path = tmp_path / "gateway.toml"
    path.write_text(GOOD.replace('api = "v2"', 'api = "v3"').replace("port = 1883", 'port = "1883"')
                    .replace('nodes = ["node01", "node02"]', 'nodes = ["bad node"]')
                    + f'[trust]\nkeys_file = "{keys}"\nbogus = 1\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    text = str(info.value)
    for expected in (
        f'{path}: influx.api: expected "v1" (/write) or "v2" (/api/v2/write), got \'v3\'',
        f"{path}: mqtt.port: expected an integer, got '1883'",
        f"{path}: influx.token_env: environment variable EDGEMON_TEST_TOKEN is not set",
        f"{path}: sites.qd-plant.nodes[0]: node id must match",
        f"{path}: trust.bogus: unknown field",
        f"{path}: trust.keys_file: {keys}: mode 0640 lets group/others read it; node keys must be private; fix: chmod 600 {keys}",
    ):
        assert expected in text, text
    result = CliRunner().invoke(gateway_cli, ["check-config", str(path)])
    assert result.exit_code == 1 and "influx.api" in result.output


def test_shipped_example_config_is_valid(monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("EDGEMON_MQTT_PASSWORD", "pw")
    example = Path(__file__).resolve().parents[2] / "server" / "gateway.example.toml"
    loaded = load(example, check_keys=False)  # the keys file lives on the gateway host only
    assert loaded.gateway.nodes == [("qd-plant", "node01", 10.0), ("laixi-river", "node01", 60.0),
                                    ("laixi-river", "node02", 60.0)]
    conf = (example.parent / "mosquitto.conf").read_text()
    assert "max_queued_messages 1000000" in conf and "persistence true" in conf
    # Plain MQTT only on loopback (the gateway on this host); every listener reachable from elsewhere
    # is TLS (a certfile before the next listener); anonymous clients refused, the ACL enforced.
    blocks = [b.splitlines() for b in ("\n" + conf).split("\nlistener ")[1:]]
    assert blocks, "no listener"
    for b in blocks:
        port_addr = b[0].split()
        tls = any(ln.startswith("certfile ") for ln in b)
        assert tls or port_addr[1:] == ["127.0.0.1"], f"plain MQTT listener {b[0]!r} not bound to loopback"
    assert [b[0] for b in blocks] == ["1883 127.0.0.1", "8883"]
    lines = conf.splitlines()
    assert "allow_anonymous false" in lines and "acl_file /etc/mosquitto/acl" in lines
    assert "allow_anonymous false" in conf
