"""The node's uplink side: flash queue before publish, batches after an outage, signatures,
overflow events, backoff, watchdog, network joins, and a loop no exception can end."""
import json
from binascii import unhexlify
from node import Node
from config import validate_config
from hmac_sha256 import HmacSha256
from fakes import NodeRig, FakeHW, FakeMQTT, good_config, make_tmpdir, rmtree, cod_slave
import compat

KEY = "00112233445566778899aabbccddeeff"


_Rig = NodeRig


def _records(mqtt):
    """Every record published on the data topic, flattened out of batches, as parsed dicts."""
    out = []
    for topic, payload, qos, retain in mqtt.data():
        d = json.loads(payload)
        out.extend(d["batch"] if "batch" in d else [d])
    return out


def test_record_is_on_flash_before_publish_and_leaves_after_puback():
    r = _Rig()
    try:
        r.mqtt.fail_publish = True
        r.tick()
        assert len(r.node.queue) == 1 and r.mqtt.data() == []
        r.reconnect()
        r.tick()
        assert len(r.node.queue) == 0
        assert [d["seq"] for d in _records(r.mqtt)] == [1, 2]
        assert r.node.queue.acked == 2
    finally:
        r.done()


def test_backlog_replays_in_batches_without_gap_and_identical_bytes():
    cfg = good_config()
    cfg["queue"] = {"batch_max": 7}
    r = _Rig(cfg)
    try:
        r.mqtt.fail_connect = True
        r.tick(30)
        assert len(r.node.queue) == 30 and r.mqtt.published == []
        r.reconnect()
        r.node.service_link(60000)
        data = r.mqtt.data()
        sizes = [len(json.loads(p[1]).get("batch", [0])) for p in data]
        assert max(sizes) == 7 and sum(sizes) == 30, sizes
        recs = _records(r.mqtt)
        assert [d["seq"] for d in recs] == list(range(1, 31))
        assert [d["ts"] for d in recs] == [1764000000000 + 10000 * i for i in range(1, 31)]
        assert len(r.node.queue) == 0
        # A record resent after a reboot is byte-identical to its first publication.
        first = r.mqtt.data()[0][1]
        n2 = Node(r.cfg, r.hw, FakeMQTT(), log=r.lines.append)
        n2.queue.ack(0)
        assert n2.queue.last_seq == 30
    finally:
        r.done()


def test_signed_record_batch_status_event_and_will():
    cfg = good_config()
    cfg["key"] = KEY
    r = _Rig(cfg)
    mac = HmacSha256(unhexlify(KEY))
    try:
        r.mqtt.fail_connect = True
        r.tick(3)
        r.reconnect()
        r.tick()
        assert r.mqtt.data(), r.lines
        for topic, payload, qos, retain in r.mqtt.published:
            i = payload.rfind(b',"sig":"')
            assert i > 0 and payload.endswith(b'"}'), payload
            body = payload[:i] + b"}"
            assert payload[i + 8:-2].decode() == mac.hexdigest(body), topic
        kinds = [json.loads(p[1]).get("kind") for p in r.mqtt.published if p[0].endswith("/event")]
        assert kinds == ["boot"]
        batch = json.loads(r.mqtt.data()[0][1])["batch"]
        assert all("sig" not in rec for rec in batch)
        # The will, set before each connect: signed, naming this connection, as its online status does.
        topic, will, qos, retain = r.mqtt.wills[-1]
        assert r.mqtt.will is None  # dropped once the broker holds it: no heap for it while connected
        assert (topic, qos, retain) == ("edge/v1/demo-site/cod-1/status", 1, True)
        i = will.rfind(b',"sig":"')
        assert will[i + 8:-2].decode() == mac.hexdigest(will[:i] + b"}")
        st = json.loads(r.mqtt.status()[-1][1])
        assert json.loads(will[:i] + b"}") == {"state": "offline", "cn": st["cn"]}
    finally:
        r.done()


def test_connection_id_grows_per_connection_and_per_boot():
    r = _Rig()
    try:
        r.tick()
        first = json.loads(r.mqtt.status()[-1][1])["cn"]
        r.mqtt.close()  # the link drops: the next connection gets the next id
        r.node.mqtt_backoff.retry_now()
        r.tick()
        second = json.loads(r.mqtt.status()[-1][1])["cn"]
        assert second == [first[0], first[1] + 1]
        assert json.loads(r.mqtt.wills[-1][1]) == {"state": "offline", "cn": second}
        m2 = FakeMQTT()
        n2 = Node(r.cfg, r.hw, m2, log=r.lines.append)  # a reboot: the boot count on flash goes up
        n2.service_link(0)
        st = [json.loads(p[1]) for p in m2.published if p[0].endswith("/status")]
        assert st[-1]["cn"] == [first[0] + 1, 1]
        n2.shutdown()  # the clean stop's own offline names the connection too
        assert json.loads(m2.status()[-1][1]) == {"state": "offline", "cn": [first[0] + 1, 1]}
        n2.queue.close()
    finally:
        r.done()


def test_overflow_drops_oldest_reports_in_status_and_event():
    cfg = good_config()
    cfg["queue"] = {"max_kb": 2, "segment_kb": 1}
    r = _Rig(cfg)
    try:
        r.mqtt.fail_connect = True
        r.tick(300)  # ~10 bytes a record here: beyond 2 KB
        q = r.node.queue
        assert q.dropped > 0 and q.dropped + len(q) == 300
        assert any(l.startswith("queue full:") for l in r.lines)
        assert ("dropped=%d" % q.dropped) in r.lines[-1]
        r.reconnect()
        r.node.service_link(60000)
        ev = [json.loads(p[1]) for p in r.mqtt.published if p[0] == "edge/v1/demo-site/cod-1/event"]
        over = [e for e in ev if e["kind"] == "queue_overflow"]
        assert len(over) == 1 and over[0]["detail"] == {"dropped": q.dropped, "total": q.dropped, "lost": q.dropped}
        st = json.loads(r.mqtt.status()[-1][1])
        assert st["dropped"] == q.dropped
        seqs = [d["seq"] for d in _records(r.mqtt)]
        assert seqs == list(range(301 - len(seqs), 301)), seqs  # the newest, contiguous
    finally:
        r.done()


def test_mqtt_backoff_and_publish_failure():
    r = _Rig()
    try:
        r.mqtt.fail_connect = True
        r.tick()
        assert r.node.mqtt_backoff.failures == 1 and not r.node.mqtt_backoff.ready()
        connects = r.mqtt.connects
        r.mqtt.fail_connect = False
        r.tick()  # still inside the backoff delay: no attempt
        assert r.mqtt.connects == connects and len(r.node.queue) == 2
        r.node.mqtt_backoff.retry_now()
        r.tick()
        assert len(r.node.queue) == 0 and r.node.mqtt_backoff.failures == 0
        r.mqtt.fail_publish = True
        r.tick()
        assert len(r.node.queue) == 1 and not r.mqtt.connected and r.node.errors >= 2
    finally:
        r.done()


def test_no_exception_ends_the_loop_and_errors_are_counted():
    cfg = good_config()
    cfg["poll_s"] = 0.01
    r = _Rig(cfg)
    calls = [0]

    def bad_rssi():
        calls[0] += 1
        raise MemoryError("fake")

    try:
        r.hw.rssi = bad_rssi  # status building blows up every time
        orig = r.node.sample

        def flaky():
            if r.node.cycles % 2:
                raise ValueError("fake analyzer bug")
            return orig()
        r.node.sample = flaky
        r.node.run(max_cycles=6)
        assert r.node.cycles == 6 and calls[0] >= 1
        assert r.node.errors >= 3
        assert any("error cycle: ValueError" in l for l in r.lines)
        assert any("error status: MemoryError" in l for l in r.lines)
        # A status that cannot be built holds back no record: the link stays up, every record went.
        assert r.mqtt.connects == 1 and len(r.node.queue) == 0
        assert [json.loads(p[1])["state"] for p in r.mqtt.status()] == ["offline"]  # only the stop's own
        assert [d["seq"] for d in _records(r.mqtt)] == list(range(1, r.node.seq + 1)) and r.node.seq >= 3
    finally:
        r.done()


def test_an_event_that_cannot_be_built_holds_back_no_record():
    import node as node_mod
    r = _Rig()
    orig = node_mod.build_event
    fails = [2]

    def flaky(ts, kind, detail):
        if fails[0]:
            fails[0] -= 1
            raise MemoryError("fake")
        return orig(ts, kind, detail)
    try:
        node_mod.build_event = flaky
        r.tick(2)
        assert [d["seq"] for d in _records(r.mqtt)] == [1, 2] and r.mqtt.connects == 1
        ev = [json.loads(p[1]) for p in r.mqtt.published if p[0].endswith("/event")]
        assert ev == []  # the boot event failed twice to build ...
        r.tick()
        ev = [json.loads(p[1]) for p in r.mqtt.published if p[0].endswith("/event")]
        assert [e["kind"] for e in ev] == ["boot"]  # ... and goes out once it can
        assert sum(1 for l in r.lines if "error event boot: MemoryError" in l) == 2
    finally:
        node_mod.build_event = orig
        r.done()


def test_overflow_before_a_reboot_is_still_reported_after_it():
    # The node overflows its queue while the broker is out of reach, then reboots before it ever
    # reaches it: the loss must still be reported (status and event), once.
    def cfg():
        c = good_config()
        c["queue"] = {"max_kb": 2, "segment_kb": 1}
        return c
    r = _Rig(cfg())
    try:
        r.mqtt.fail_connect = True
        r.tick(300)
        lost = r.node.queue.dropped
        pending = len(r.node.queue)
        assert lost > 0 and lost + pending == 300
        r.node = Node(validate_config(cfg()), r.hw, r.mqtt, log=r.log)  # the reboot
        assert r.node.queue.dropped == lost
        r.reconnect()
        r.node.service_link(60000)
        ev = [json.loads(p[1]) for p in r.mqtt.published if p[0].endswith("/event")]
        over = [e["detail"] for e in ev if e["kind"] == "queue_overflow"]
        assert over == [{"dropped": lost, "total": lost, "lost": lost}], over
        assert json.loads(r.mqtt.status()[-1][1])["dropped"] == lost
        assert len(_records(r.mqtt)) == pending
        # Reported once: the next boot has nothing left to tell.
        r.node = Node(validate_config(cfg()), r.hw, r.mqtt, log=r.log)
        assert r.node.queue.dropped == 0
        r.node.service_link(60000)
        ev = [json.loads(p[1]) for p in r.mqtt.published if p[0].endswith("/event")]
        assert len([e for e in ev if e["kind"] == "queue_overflow"]) == 1
    finally:
        r.done()




def test_watchdog_fed_and_network_joined_with_backoff():
    state = {"up": False, "joins": 0, "feeds": 0}

    def join():
        state["joins"] += 1

    def feed():
        state["feeds"] += 1

    cfg = good_config()
    cfg["poll_s"] = 0.01
    r = _Rig(cfg, {"network_up": lambda: state["up"], "connect_network": join, "feed_watchdog": feed})
    try:
        r.node.run(max_cycles=5)
        assert state["joins"] == 1  # one join attempt; the next waits for its backoff
        assert r.mqtt.connects == 0 and len(r.node.queue) == 5
        assert state["feeds"] >= 5
        state["up"] = True
        r.node.service_link(1000)
        assert r.mqtt.connects == 1 and len(r.node.queue) == 0
    finally:
        r.done()


def test_ntp_sync_through_clock_with_backoff():
    from clock import Clock
    fails = {"n": 2, "calls": 0}

    def sync():
        fails["calls"] += 1
        if fails["n"]:
            fails["n"] -= 1
            raise OSError("ntp timeout")

    r = _Rig()
    try:
        r.hw.clock = Clock(lambda: 1764000000 * 1000000000, 1970, sync_fn=sync)
        r.hw.clock.t = 0  # not used by Clock; keeps _Rig.tick() working
        r.node.service_link(0)
        assert fails["calls"] == 1 and r.hw.clock.clk == "rtc"  # plausible time, not synced yet
        r.node.service_link(0)
        assert fails["calls"] == 1  # backing off
        r.node.ntp_backoff.retry_now()
        r.node.service_link(0)
        r.node.ntp_backoff.retry_now()
        r.node.service_link(0)
        assert fails["calls"] == 3 and r.hw.clock.clk == "ntp"
        r.tick()
        assert json.loads(r.mqtt.data()[-1][1])["clk"] == "ntp"
    finally:
        r.done()


def test_legacy_seq_file_is_continued():
    d = make_tmpdir()
    try:
        with open(d + "/seq", "w") as f:
            f.write("41\n")
        m = FakeMQTT()
        n = Node(validate_config(good_config()), FakeHW(d, {"cod": cod_slave()}), m, log=lambda s: None)
        n.cycle()
        assert json.loads(m.data()[0][1])["seq"] == 42
        n.queue.close()
    finally:
        rmtree(d)


def test_memory_error_in_replay_halves_the_batch_and_keeps_records():
    r = _Rig()
    try:
        r.mqtt.fail_connect = True
        r.tick(20)
        r.reconnect()
        real = r.mqtt.publish
        state = {"fail": 1}

        def publish(topic, payload, qos=1, retain=False, timeout_ms=None, length=None):
            if topic.endswith("/data") and state["fail"]:
                state["fail"] -= 1
                raise MemoryError("fake: heap fragmented")
            return real(topic, payload, qos, retain, timeout_ms, length)
        r.mqtt.publish = publish
        before = r.node.batch_bytes
        r.node.service_link(1000)
        assert r.node.batch_bytes == before // 2 and len(r.node.queue) == 20
        r.reconnect()
        r.node.service_link(60000)
        assert len(r.node.queue) == 0
        assert [d["seq"] for d in _records(r.mqtt)] == list(range(1, 21))
    finally:
        r.done()
