"""The local stack starts real servers, refuses anonymous clients, and stops what it started."""

import os
import time

import paho.mqtt.client as mqtt
import pytest
import requests

from edgemon.dev.stack import LocalStack, StackError

pytestmark = pytest.mark.integration


def _connects(host, port, user, password) -> bool:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{time.monotonic_ns()}")
    if user is not None:
        c.username_pw_set(user, password)
    result = {}
    c.on_connect = lambda cl, ud, flags, rc, props=None: result.setdefault("rc", rc)
    c.connect(host, port)
    c.loop_start()
    deadline = time.monotonic() + 5
    while "rc" not in result and time.monotonic() < deadline:
        time.sleep(0.05)
    c.loop_stop()
    c.disconnect()
    return result.get("rc") is not None and not result["rc"].is_failure


def test_broker_requires_a_password(stack):
    assert _connects(stack.mqtt_host, stack.mqtt_port, stack.mqtt_user, stack.mqtt_password)
    assert not _connects(stack.mqtt_host, stack.mqtt_port, None, None), "anonymous client was accepted"
    assert not _connects(stack.mqtt_host, stack.mqtt_port, stack.mqtt_user, "wrong-password")


def test_added_user_can_connect_without_restart(stack):
    pw = stack.add_mqtt_user("late_joiner")
    assert _connects(stack.mqtt_host, stack.mqtt_port, "late_joiner", pw)


def test_node_accounts_log_in_on_a_running_broker(stack):
    user, pw = stack.local.add_node("stacksite", "node-7")
    assert user == "stacksite.node-7"
    assert _connects(stack.mqtt_host, stack.mqtt_port, user, pw)
    assert not _connects(stack.mqtt_host, stack.mqtt_port, user, pw + "x")
    assert stack.local.describe()["stacksite/node-7"] == f"user {user} password {pw}"
    with pytest.raises(StackError, match="node 'a b' is not an identifier"):
        stack.local.add_node("stacksite", "a b")


def test_influx_answers_and_has_the_database(stack):
    assert requests.get(stack.influx_url + "/ping", timeout=5).status_code == 204
    r = requests.get(stack.influx_url + "/query", params={"q": "SHOW DATABASES"}, timeout=5)
    names = [v[0] for v in r.json()["results"][0]["series"][0]["values"]]
    assert stack.influx_db in names


def test_servers_bind_loopback_only(stack):
    conf = stack.local.mosquitto.conf_path.read_text()
    assert f"listener {stack.mqtt_port} 127.0.0.1" in conf
    assert "allow_anonymous false" in conf
    assert f'bind-address = "127.0.0.1:{stack.local.influx.port}"' in stack.local.influx.conf_path.read_text()


def test_stop_leaves_no_process(tmp_path):
    s = LocalStack(tmp_path).start()
    pids = [s.mosquitto.proc.pid, s.influx.proc.pid]
    s.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_port_in_use_is_a_clear_error(stack, tmp_path):
    s = LocalStack(tmp_path)
    s.mosquitto.port = stack.mqtt_port  # already taken by the session's broker
    with pytest.raises(StackError, match="mosquitto"):
        s.start()
    s.stop()
