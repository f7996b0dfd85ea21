"""`edgemon gateway retire`: take a gateway that is gone for good out of a shared group.

A member of `mqtt.shared_group` keeps a persistent session on the broker (client id = its gateway
id), and Mosquitto goes on giving that session its share of the nodes' records while nobody reads
it. Nothing is lost - the nodes keep those records unconfirmed and send them again (after 30 s, up to
15 min apart) - but they reach the live members slowly. Retiring the member:

1. connects with its client id, then again with a clean session: the broker drops the session
   and the messages queued in it (the nodes still hold every one of them);
2. clears its retained claims (edge/v1/{site}/{node}/stored/{id}): the live members stop merging
   them (they were true, but they name a store nobody will drain).

Run it only for a gateway that will not come back with its store: one that will is simply started
again and drains what its session kept.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .config import GatewayConfig
from .confirm import claim_topic
from .mqtt_link import apply_credentials


class RetireError(Exception):
    """The broker could not be reached or refused the connection; str() says which."""


@dataclass
class Retired:
    gateway_id: str
    session_present: bool  # the broker held a session for it (now gone)
    claims_cleared: list[str] = field(default_factory=list)  # "site/node" of each retained claim cleared


def _client(cfg: GatewayConfig, client_id: str, clean: bool = True) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=clean)
    apply_credentials(c, cfg)
    return c


def _connect(c: mqtt.Client, cfg: GatewayConfig, timeout_s: float) -> bool:
    """Connect and wait for CONNACK; the session_present flag it carried."""
    got: dict = {}
    done = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties):
        got["rc"], got["present"] = reason_code, bool(flags.session_present)
        done.set()

    c.on_connect = on_connect
    try:
        c.connect(cfg.mqtt_host, cfg.mqtt_port, keepalive=30)
    except OSError as exc:
        raise RetireError(f"cannot reach the broker at {cfg.mqtt_host}:{cfg.mqtt_port}: {exc}") from None
    c.loop_start()
    if not done.wait(timeout_s):
        c.loop_stop()
        raise RetireError(f"no CONNACK from {cfg.mqtt_host}:{cfg.mqtt_port} in {timeout_s:.0f} s")
    if got["rc"].is_failure:
        c.loop_stop()
        raise RetireError(f"the broker refused the connection: {got['rc']} (mqtt.username / password_env?)")
    return got["present"]


def retire(cfg: GatewayConfig, gateway_id: str, listen_s: float = 2.0, timeout_s: float = 10.0) -> Retired:
    if gateway_id == cfg.client_id:
        raise RetireError(f"{gateway_id!r} is this config's own gateway id: retire another member, "
                          "from the config of a gateway that stays")
    # 1. The session. MQTT 3.1.1 answers a clean-session connect with session_present 0 always, so
    # a first connect resumes it (its CONNACK says whether there was one; what the broker then
    # hands over is the dead member's share, unconfirmed on the nodes), a second one ends it.
    present = False
    for clean in (False, True):
        c = _client(cfg, gateway_id, clean)
        was = _connect(c, cfg, timeout_s)
        present = present or was
        c.disconnect()
        c.loop_stop()
    # 2. Its retained claims: collected for listen_s, then each cleared with an empty retained message.
    found: list[tuple[str, str]] = []
    lock = threading.Lock()
    c = _client(cfg, f"{cfg.client_id}-retire-{int(time.time())}")

    def on_message(client, userdata, msg):
        parts = msg.topic.split("/")
        if msg.retain and msg.payload and len(parts) == 6 and parts[5] == gateway_id:
            with lock:
                found.append((parts[2], parts[3]))

    c.on_message = on_message
    _connect(c, cfg, timeout_s)
    c.subscribe(f"edge/v1/+/+/stored/{gateway_id}", qos=1)
    time.sleep(listen_s)
    with lock:
        claims = sorted(set(found))
    infos = [c.publish(claim_topic(site, node, gateway_id), b"", qos=1, retain=True) for site, node in claims]
    for info in infos:
        info.wait_for_publish(timeout_s)
    c.disconnect()
    c.loop_stop()
    return Retired(gateway_id, present, [f"{s}/{n}" for s, n in claims])
