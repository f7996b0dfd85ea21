"""The gateway's MQTT link over TLS with its CA pinned and its secrets from files (issue 13):
gateway.toml with tls = true, ca_file and password_file, loaded and run against a real Mosquitto
TLS listener; a record a node publishes over TLS reaches InfluxDB. With another CA pinned the
gateway refuses to start, naming the broker and the certificate failure."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from edgemon import broker, config
from edgemon.dev.stack import Mosquitto, TlsListener
from edgemon.influx import InfluxV1Writer
from edgemon.ingest import Gateway, GatewayError
from edgemon.pki import CertificateAuthority

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    d = tmp_path_factory.mktemp("tlsbroker")
    ca = CertificateAuthority(d / "ca")
    ca.init()
    server = ca.server(d / "ca", ["127.0.0.1"])
    acl = d / "acl"
    acl.write_text(broker.gateway_block("gw") + broker.node_block("s1", "n1"))
    mosq = Mosquitto(d, acl_path=acl, tls=TlsListener(ca.cert_path, server.cert, server.key))
    mosq.add_user("gw", "gw-secret")
    mosq.add_user("s1.n1", "n1-secret")
    mosq.start()
    yield mosq, ca, d
    mosq.stop()


def write_config(d, mosq, ca_path, influx_url, db, **mqtt_extra):
    (d / "secrets").mkdir(exist_ok=True)
    pw = d / "secrets" / "mqtt-password"
    pw.write_text("gw-secret\n")
    pw.chmod(0o600)
    extra = "".join(f'{k} = {json.dumps(v)}\n' for k, v in mqtt_extra.items())
    path = d / f"gateway-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(f"""[gateway]
id = "gw-tls-{uuid.uuid4().hex[:6]}"
state_dir = "state-{uuid.uuid4().hex[:6]}"
[mqtt]
host = "127.0.0.1"
port = {mosq.tls.port}
username = "gw"
password_file = "secrets/mqtt-password"
tls = true
ca_file = "{ca_path}"
{extra}[influx]
url = "{influx_url}"
database = "{db}"
""")
    return path


def test_the_gateway_ingests_over_tls_with_its_password_from_a_file(tls_broker, stack):
    mosq, ca, d = tls_broker
    db = stack.new_database()
    loaded = config.load(write_config(d, mosq, ca.cert_path, stack.influx_url, db))
    cfg = loaded.gateway
    assert cfg.mqtt_password == "gw-secret" and cfg.mqtt_tls_ca == ca.cert_path
    gw = Gateway(cfg)
    gw.start()
    try:
        from test_broker_security import connect, context, stop
        node, outcome = connect(mosq.tls.port, "s1.n1", "n1-secret", tls=context(ca.cert_path))
        assert outcome == "connected"
        ts = int(time.time() * 1000)
        rec = {"ts": ts, "seq": 1, "clk": "ntp", "readings": {"w01018": {"v": 31.5, "f": "N"}}}
        node.publish("edge/v1/s1/n1/data", json.dumps(rec), qos=1).wait_for_publish(5)
        stop(node)
        influx = InfluxV1Writer(stack.influx_url, db)
        deadline = time.monotonic() + 15
        rows = []
        while time.monotonic() < deadline and not rows:
            rows = influx.query_rows('SELECT "value" FROM "reading" WHERE "site" = \'s1\'')
            time.sleep(0.2)
        influx.close()
        assert [r["value"] for r in rows] == [31.5], rows
    finally:
        gw.stop()


def test_a_wrong_ca_stops_the_gateway_at_start(tls_broker, stack):
    mosq, ca, d = tls_broker
    other = CertificateAuthority(d / f"other-{uuid.uuid4().hex[:6]}")
    other.init(cn="not the broker's CA")
    cfg = config.load(write_config(d, mosq, other.cert_path, stack.influx_url, stack.new_database())).gateway
    cfg.connect_timeout_s = 5
    gw = Gateway(cfg)
    with pytest.raises(GatewayError) as err:
        gw.start()
    gw.stop()
    assert f"127.0.0.1:{mosq.tls.port}" in str(err.value) and "CERTIFICATE_VERIFY_FAILED" in str(err.value)


def test_tls_settings_are_checked_all_at_once(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text("""[gateway]
state_dir = "state"
[mqtt]
username = "gw"
password_file = "secrets/missing"
password_env = "ALSO_THIS"
tls = true
cert_file = "gw.crt"
[influx]
url = "http://127.0.0.1:8086"
token_file = "nowhere/token"
""")
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    text = str(err.value)
    for field, words in (("mqtt.password_env", "keep one of them"), ("mqtt.ca_file", "TLS needs the CA"),
                         ("mqtt.cert_file", "not found"), ("mqtt.key_file", "mutual TLS needs both"),
                         ("influx.token_file", "No such file")):
        assert field in text and words in text, (field, text)
    assert str(path) in text
