"""The production files under server/ are the ones that work: the Mosquitto configs run on a real
Mosquitto (paths moved into a temporary folder, ports onto free loopback ones) with the ACL and TLS
they name; the InfluxDB 1.x retention statements run on a real InfluxDB and keep the aggregates
while raw data stays in its 400-day policy; the compose stack's gateway.toml passes the gateway's
own config check. (Docker cannot run here: compose.yaml is checked for its references only.)"""

from __future__ import annotations

import getpass
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from edgemon import broker, config
from edgemon.dev.stack import _wait_until, ensure_installed, free_port
from edgemon.influx import InfluxV1Writer
from edgemon.pki import CertificateAuthority

pytestmark = pytest.mark.integration
SERVER = Path(__file__).resolve().parents[2] / "server"


def _broker_files(d: Path):
    ca = CertificateAuthority(d / "ca")
    ca.init()
    server = ca.server(d / "ca", ["127.0.0.1"])
    acl = d / "acl"
    acl.write_text(broker.gateway_block() + broker.node_block("s1", "n1"))
    passwd = d / "passwd"
    broker.set_password(passwd, "gateway", "gw-pw")
    broker.set_password(passwd, "s1.n1", "n1-pw")
    return ca, server, acl, passwd


def _run_conf(text: str, d: Path):
    ports = {}

    def listener(m):
        port = free_port()
        ports[int(m.group(1))] = port
        return f"listener {port} 127.0.0.1"

    text = re.sub(r"^listener (\d+)( \S+)?$", listener, text, flags=re.M)
    text = re.sub(r"^log_dest .*$", f"log_dest file {d / 'mosquitto.log'}", text, flags=re.M)
    text = re.sub(r"^persistence_location .*$", f"persistence_location {d}/", text, flags=re.M)
    conf = d / "mosquitto.conf"
    conf.write_text(f"user {getpass.getuser()}\n" + text)
    proc = subprocess.Popen([ensure_installed(("mosquitto",))["mosquitto"], "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=open(d / "stderr.log", "wb"))

    def answers():
        for p in ports.values():
            socket.create_connection(("127.0.0.1", p), timeout=0.5).close()
        return True

    try:
        _wait_until(answers, 15, "mosquitto", proc, d / "mosquitto.log")
    except Exception:
        proc.kill()
        raise AssertionError((d / "stderr.log").read_text() + (d / "mosquitto.log").read_text())
    return proc, ports


def _check_running(ports, plain: int, tls: int, ca: Path):
    from test_broker_security import connect, context, stop

    assert connect(ports[plain])[1].startswith("refused"), "anonymous"
    c, outcome = connect(ports[plain], "gateway", "gw-pw")
    assert outcome == "connected"
    seen = []
    c.on_message = lambda cl, u, m: seen.append(m.payload)
    c.subscribe("edge/v1/#", qos=1)
    time.sleep(0.3)
    n, outcome = connect(ports[tls], "s1.n1", "n1-pw", tls=context(ca))
    assert outcome == "connected"
    n.publish("edge/v1/s1/n1/data", b"own", qos=1).wait_for_publish(5)
    n.publish("edge/v1/s1/n2/data", b"forged", qos=1).wait_for_publish(5)
    time.sleep(0.6)
    stop(c, n)
    assert seen == [b"own"], seen


def test_the_production_mosquitto_conf_runs_with_its_acl_and_tls(tmp_path):
    ensure_installed(("mosquitto", "mosquitto_passwd"))
    ca, server, acl, passwd = _broker_files(tmp_path)
    text = (SERVER / "mosquitto.conf").read_text()
    for old, new in (("/etc/mosquitto/passwd", passwd), ("/etc/mosquitto/acl", acl),
                     ("/etc/edgemon/ca/ca.crt", ca.cert_path), ("/etc/edgemon/ca/crl.pem", ca.crl_path),
                     ("/etc/mosquitto/certs/server.crt", server.cert), ("/etc/mosquitto/certs/server.key", server.key)):
        assert old in text, old
        text = text.replace(old, str(new))
    proc, ports = _run_conf(text, tmp_path)
    try:
        _check_running(ports, 1883, 8883, ca.cert_path)
    finally:
        proc.terminate()
        proc.wait(10)
    # the commented mutual-TLS listener is a working one once uncommented
    mtls = "\n".join(ln[1:] if ln.startswith("#") and not ln.startswith("# ") and ln[1:2].isalpha() else ln
                     for ln in text.splitlines() if not ln.startswith("#persistent"))
    assert "require_certificate true" in mtls and "\nuse_identity_as_username true" in mtls
    proc, ports = _run_conf(mtls, tmp_path)
    try:
        from test_broker_security import connect, context, stop
        node = ca.node(tmp_path / "nodes", "s1", "n1")
        c, outcome = connect(ports[8884], tls=context(ca.cert_path, node.cert, node.key))
        assert outcome == "connected"
        stop(c)
        assert connect(ports[8884], "s1.n1", "n1-pw", tls=context(ca.cert_path))[1].startswith("refused")
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_compose_mosquitto_conf_runs_with_its_acl_and_tls(tmp_path):
    ensure_installed(("mosquitto", "mosquitto_passwd"))
    ca, server, acl, passwd = _broker_files(tmp_path)
    edgemon_dir = tmp_path / "edgemon"
    edgemon_dir.mkdir()
    for name, src in (("passwd", passwd), ("acl", acl), ("ca.crt", ca.cert_path), ("server.crt", server.cert),
                      ("server.key", server.key)):
        (edgemon_dir / name).write_bytes(src.read_bytes())
    (edgemon_dir / "passwd").chmod(0o600)
    text = (SERVER / "compose" / "mosquitto.conf").read_text().replace("/mosquitto/config/edgemon", str(edgemon_dir))
    proc, ports = _run_conf(text, tmp_path)
    try:
        _check_running(ports, 1883, 8883, ca.cert_path)
    finally:
        proc.terminate()
        proc.wait(10)


def test_retention_keeps_the_aggregates_and_ages_out_raw_data(stack):
    db = f"ret_{int(time.time() * 1000) % 10**9}"
    influx = InfluxV1Writer(stack.influx_url, db)

    def statements(name):
        text = (SERVER / "influxdb" / name).read_text()
        return [ln.replace('"edge"', f'"{db}"') for ln in text.splitlines() if ln.strip() and not ln.startswith("--")]

    try:
        for q in statements("retention-v1.influxql"):
            influx.query(q)
        rps = {r["name"]: r for r in influx.query_rows("SHOW RETENTION POLICIES")}
        assert rps["raw"]["duration"] == "9600h0m0s" and rps["raw"]["default"] is True
        assert rps["kept"]["duration"] == "0s"
        now = int(time.time() * 1000)
        influx.write([f"reading,site=s1,node=n1,param=w01018 value=31.5,flag=\"N\" {now - 3600_000}",
                      f"aggregate,site=s1,node=n1,param=w01018,period=hour avg=30.25,cou=1.5,flag=\"N\",n=360i "
                      f"{now - 7200_000}",
                      f"aggregate,site=s1,node=n1,param=w01018,period=day avg=29.0,flag=\"N\",n=8640i "
                      f"{now - 5 * 86400_000}"])  # older than the copy's window: copied on an earlier run
        for q in statements("keep-aggregates-v1.influxql"):
            influx.query(q)
        kept = influx.query_rows(f'SELECT * FROM "{db}"."kept"."aggregate" GROUP BY *')
        assert [(r["period"], r["avg"], r["flag"], r["n"]) for r in kept] == [("hour", 30.25, "N", 360)], kept
        assert influx.query_rows(f'SELECT * FROM "{db}"."kept"."reading"') == []
        for q in statements("keep-aggregates-v1.influxql"):  # the hourly timer again: the same one point
            influx.query(q)
        assert len(influx.query_rows(f'SELECT * FROM "{db}"."kept"."aggregate" GROUP BY *')) == 1
    finally:
        influx.query(f'DROP DATABASE "{db}"')
        influx.close()


def test_the_compose_stack_references_what_exists_and_its_gateway_config_passes(tmp_path):
    doc = yaml.safe_load((SERVER / "compose" / "compose.yaml").read_text())
    assert set(doc["services"]) == {"mosquitto", "influxdb", "grafana", "gateway"}
    made_by_operator = {ln.strip().rstrip("/") for ln in (SERVER / "compose" / ".gitignore").read_text().splitlines()}
    for name, svc in doc["services"].items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            src = re.sub(r"\$\{[A-Z_]+:-([^}]+)\}", r"\1", src)
            if src.startswith("."):
                rel = Path(src).parts[0] if src.startswith("./") else None
                assert (SERVER / "compose" / src).exists() or rel in made_by_operator, (name, vol)
        for s in svc.get("secrets", []):
            assert s in doc["secrets"], (name, s)
    for secret in doc["secrets"].values():
        assert secret["file"].startswith("./secrets/"), secret  # outside the repository (.gitignore)
    env = doc["services"]["grafana"]["environment"]
    prov = (SERVER / "grafana" / "provisioning").rglob("*.yaml")
    needed = set(re.findall(r"\$__env\{(EDGEMON_\w+)\}", "".join(p.read_text() for p in prov)))
    assert needed <= set(env), needed - set(env)
    # the gateway's config, with the container's secret and site paths moved here
    text = (SERVER / "compose" / "gateway.toml").read_text()
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "mqtt_password").write_text("pw\n")
    (tmp_path / "secrets" / "influx_token").write_text("token\n")
    site = tmp_path / "site"
    site.mkdir()
    (site / "keys.toml").write_text("[keys]\n")
    (site / "keys.toml").chmod(0o600)
    (site / "alarms.toml").write_text('[sites.s1]\nprofile = "gb18918-1a"\n')
    text = text.replace("/run/secrets", str(tmp_path / "secrets")).replace("/etc/edgemon/site", str(site))
    text = text.replace("/var/lib/edgemon", str(tmp_path / "state"))
    (tmp_path / "gateway.toml").write_text(text)
    loaded = config.load(tmp_path / "gateway.toml")
    cfg = loaded.gateway
    assert (cfg.mqtt_password, cfg.influx_token, cfg.influx_api) == ("pw", "token", "v2")
    unit = (SERVER / "systemd" / "edgemon-gateway.service").read_text()
    assert "LoadCredential=mqtt-password:" in unit and "/run/credentials/edgemon-gateway.service/mqtt-password" in unit
