"""The deferred-PUBACK workaround (edgemon/paho_acks.py) and what it relies on in paho-mqtt's private
fields. These fail loudly, naming the paho version and what is missing, when a paho upgrade changes
any of it: the version is outside the checked range, the fast path is off, a private field is gone
or looks different, or the queued PUBACKs do not reach the broker. And the gateway, against the real
Mosquitto through a relay that reads the wire: its PUBACKs go out in arrival order, only once the
journal's frame is fsync'd, by the fast path."""

from __future__ import annotations

import collections
import json
import re
import socket
import threading
import time
import tomllib
import uuid
from pathlib import Path

import paho.mqtt
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgemon import paho_acks

from . import test_ingest_against_servers as servers
from .test_ingest_against_servers import TS, record, wait_for

run = servers.run  # the fixture: a private database, site and publisher on the real servers

ROOT = Path(__file__).resolve().parents[2]
PAHO = paho.mqtt.__version__
FIX = ("re-read paho's Client._packet_queue, _packet_write and ack() for this version, then adjust "
       "gateway/edgemon/paho_acks.py (CHECKED_VERSIONS, PIN) and the pin in pyproject.toml")


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_installed_and_locked_paho_are_in_the_checked_range():
    low, high = paho_acks.CHECKED_VERSIONS
    assert low <= version_tuple(PAHO)[:2] < high, (
        f"paho-mqtt {PAHO} is installed, but paho_acks.py was checked against >= {low}, < {high} only: {FIX}")
    locked = re.search(r"^paho-mqtt==(\S+)", (ROOT / "requirements.lock").read_text(), re.M)
    assert locked, "requirements.lock names no paho-mqtt==version"
    assert low <= version_tuple(locked.group(1))[:2] < high, (
        f"requirements.lock pins paho-mqtt {locked.group(1)}, outside the range paho_acks.py was checked against: {FIX}")


def test_pyproject_pins_paho_to_the_checked_range():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    paho_deps = [d for d in deps if d.replace("_", "-").startswith("paho-mqtt")]
    assert paho_deps == [paho_acks.PIN], (
        f"pyproject.toml requires {paho_deps}, paho_acks.py was checked for {paho_acks.PIN!r}: keep them the same")


def test_fast_path_is_on_with_the_installed_paho():
    assert paho_acks.FAST_ACK, (
        f"paho-mqtt {PAHO}: paho_acks.FAST_ACK is False (major version {PAHO.split('.')[0]!r}, "
        f"Client._packet_queue present: {hasattr(mqtt.Client, '_packet_queue')}), so every PUBACK goes "
        f"through client.ack() one by one: {FIX}")


def test_the_queued_puback_is_the_entry_paho_itself_queues():
    """client.ack() on a client with no network thread and no socket leaves its packet in _out_packet:
    the fast path must append exactly that."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"paho-acks-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv311, clean_session=False, manual_ack=True)
    out = getattr(client, "_out_packet", None)
    assert isinstance(out, collections.deque), (
        f"paho-mqtt {PAHO}: Client._out_packet is {type(out).__name__}, not the deque paho_acks.py appends to: {FIX}")
    client.ack(0x1234, 1)
    assert len(out) == 1, f"paho-mqtt {PAHO}: client.ack() did not queue one packet in _out_packet: {FIX}"
    assert out[-1] == paho_acks.puback_packet(0x1234), (
        f"paho-mqtt {PAHO}: paho queues {out[-1]!r} for a PUBACK, paho_acks.py queues "
        f"{paho_acks.puback_packet(0x1234)!r}: {FIX}")


class Sub:
    """A client like the gateway's (persistent session, manual acknowledgements) on the real broker."""

    def __init__(self, stack, client_id: str, topic: str, clean_session: bool = False):
        self.messages: list[mqtt.MQTTMessage] = []
        self.subscribed = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                        clean_session=clean_session, manual_ack=True)
        if stack.mqtt_user is not None:
            c.username_pw_set(stack.mqtt_user, stack.mqtt_password)
        c.on_connect = lambda client, *_: client.subscribe(topic, 1)
        c.on_subscribe = lambda *_: self.subscribed.set()
        c.on_message = lambda client, userdata, msg: self.messages.append(msg)
        c.connect(stack.mqtt_host, stack.mqtt_port)
        c.loop_start()
        assert self.subscribed.wait(10), "no subscription from the broker within 10 s"
        self.client = c

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.integration
def test_fast_path_acks_reach_the_real_broker(stack, run):
    """Six messages delivered, five acknowledged by ack_in_order (which must not fall back to
    client.ack): after a reconnect the broker sends again only the sixth."""
    topic = f"paho-acks/{uuid.uuid4().hex[:8]}"
    client_id = f"paho-acks-{uuid.uuid4().hex[:8]}"
    sub = Sub(stack, client_id, topic)
    try:
        client = sub.client
        for name, kind in (("_out_packet", collections.deque), ("_sockpairW", socket.socket),
                           ("_thread", threading.Thread), ("_manual_ack", bool)):
            value = getattr(client, name, None)
            assert isinstance(value, kind), (
                f"paho-mqtt {PAHO}: a connected Client's {name} is {value!r}, paho_acks.py needs a "
                f"{kind.__name__} there: {FIX}")
        assert client._manual_ack is True, f"paho-mqtt {PAHO}: Client._manual_ack is not manual_ack=True: {FIX}"
        assert client.on_socket_register_write is None, f"paho-mqtt {PAHO}: on_socket_register_write is set by default: {FIX}"
        assert callable(getattr(client, "_call_socket_register_write", None)), (
            f"paho-mqtt {PAHO}: Client has no _call_socket_register_write(): {FIX}")

        for i in range(6):
            run.publish(topic, f"m{i}")
        wait_for(lambda: len(sub.messages) == 6, "6 messages at the subscriber")
        assert [m.payload for m in sub.messages] == [f"m{i}".encode() for i in range(6)]

        def no_fallback(mid, qos):
            raise AssertionError(f"paho-mqtt {PAHO}: ack_in_order fell back to client.ack(): the fast path "
                                 f"was not taken: {FIX}")
        client.ack = no_fallback
        paho_acks.ack_in_order(client, sub.messages[:5])
        wait_for(lambda: not client._out_packet, "the queued PUBACKs written by paho's network thread")
    finally:
        sub.close()

    again = Sub(stack, client_id, topic)  # the same persistent session
    try:
        wait_for(lambda: again.messages, "the unacknowledged message sent again")
        time.sleep(1.0)  # and nothing else comes
        redelivered = [(m.payload, m.dup) for m in again.messages]
        assert redelivered == [(b"m5", True)], (
            f"paho-mqtt {PAHO}: after the fast-path PUBACKs for m0..m4 the broker sent again {redelivered}: "
            f"the queued PUBACKs did not all reach it: {FIX}")
        again.client.ack(again.messages[0].mid, 1)
    finally:
        again.close()
    Sub(stack, client_id, topic, clean_session=True).close()  # leave no session behind


class WireTap:
    """A TCP relay on 127.0.0.1 between a client and the broker. It notes, with the time it passed,
    each QoS 1 PUBLISH (broker -> client) and each PUBACK (client -> broker), by packet id."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.lock = threading.Lock()
        self.events: list[tuple[str, float, int]] = []  # (kind, monotonic, packet id)
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def seen(self, kind: str) -> list[tuple[float, int]]:
        with self.lock:
            return [(t, mid) for k, t, mid in self.events if k == kind]

    def close(self) -> None:
        self.server.close()
        for s in self.sockets:
            s.close()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [downstream, upstream]
            threading.Thread(target=self._pump, args=(downstream, upstream, "puback"), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream, "publish"), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, kind: str) -> None:
        buf = b""
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            buf += data
            while (packet := self._split(buf)) is not None:
                first, body, size = packet
                buf = buf[size:]
                now = time.monotonic()
                if kind == "puback" and first >> 4 == 4:
                    self._note(kind, now, int.from_bytes(body[:2], "big"))
                elif kind == "publish" and first >> 4 == 3 and (first >> 1) & 3 == 1:
                    n = int.from_bytes(body[:2], "big")
                    self._note(kind, now, int.from_bytes(body[2 + n: 4 + n], "big"))
            try:
                dst.sendall(data)
            except OSError:
                return

    def _note(self, kind: str, t: float, mid: int) -> None:
        with self.lock:
            self.events.append((kind, t, mid))

    @staticmethod
    def _split(buf: bytes) -> tuple[int, bytes, int] | None:
        """(first byte, body, size) of the first whole MQTT packet in buf, or None."""
        length, multiplier, i = 0, 1, 1
        while True:
            if i >= len(buf):
                return None
            length += (buf[i] & 127) * multiplier
            multiplier *= 128
            i += 1
            if not buf[i - 1] & 128:
                break
        if len(buf) < i + length:
            return None
        return buf[0], buf[i: i + length], i + length


@pytest.mark.integration
def test_gateway_acknowledges_in_arrival_order_only_after_the_fsync(run, monkeypatch):
    tap = WireTap(run.stack.mqtt_host, run.stack.mqtt_port)
    via_client_ack: list[int] = []
    client_ack = mqtt.Client.ack

    def ack(self, mid, qos):
        via_client_ack.append(mid)
        return client_ack(self, mid, qos)
    monkeypatch.setattr(mqtt.Client, "ack", ack)
    entered, gate = threading.Event(), threading.Event()
    try:
        gw = run.gateway(mqtt_port=tap.port, ingest_interval_s=3600)
        assert gw.store.fsync

        def settled() -> bool:  # retained statuses other tests left on the broker come first: all acknowledged
            n = len(tap.seen("publish"))
            time.sleep(0.5)
            return n == len(tap.seen("publish")) == len(tap.seen("puback"))
        wait_for(settled, "retained messages acknowledged")
        before = len(tap.seen("publish"))

        # Hold the journal in its store append: nothing may be acknowledged meanwhile.
        stored: list[tuple[float, int]] = []  # (when append returned, data messages in its frames)
        append = gw.store.append

        def held_append(bodies):
            entered.set()
            gate.wait(30)
            end = append(bodies)  # write + fdatasync
            stored.append((time.monotonic(), sum(len(json.loads(b[: b.index(b"\n")])["m"]) for b in bodies)))
            return end
        gw.store.append = held_append

        n = 12
        topic = run.topic("n1", "data")
        for seq in range(1, n + 1):
            run.publish(topic, json.dumps(record(seq, TS + seq * 60_000, w01018=(float(seq), "N"))))
        wait_for(lambda: len(tap.seen("publish")) == before + n, f"{n} messages delivered to the gateway")
        wait_for(entered.is_set, "the journal in its store append")
        time.sleep(0.5)
        early = tap.seen("puback")[before:]
        assert early == [], f"PUBACK(s) {early} sent while the journal's frame was not yet on disk"

        gate.set()
        wait_for(lambda: len(tap.seen("puback")) == before + n, f"{n} PUBACKs from the gateway")
        published = [mid for _, mid in tap.seen("publish")]
        acked = [mid for _, mid in tap.seen("puback")]
        assert acked == published, f"PUBACKs {acked} not in the order the messages arrived {published}"
        for j, (t, mid) in enumerate(tap.seen("puback")[before:], 1):
            on_disk = sum(count for when, count in stored if when < t)
            assert on_disk >= j, f"PUBACK {mid} (message {j}) left before its frame was stored ({on_disk} were)"
        assert via_client_ack == [], (
            f"paho-mqtt {PAHO}: the gateway acknowledged {via_client_ack} through client.ack(), not paho_acks' fast path")
        wait_for(lambda: len(run.readings()) == n, f"{n} readings in InfluxDB")
    finally:
        gate.set()
        for gw in run.gateways:
            gw.stop()
        run.gateways.clear()
        tap.close()
