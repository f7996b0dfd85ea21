"""What the gateway lets through its door (issue #10), against the real Mosquitto and InfluxDB:
statuses are signature-checked and matched to the node's connection (statustrust.py), also a
retained one a restart brings back; seq is bounded and one wild record does not move completeness;
node events are signed, stored and raise their alarm. The intruder publishes from a broker account
of its own, as in the incident."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgemon import quarantine as q
from edgemon.alarms.config import load as load_alarms
from edgemon.alarms.observer import AlarmObserver
from edgemon.keys import signed_payload
from edgemon.dev.nodeproc import FirmwareProcess, cod_node_config
from edgemon.dev.simulator import AnalyzerSimulator, cod_profile
from edgemon.dev.modemsim import ModemSimulator
from edgemon.dev.stack import free_port

from .test_ingest_against_servers import TS, record, run, wait_for  # noqa: F401 - `run` is a fixture

pytestmark = pytest.mark.integration

KEY = bytes.fromhex("5a" * 32)
OTHER = bytes.fromhex("a5" * 32)


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def online(cn, fw="0.3.0", key=KEY) -> bytes:
    body = compact({"state": "online", "fw": fw, "up": 5, "heap": 20000, "queue": 0, "clk": "ntp", "cn": cn})
    return signed_payload(body, key) if key else body


def offline(cn, key=KEY) -> bytes:
    return signed_payload(compact({"state": "offline", "cn": cn}), key)


class Intruder:
    """Another broker account: what it publishes the broker passes on (no ACL yet)."""

    def __init__(self, stack, name: str):
        password = stack.add_mqtt_user(name)
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv311)
        self.c.username_pw_set(name, password)
        self.c.connect(stack.mqtt_host, stack.mqtt_port)
        self.c.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(5)
        assert info.is_published()

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def intruder(stack, run):
    i = Intruder(stack, f"intruder-{run.site}")
    yield i
    for node in ("n1", "n2"):  # leave no retained status behind for other tests
        i.publish(run.topic(node, "status"), b"", retain=True)
    i.close()


def statuses(run, node="n1"):
    """(online, fw) of every `node` point made from a status, oldest first."""
    rows = run.influx.query_rows(f"SELECT online, fw FROM node WHERE site = '{run.site}' AND node = '{node}'")
    return [(r["online"], r["fw"]) for r in rows if r["online"] is not None]


def send(run, topic, *payloads):
    for payload in payloads:
        run.publish(topic, payload)


def drained(gw, n_statuses):
    """Wait until the gateway took n statuses and wrote all it stored (`node` points are at receive
    time: statuses taken in one millisecond are one point, so rows are not counted)."""
    wait_for(lambda: gw.stats["statuses"] == n_statuses, f"{n_statuses} statuses taken")
    wait_for(lambda: gw.store.backlog_bytes(gw._cursor) == 0, "everything written")


def reasons(run):
    return [e["reason"] for e in q.read(run.state_dir / q.FILE_NAME)]


def test_unsigned_or_wrongly_signed_status_is_quarantined_and_changes_nothing(run, intruder):
    gw = run.gateway(keys={f"{run.site}/n1": KEY, f"{run.site}/n2": OTHER}, require_signatures=True)
    topic = run.topic("n1", "status")
    run.publish(topic, online([4, 1]), retain=True)  # the node itself
    drained(gw, 1)
    assert statuses(run) == [(True, "0.3.0")]
    forged = [
        compact({"state": "offline"}),  # the incident: unsigned, retained
        compact({"state": "online", "fw": "evil-9.9", "up": 1, "heap": 1, "queue": 0, "clk": "ntp"}),
        compact({"state": "online", "fw": "evil-9.9", "cn": [9, 9]}),
        offline([4, 1], key=OTHER),  # signed, but with n2's key
        online([4, 1]).replace(b'"heap":20000', b'"heap":1'),  # tampered after signing
    ]
    for payload in forged:
        intruder.publish(topic, payload, retain=True)
    wait_for(lambda: gw.stats["quarantined"] == len(forged), "all forged statuses quarantined")
    assert reasons(run) == [
        f"sig: missing; {run.site}/n1 must sign its payloads (HMAC-SHA256, last member)",
        f"sig: missing; {run.site}/n1 must sign its payloads (HMAC-SHA256, last member)",
        f"sig: missing; {run.site}/n1 must sign its payloads (HMAC-SHA256, last member)",
        f"sig: signed with the key of {run.site}/n2, not of {run.site}/n1 (topic's site/node)",
        f"sig: does not match the key of {run.site}/n1",
    ]
    assert gw.quarantine.counts == {f"{run.site}/n1": len(forged)}
    gw.stop()  # drains everything
    assert statuses(run) == [(True, "0.3.0")]  # no online=false, no evil-9.9
    assert gw.stats["statuses"] == 1


def test_a_forged_or_replayed_retained_status_does_not_survive_a_restart(run, intruder):
    keys = {f"{run.site}/n1": KEY}
    gw = run.gateway(keys=keys, require_signatures=True)
    topic = run.topic("n1", "status")
    captured = offline([2, 1])  # the will of connection 2.1: the broker publishes it, anyone may keep it
    send(run, topic, online([2, 1]), captured)
    drained(gw, 2)
    send(run, topic, online([3, 1]))  # the node rebooted and is back
    drained(gw, 3)
    before = statuses(run)
    assert before[-1] == (True, "0.3.0")
    intruder.publish(topic, captured, retain=True)  # replayed: the node would look offline
    intruder.publish(topic, online([2, 1]), retain=True)  # an older connection's online status
    intruder.publish(topic, compact({"state": "offline"}), retain=True)  # unsigned; stays retained
    wait_for(lambda: gw.stats["quarantined"] == 3, "the replays and the forgery quarantined")
    assert reasons(run) == [
        f"cn: connection 2.1 is older than 3.1, the newest accepted for {run.site}/n1: a replayed status "
        f"(a node whose flash was wiped starts again at 1.1: see docs/ARCHITECTURE.md)",
    ] * 2 + [f"sig: missing; {run.site}/n1 must sign its payloads (HMAC-SHA256, last member)"]
    gw.stop()

    # The broker hands the retained forgery to the restarted gateway: refused again.
    gw2 = run.gateway(keys=keys, require_signatures=True)
    wait_for(lambda: gw2.stats["quarantined"] == 1, "the retained forgery refused after the restart")
    # ... and the replayed signed status too, because the newest connection was kept on disk.
    intruder.publish(topic, captured, retain=True)
    wait_for(lambda: gw2.stats["quarantined"] == 2, "the retained replay refused after the restart")
    gw2.stop()
    gw3 = run.gateway(keys=keys, require_signatures=True)
    wait_for(lambda: gw3.stats["quarantined"] == 1, "and again at the next start")
    assert reasons(run)[-1].startswith("cn: connection 2.1 is older than 3.1")
    gw3.stop()
    assert statuses(run) == before  # nothing written after the node's own statuses


def test_will_is_believed_for_its_own_connection_only(run, intruder):
    gw = run.gateway(keys={f"{run.site}/n1": KEY}, require_signatures=True)
    topic = run.topic("n1", "status")
    send(run, topic, online([5, 1]), online([5, 1]))  # the connection's periodic statuses
    drained(gw, 2)
    send(run, topic, offline([5, 1]))  # ... and its will
    drained(gw, 3)
    assert statuses(run)[-1] == (False, None)
    intruder.publish(topic, online([5, 1]))  # the ended connection's status again
    intruder.publish(topic, offline([5, 0]))  # an older connection's will
    intruder.publish(topic, compact({"state": "offline", "sig": "0" * 64}))
    wait_for(lambda: gw.stats["quarantined"] == 3, "refused")
    assert reasons(run) == [
        f"cn: connection 5.1 of {run.site}/n1 has ended (its offline status was accepted): a replayed online status",
        f"cn: connection 5.0 is older than 5.1, the newest accepted for {run.site}/n1: a replayed status "
        f"(a node whose flash was wiped starts again at 1.1: see docs/ARCHITECTURE.md)",
        f"sig: does not match the key of {run.site}/n1",
    ]
    # A will whose online status never got through (newer: believed), then firmware 0.2's constant will.
    send(run, topic, offline([6, 1]), signed_payload(compact({"state": "offline"}), KEY))
    wait_for(lambda: gw.stats["quarantined"] == 4 and gw.stats["statuses"] == 4, "newer will taken, old kind refused")
    assert reasons(run)[-1].startswith(f"cn: missing; an offline status of {run.site}/n1 is believed only when")
    assert gw.trust.nodes[f"{run.site}/n1"] == [6, 1, False]
    run.publish(topic, online([6, 2]))  # the node's next connection
    drained(gw, 5)
    assert statuses(run)[-1] == (True, "0.3.0")
    gw.stop()


def test_node_without_a_key_keeps_todays_rule(run, intruder):
    gw = run.gateway(keys={f"other{run.site}/x": KEY})  # run.site has no key: unsigned accepted
    intruder.publish(run.topic("n1", "status"), compact({"state": "online", "fw": "0.2.0"}))
    intruder.publish(run.topic("n1", "status"), compact({"state": "offline"}))
    wait_for(lambda: gw.stats["statuses"] == 2, "both taken")
    assert gw.stats["quarantined"] == 0


def test_seq_out_of_range_is_quarantined_and_a_wild_jump_leaves_completeness_alone(run, caplog):
    keys = {f"{run.site}/n1": KEY}
    gw = run.gateway(keys=keys, ingest_interval_s=0.3)
    topic = run.topic("n1", "data")
    sent = [0]

    def send(seq, value=1.0):
        sent[0] += 1  # ts: one second apart, whatever the seq
        run.publish(topic, signed_payload(compact(record(seq, TS + sent[0] * 1000, w01018=(value, "N"))), KEY))

    send(1)
    send(2)
    send(2**70)  # the incident
    send(2**32)  # one past what the node's 32-bit counter can hold
    send(3)
    wait_for(lambda: gw.stats["quarantined"] == 2 and gw.completeness().get(f"{run.site}/n1", {}).get("received") == 3,
             "two quarantined, three counted")
    assert reasons(run) == [
        "seq: 1180591620717411303424 is out of range (0 <= seq <= 4294967295, the node's unsigned 32-bit counter)",
        "seq: 4294967296 is out of range (0 <= seq <= 4294967295, the node's unsigned 32-bit counter)",
    ]
    send(4_000_000_000, 99.0)  # in range and signed, but far beyond anything this node produced
    send(4)
    want = {"expected": 4, "received": 4, "missing": 0, "duplicates": 0, "lost": 0, "seq_jumps": 1}
    wait_for(lambda: gw.completeness().get(f"{run.site}/n1") == want, "the jump reported, not taken as a baseline")
    assert any("seq 4000000000 jumped far beyond the range 1..3" in r.getMessage() for r in caplog.records)
    gw.stop()
    gw2 = run.gateway(keys=keys, ingest_interval_s=0.3)  # after a restart: the same figures, going on
    send(5)
    want.update(expected=5, received=5)
    wait_for(lambda: gw2.completeness().get(f"{run.site}/n1") == want, "restored")
    q_ = (f"SELECT last(expected) AS e, last(missing) AS m, last(last_seq) AS s, last(seq_jumps) AS j "
          f"FROM completeness WHERE site = '{run.site}'")
    row = wait_for(lambda: [r for r in run.influx.query_rows(q_) if r["e"] == 5.0], "completeness point")[0]
    assert (row["m"], row["s"], row["j"]) == (0.0, 5.0, 1.0)
    # The wild record's readings are data like any signed record's; only its seq is not believed.
    assert ("n1", "w01018", TS + 6000, 99.0, "N") in run.readings()
    assert gw2.stats["quarantined"] == 0


ALARMS = """
[people.duty]
phone = "+8613800000001"
[sms]
port = "{port}"
command_timeout_s = 1
send_timeout_s = 1
[sites.{site}]
name = "莱西某企业总排口"
profile = "laixi-plant"
roles = {{ duty = ["duty"] }}
[sites.{site}.rules.queue_overflow]
min_dropped = 1
"""


@pytest.fixture
def modem(tmp_path):
    (tmp_path / "dev").mkdir()
    s = ModemSimulator(tmp_path / "dev").start()
    yield s
    s.stop()


def test_queue_overflow_event_is_stored_counted_once_and_raises_its_alarm(run, intruder, modem, tmp_path):
    from edgemon.ingest import Gateway

    (tmp_path / "alarms.toml").write_text(ALARMS.format(port=modem.path, site=run.site), encoding="utf-8")
    gw = Gateway(run.config(keys={f"{run.site}/n1": KEY}, ingest_interval_s=0.3))
    obs = AlarmObserver(load_alarms(tmp_path / "alarms.toml"), run.state_dir / "alarms", gw.write_lines)
    gw.add_observer(obs)
    run.gateways.append(gw)
    gw.start()
    ts = int(time.time() * 1000)
    topic = run.topic("n1", "event")
    event = signed_payload(compact({"ts": ts, "kind": "queue_overflow",
                                    "detail": {"dropped": 168, "total": 168, "lost": 168}}), KEY)
    run.publish(run.topic("n1", "event"), signed_payload(compact(
        {"ts": ts - 5000, "kind": "boot", "detail": {"fw": "0.3.0", "seq": 40, "queue": 0, "repaired_bytes": 0}}), KEY))
    run.publish(topic, event)
    run.publish(topic, event)  # delivered twice (QoS 1): stored once, counted once
    intruder.publish(topic, compact({"ts": ts + 1, "kind": "queue_overflow", "detail": {"dropped": 9999}}))
    intruder.publish(topic, event.replace(b'"dropped":168', b'"dropped":999'))
    wait_for(lambda: gw.stats["quarantined"] == 2 and gw.stats["events"] == 3, "events taken, forgeries refused")
    assert reasons(run) == [f"sig: missing; {run.site}/n1 must sign its payloads (HMAC-SHA256, last member)",
                            f"sig: does not match the key of {run.site}/n1"]

    rows = wait_for(lambda: len(r := run.influx.query_rows(
        f"SELECT * FROM event WHERE site = '{run.site}' GROUP BY kind")) == 2 and r, "two event points")
    by_kind = {r["kind"]: r for r in rows}
    over = by_kind["queue_overflow"]
    assert (over["time"], over["node"], over["dropped"], over["total"], over["lost"]) == (ts, "n1", 168.0, 168.0, 168.0)
    assert json.loads(over["detail"]) == {"dropped": 168, "lost": 168, "total": 168}
    assert (by_kind["boot"]["fw"], by_kind["boot"]["seq"]) == ("0.3.0", 40.0)
    node = wait_for(lambda: run.influx.query_rows(
        f"SELECT dropped, lost FROM node WHERE site = '{run.site}' AND dropped > 0"), "loss on the node point")
    assert [(n["time"], n["dropped"], n["lost"]) for n in node] == [(ts, 168.0, 168.0)]
    comp = wait_for(lambda: [r for r in run.influx.query_rows(
        f"SELECT last(lost) AS lost FROM completeness WHERE site = '{run.site}'") if r["lost"] == 168.0],
        "loss on the completeness point")
    assert comp and gw.completeness()[f"{run.site}/n1"]["lost"] == 168

    alarm = wait_for(lambda: run.influx.query_rows(f"SELECT * FROM alarm WHERE site = '{run.site}'"), "alarm point")
    assert [(a["rule"], a["param"], a["state"], a["value"]) for a in alarm] == [("queue_overflow", "queue", "raised", 168.0)]
    assert modem.wait_for(1)
    ((to, text),) = modem.texts()
    assert to == "+8613800000001"
    assert text.startswith("【数据丢失】莱西某企业总排口监测设备n1离线缓存已满，丢弃了最早的168条数据，开始于")
    gw.stop()  # stops the observer too


def test_the_real_firmware_overflow_is_reported_after_a_reboot_and_raises_the_alarm(stack, run, modem, tmp_path):
    """The firmware (MicroPython) fills a 2 KB queue while the broker is out of reach, is power-cut,
    and reports the loss once it gets through: signed event, stored, alarm raised, SMS sent."""
    from edgemon.ingest import Gateway

    (tmp_path / "alarms.toml").write_text(ALARMS.format(port=modem.path, site=run.site), encoding="utf-8")
    gw = Gateway(run.config(keys={f"{run.site}/n1": KEY}, require_signatures=True, ingest_interval_s=0.3))
    obs = AlarmObserver(load_alarms(tmp_path / "alarms.toml"), run.state_dir / "alarms", gw.write_lines)
    gw.add_observer(obs)
    run.gateways.append(gw)
    gw.start()
    sim = AnalyzerSimulator(cod_profile()).start()
    user = f"{run.site}.n1"
    password = stack.add_mqtt_user(user)
    cfg = cod_node_config(run.site, "n1", mqtt_port=free_port(), mqtt_user=user, mqtt_password=password,
                          analyzer_port=sim.port, state_dir=tmp_path / "node", poll_s=0.05, timeout_ms=500)
    cfg["key"] = KEY.hex()
    cfg["queue"] = {"max_kb": 2, "segment_kb": 1}
    cfg["mqtt"]["keepalive"] = 2  # so the broker publishes the will within ~3 s of the power cut
    fw = FirmwareProcess(cfg, tmp_path / "node.json")
    try:
        fw.start()  # no broker on that port: records pile up on flash until the oldest go
        wait_for(lambda: any(line.startswith("queue full:") for line in fw.lines), "the queue overflowing", timeout=60)
        fw.kill()
        cfg["mqtt"]["port"] = stack.mqtt_port
        fw = FirmwareProcess(cfg, tmp_path / "node.json").start()
        wait_for(lambda: gw.stats["events"] >= 2, "boot and queue_overflow events", timeout=30)
        over = wait_for(lambda: run.influx.query_rows(
            f"SELECT * FROM event WHERE site = '{run.site}' AND kind = 'queue_overflow'"), "the event point")
        assert over[0]["dropped"] > 0 and over[0]["lost"] == over[0]["dropped"]
        alarm = wait_for(lambda: run.influx.query_rows(f"SELECT * FROM alarm WHERE site = '{run.site}'"), "alarm")
        assert alarm[0]["rule"] == "queue_overflow" and alarm[0]["value"] == over[0]["dropped"]
        assert modem.wait_for(1)
        # The node's statuses (signed, with their connection) were believed; nothing quarantined.
        wait_for(lambda: (True, "0.4.0") in statuses(run), "the node's online status")
        fw.kill()  # a power cut: the broker publishes the will signed at connect time
        q_ = f"SELECT online, reason FROM node WHERE site = '{run.site}' AND online = false"
        wait_for(lambda: run.influx.query_rows(q_), "the will believed: node offline", timeout=30)
        offline_rows = run.influx.query_rows(q_)
        assert offline_rows[0]["reason"] is None  # from the will, not from silence (which gives a reason)
        assert gw.stats["quarantined"] == 0 and gw.trust.nodes[f"{run.site}/n1"] == [2, 1, False]
    finally:
        fw.stop()
        sim.stop()
        gw.stop()
        run.publish(run.topic("n1", "status"), b"", retain=True)  # no retained status left for other tests
