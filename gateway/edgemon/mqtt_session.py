"""The gateway's MQTT session: one paho client, a persistent broker-side session (clean_session=False,
client id = gateway id), QoS 1 subscriptions, acknowledgements sent by hand (manual_ack=True).

Threads: paho's network thread runs the callbacks here (on_connect, on_subscribe, on_disconnect,
on_message), and they do no more than subscribe, record the outcome for start() and append each
message to the gateway's inbox. The journal thread (journal.py) calls ack() once a group is on
disk; the PUBACKs go out in arrival order (paho_acks.py). A message never acknowledged (the
gateway stopped or died first) is delivered again by the broker in the next session.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .confirm import CLAIM_SUBSCRIPTION
from .journal import Message
from .mqtt_link import apply_credentials
from .paho_acks import ack_in_order, topic_of

if TYPE_CHECKING:
    from .ingest import Gateway

log = logging.getLogger("edgemon.ingest")  # all the ingest's parts log as before the split

DATA_SUBSCRIPTION = "edge/v1/+/+/data"
STATUS_SUBSCRIPTION = "edge/v1/+/+/status"
EVENT_SUBSCRIPTION = "edge/v1/+/+/event"
SUBSCRIPTIONS = (DATA_SUBSCRIPTION, STATUS_SUBSCRIPTION, EVENT_SUBSCRIPTION)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class MqttSession:
    def __init__(self, gw: Gateway):
        self.gw = gw
        self.client: mqtt.Client | None = None
        self.subscribed = threading.Event()  # set once subscribed, or refused (connect_error)
        self.connect_error: str | None = None

    def create_client(self) -> mqtt.Client:
        """The paho client with this session's callbacks (start(), the caller's thread)."""
        cfg = self.gw.cfg
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
            manual_ack=True,
        )
        apply_credentials(client, cfg)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        self.client = client
        return client

    def ack(self, messages: Sequence[Message]) -> None:
        """Acknowledge messages now on disk, in the order given (journal thread)."""
        if self.client is not None:
            ack_in_order(self.client, messages)

    def subscriptions(self) -> list[tuple[str, int]]:
        group = self.gw.cfg.shared_group
        if group:
            # Each message to exactly one gateway of the group. Retained statuses are not sent to
            # shared subscriptions; silence liveness covers a node whose status came before.
            # The peers' claims (confirm.py) go to every gateway: not shared.
            return [(f"$share/{group}/{sub}", 1) for sub in SUBSCRIPTIONS] + \
                ([(CLAIM_SUBSCRIPTION, 1)] if self.gw.cfg.confirm else [])
        return [(sub, 1) for sub in SUBSCRIPTIONS]

    # ------------------------------------------------------------------ paho callbacks (paho's thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.connect_error = f"connection refused: {reason_code}"
            log.error("MQTT %s", self.connect_error)
            self.subscribed.set()  # wakes start(), which reports the error
            return
        log.info("MQTT connected (session_present=%s)", flags.session_present)
        client.subscribe(self.subscriptions())
        self.gw.confirmations.reconnected()

    def _on_subscribe(self, client, userdata, mid, reason_code_list, properties) -> None:
        failed = [str(rc) for rc in reason_code_list if rc.is_failure]
        if failed:
            self.connect_error = f"subscription refused ({', '.join(failed)}): check the broker ACL"
            log.error("MQTT %s", self.connect_error)
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.gw._accepting:
            log.warning("MQTT disconnected (%s); paho reconnects", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        gw = self.gw
        if not gw._accepting:
            return  # stopping: left unacknowledged, the broker delivers it again next session
        item = Message(topic_of(msg), msg.payload, _now_ms(), msg.mid, msg.qos)
        with gw._inbox_cond:
            gw._inbox.append(item)
            if len(gw._inbox) == 1:
                gw._inbox_cond.notify()
