"""`edgemon node provision` (a subprocess, as an operator runs it): the files it writes, what running
it again keeps, and the broker account and ACL it makes enforced by a real Mosquitto (a node
publishes only its own topics and reads only its own cmd)."""

from __future__ import annotations

import getpass
import shutil
import socket
import stat
import subprocess
import sys
import time
import tomllib

import paho.mqtt.client as paho
import pytest

from edgemon.keys import load_keys

GATEWAY_TOML = """# the gateway of the test bureau
[gateway]
id = "gw1"
state_dir = "state"   # relative to this file

[mqtt]
host = "127.0.0.1"
port = 1883

[influx]
url = "http://127.0.0.1:8086"
database = "edge"

[trust]
keys_file = "keys.toml"
"""


def edgemon(*args):
    return subprocess.run([sys.executable, "-m", "edgemon.cli", *args], capture_output=True, text=True, timeout=60)


def provision(tmp_path, site, node, *extra):
    return edgemon("node", "provision", "--config", str(tmp_path / "gateway.toml"), "--passwd",
                   str(tmp_path / "passwd"), "--acl", str(tmp_path / "acl"), site, node, *extra)


@pytest.fixture
def bureau(tmp_path):
    (tmp_path / "gateway.toml").write_text(GATEWAY_TOML)
    return tmp_path


def test_provision_with_a_ca_makes_the_nodes_client_certificate(bureau):
    from cryptography import x509

    from edgemon.pki import CertificateAuthority

    r = provision(bureau, "s1", "n1", "--ca", str(bureau / "no-ca"))
    assert r.returncode == 1 and "no CA here" in r.stderr and "account, key and ACL entry are made" in r.stderr
    CertificateAuthority(bureau / "ca").init()
    r = provision(bureau, "s1", "n1", "--ca", str(bureau / "ca"))
    assert r.returncode == 0, r.stderr
    crt = bureau / "state" / "provisioned" / "s1.n1.crt"
    assert f"client certificate {crt}" in r.stdout
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "s1.n1"
    assert stat.S_IMODE((bureau / "state" / "provisioned" / "s1.n1.key").stat().st_mode) == 0o600


def test_provision_writes_each_file_and_a_second_run_keeps_them(bureau):
    r = provision(bureau, "qd-plant", "node01", "--poll-s", "60")
    assert r.returncode == 0, r.stderr
    assert "broker account qd-plant.node01 (new password)" in r.stdout and "key new" in r.stdout
    keys = load_keys(bureau / "keys.toml")  # also checks its mode is 0600
    assert list(keys) == ["qd-plant/node01"] and len(keys["qd-plant/node01"]) == 32
    text = (bureau / "gateway.toml").read_text()
    assert text.startswith("# the gateway of the test bureau") and "# relative to this file" in text
    assert tomllib.loads(text)["sites"]["qd-plant"] == {"poll_s": 60.0, "nodes": ["node01"]}
    secrets = bureau / "state" / "provisioned" / "qd-plant.node01.secrets.json"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    s = __import__("json").loads(secrets.read_text())
    assert s["key"] == keys["qd-plant/node01"].hex() and s["mqtt"]["user"] == "qd-plant.node01"
    assert s["mqtt"]["password"] not in r.stdout and s["key"] not in r.stdout  # secrets not printed
    passwd = (bureau / "passwd").read_text()
    assert passwd.startswith("qd-plant.node01:") and s["mqtt"]["password"] not in passwd  # hashed
    acl = (bureau / "acl").read_text()
    assert "user qd-plant.node01\n" in acl and "topic read edge/v1/qd-plant/node01/cmd\n" in acl
    assert "topic write edge/v1/qd-plant/node01/data\n" in acl

    again = provision(bureau, "qd-plant", "node01")
    assert again.returncode == 0 and "(kept)" in again.stdout and "key kept" in again.stdout
    assert load_keys(bureau / "keys.toml") == keys and (bureau / "acl").read_text() == acl
    assert (bureau / "passwd").read_text() == passwd

    second = provision(bureau, "qd-plant", "node02")
    assert second.returncode == 0
    assert tomllib.loads((bureau / "gateway.toml").read_text())["sites"]["qd-plant"]["nodes"] == ["node01", "node02"]
    users = [ln for ln in (bureau / "acl").read_text().splitlines() if ln.startswith("user ")]
    assert users == ["user qd-plant.node01", "user qd-plant.node02"]

    rotated = provision(bureau, "qd-plant", "node01", "--rotate", "--show-secrets")
    assert rotated.returncode == 0 and "new password" in rotated.stdout
    new_keys = load_keys(bureau / "keys.toml")
    assert new_keys["qd-plant/node01"] != keys["qd-plant/node01"] and new_keys["qd-plant/node02"]
    assert new_keys["qd-plant/node01"].hex() in rotated.stdout  # asked for


def test_bad_input_is_refused_before_anything_is_written(bureau):
    r = provision(bureau, "qd plant", "node01")
    assert r.returncode == 1 and "SITE 'qd plant'" in r.stderr
    assert not (bureau / "keys.toml").exists() and not (bureau / "passwd").exists()
    (bureau / "gateway.toml").write_text(GATEWAY_TOML.replace('keys_file = "keys.toml"\n', ""))
    r = provision(bureau, "s", "n")
    assert r.returncode == 1 and "trust.keys_file: not set; fix:" in r.stderr
    r = edgemon("node", "provision", "--config", str(bureau / "nope.toml"), "s", "n")
    assert r.returncode == 1 and "not found" in r.stderr


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _client(port, user, password, got=None, sub=None):
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"{user}-{time.time_ns()}")
    c.username_pw_set(user, password)
    if got is not None:
        c.on_message = lambda cl, u, m: got.append((m.topic, m.payload))
    c.connect("127.0.0.1", port)
    c.loop_start()
    if sub:
        c.subscribe(sub, qos=1)
    time.sleep(0.3)
    return c


def test_the_broker_enforces_the_account_and_acl_it_makes(bureau):
    mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    assert provision(bureau, "s1", "n1").returncode == 0
    assert provision(bureau, "s1", "n2").returncode == 0
    import json
    n1 = json.loads((bureau / "state" / "provisioned" / "s1.n1.secrets.json").read_text())["mqtt"]
    # the gateway's own account (issue 13 writes this part of the ACL): reads all, writes commands
    subprocess.run([shutil.which("mosquitto_passwd"), "-b", str(bureau / "passwd"), "gw", "gwpass"], check=True)
    acl = bureau / "acl"
    acl.write_text("user gw\ntopic read edge/v1/#\ntopic write edge/v1/+/+/cmd\n\n" + acl.read_text())
    port = _free_port()
    conf = bureau / "mosquitto.conf"
    # (`user`: as root Mosquitto would drop to the mosquitto user, who cannot read our 0600 files)
    conf.write_text(f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous false\n"
                    f"password_file {bureau / 'passwd'}\n"
                    f"acl_file {acl}\npersistence false\n")
    log = open(bureau / "mosquitto.log", "w")
    proc = subprocess.Popen([mosq, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    clients = []
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("mosquitto did not start: " + (bureau / "mosquitto.log").read_text())
        seen, cmds = [], []
        clients.append(_client(port, "gw", "gwpass", seen, "edge/v1/#"))
        node = _client(port, n1["user"], n1["password"], cmds, "edge/v1/s1/+/cmd")  # asks for n2's too
        clients.append(node)
        node.publish("edge/v1/s1/n1/data", b"own", qos=1).wait_for_publish(5)
        node.publish("edge/v1/s1/n2/data", b"forged", qos=1).wait_for_publish(5)  # another node's topic
        node.publish("edge/v1/s1/n1/cmd", b"self-command", qos=1).wait_for_publish(5)
        clients[0].publish("edge/v1/s1/n1/cmd", b"for n1", qos=1).wait_for_publish(5)
        clients[0].publish("edge/v1/s1/n2/cmd", b"for n2", qos=1).wait_for_publish(5)
        time.sleep(1.0)
        assert ("edge/v1/s1/n1/data", b"own") in seen
        assert not [t for t, p in seen if p in (b"forged", b"self-command")], seen
        assert cmds == [("edge/v1/s1/n1/cmd", b"for n1")], cmds
        bad = paho.Client(paho.CallbackAPIVersion.VERSION2)
        bad.username_pw_set(n1["user"], "wrong")
        rc = []
        bad.on_connect = lambda c, u, f, reason, p: rc.append(reason)
        bad.connect("127.0.0.1", port)
        bad.loop_start()
        time.sleep(0.5)
        bad.loop_stop()
        assert rc and rc[0].is_failure, rc
    finally:
        for c in clients:
            c.loop_stop()
            c.disconnect()
        proc.terminate()
        proc.wait(10)
