"""End-to-end confirmation, the node's half (confirm.py, Node.service_link) on fake hardware: a
record leaves flash only once a signed gateway confirmation covers it, not at the PUBACK; what is
unconfirmed goes again after a reconnect, after a timeout (30 s, then doubling) and when asked
("again"); a forged, unsigned or foreign confirmation frees nothing; an older gateway (no
confirmation in queue.confirm_s) gets today's behaviour, a node that once saw one never falls back."""
from binascii import unhexlify

from compat import ticks_add, ticks_ms
from fakes import NodeRig, good_config
from hmac_sha256 import HmacSha256

KEY = "5f" * 32


def _rig(queue=None, key=KEY, state=None):
    cfg = good_config()
    if key:
        cfg["key"] = key
    if queue:
        cfg["queue"] = queue
    r = NodeRig(cfg)
    if state is not None:  # the same flash as an earlier rig (a reboot)
        r.node.queue.close()
        from fakes import rmtree
        rmtree(r.dir)
        r.dir = state
        r.hw.state_dir = state
        from node import Node
        r.node = Node(r.cfg, r.hw, r.mqtt, log=r.log)
    return r


def _seqs(r):
    import json
    out = []
    for topic, payload, qos, retain in r.mqtt.data():
        d = json.loads(payload)
        out.extend([x["seq"] for x in d["batch"]] if "batch" in d else [d["seq"]])
    return out


def _expire(r, slot):
    """The deadline in _cf[slot] (0: the wait for a first confirmation, 1: the resend) is now."""
    r.node._cf[slot] = ticks_add(ticks_ms(), -1)


def test_a_record_stays_on_flash_after_its_puback_until_a_confirmation_covers_it():
    r = _rig()
    try:
        r.tick(5)
        assert _seqs(r) == [1, 2, 3, 4, 5] and len(r.node.queue) == 5  # PUBACKed, still on flash
        r.confirm(3)
        r.tick()
        assert r.node.queue.acked == 3 and len(r.node.queue) == 3, r.lines  # 4, 5, 6 wait
        assert any("the gateway confirms" in ln for ln in r.lines), r.lines
        r.confirm(6)
        r.node.service_link(0)
        assert len(r.node.queue) == 0 and _seqs(r) == [1, 2, 3, 4, 5, 6] and r.node.errors == 0, r.lines
    finally:
        r.done()


def test_a_forged_unsigned_or_foreign_confirmation_frees_nothing():
    r = _rig()
    try:
        r.tick(4)
        r.confirm(4, mac=HmacSha256(unhexlify("a0" * 32)))  # another key
        r.node.service_link(0)
        assert len(r.node.queue) == 4 and r.node.errors == 1 and "forged" in r.lines[-1], r.lines
        r.mqtt.on_message("edge/v1/demo-site/cod-1/confirm", b'{"upto":4,"ranges":[]}')
        r.node.service_link(0)
        assert len(r.node.queue) == 4 and r.node.errors == 2 and "unsigned" in r.lines[-1], r.lines
        r.confirm(9)  # beyond the last stored record: another queue's (a wiped flash, an old retained one)
        r.node.service_link(0)
        assert len(r.node.queue) == 4 and r.node.errors == 3 and "not this queue's" in r.lines[-1], r.lines
        r.confirm(-1, ranges='"x"')
        r.node.service_link(0)
        assert len(r.node.queue) == 4 and r.node.errors == 4 and "bad confirmation" in r.lines[-1], r.lines
        assert r.node._cf[0] is not None  # none of them counts as a gateway that confirms
        r.confirm(2)
        r.node.service_link(0)
        assert len(r.node.queue) == 2 and r.node._cf[0] is None
        r.confirm(1)  # an older one (replayed, or a lagging gateway's): never goes back
        r.node.service_link(0)
        assert r.node.queue.acked == 2
    finally:
        r.done()


def test_ranges_continue_the_nodes_own_floor():
    # A node whose first records the gateway never saw (freed by an older gateway's PUBACK, or by
    # confirm_s): the gateway's upto stays below the node's floor, its ranges carry on from it.
    r = _rig()
    try:
        r.tick(6)
        r.confirm(2)
        r.node.service_link(0)
        r.confirm(0, ranges="[[3,4],[7,9]]")  # 3-4 continue the floor (2); 7-9 do not (5, 6 missing)
        r.node.service_link(0)
        assert r.node.queue.acked == 4, r.lines
        r.confirm(0, ranges="[[1,1],[5,6]]")
        r.node.service_link(0)
        assert r.node.queue.acked == 6 and r.node.errors == 0, r.lines
    finally:
        r.done()


def test_unconfirmed_records_go_again_after_a_reconnect_a_timeout_and_when_asked():
    r = _rig()
    try:
        r.tick(3)
        r.confirm(1)
        r.node.service_link(0)
        first = [p for p in r.mqtt.data()]
        assert _seqs(r) == [1, 2, 3]
        # A reconnect (the broker restarted: it may have lost what it held): 2 and 3 go again.
        r.mqtt.connected = False
        r.reconnect()
        r.node.service_link(0)
        assert _seqs(r) == [1, 2, 3, 2, 3], _seqs(r)
        again = r.mqtt.data()[-1][1]
        assert b'"seq":2' in again and b'"seq":3' in again  # one batch, the records as first sent
        for k in (1, 2):  # the records as first sent (there signed alone: ,"sig":"<64 hex>"} at the end)
            assert first[k][1][:-74] + b"}" in again
        # No confirmation in 30 s: they go again, and the next timeout is 60 s.
        r.node.service_link(0)
        assert len(_seqs(r)) == 5
        _expire(r, 1)
        r.node.service_link(0)
        assert _seqs(r)[5:] == [2, 3] and r.node._cf[2] == 60000, r.lines
        assert "records from seq 2 go again" in " ".join(r.lines)
        # The gateway asks ("again": it has just connected): at once.
        r.confirm(1, again=1)
        r.node.service_link(0)
        assert _seqs(r)[7:] == [2, 3], _seqs(r)
        # Progress: the timeout is back at 30 s; nothing unconfirmed: nothing goes again.
        r.confirm(3)
        r.node.service_link(0)
        assert len(r.node.queue) == 0 and r.node._cf[2] == 30000
        _expire(r, 1)
        r.node.service_link(0)
        assert len(_seqs(r)) == 9 and r.node.errors == 0, r.lines
    finally:
        r.done()


def test_an_older_gateway_that_never_confirms_gets_pubacks_trusted_after_confirm_s():
    r = _rig({"confirm_s": 60})
    try:
        r.tick(3)
        assert len(r.node.queue) == 3  # waiting for a first confirmation
        _expire(r, 0)
        r.tick()
        assert r.node._cf[0] is True and len(r.node.queue) == 0, r.lines  # as before confirmations
        assert "older gateway" in " ".join(r.lines)
        r.tick(2)
        assert len(r.node.queue) == 0 and _seqs(r) == [1, 2, 3, 4, 5, 6]
        r.confirm(6)  # a confirming gateway after all: from now on it decides
        r.tick()
        assert r.node._cf[0] is None and len(r.node.queue) == 1
    finally:
        r.done()


def test_confirm_s_0_and_a_node_without_key_free_at_the_puback():
    for r in (_rig({"confirm_s": 0}), _rig(key=None)):
        try:
            r.tick(3)
            assert len(r.node.queue) == 0 and _seqs(r) == [1, 2, 3] and r.node._cf[0] is True
        finally:
            r.done()


def test_a_node_that_saw_one_confirmation_waits_for_them_after_a_reboot():
    r = _rig({"confirm_s": 60})
    state = r.dir
    r.tick(2)
    r.confirm(1)
    r.node.service_link(0)
    r.node.queue.close()
    r2 = _rig({"confirm_s": 60}, state=state)  # the same flash, booted again
    try:
        assert r2.node._cf[0] is None and r2.node.queue.acked == 1 and len(r2.node.queue) == 1
        r2.tick()
        assert len(r2.node.queue) == 2  # 2 and 3 wait for the gateway
    finally:
        r2.done()


def test_the_queue_bound_still_holds_when_confirmations_stop():
    r = _rig({"segment_kb": 1, "max_kb": 2})
    try:
        r.tick(200)  # PUBACKed, never confirmed: the oldest segments go, counted and reported
        q = r.node.queue
        assert q.dropped > 0 and q.acked == q.dropped and q.bytes_used() <= 2048, (q.dropped, q.acked)
        assert q.last_seq == 200 and len(q) == 200 - q.dropped
        events = [p for t, p, qos, ret in r.mqtt.published if t.endswith("/event")]
        assert any(b"queue_overflow" in p for p in events)
    finally:
        r.done()


def test_the_wait_for_a_first_confirmation_counts_from_the_first_connect():
    # A new node that boots into a long outage must not trust PUBACKs at its first connect.
    r = _rig({"confirm_s": 60})
    try:
        r.mqtt.fail_connect = True
        r.tick(3)
        assert r.node._cf[0] == -60000  # not armed: never connected
        r.reconnect()
        r.tick()
        assert r.node._cf[0] is not True and r.node._cf[0] >= 0 and len(r.node.queue) == 4, r.lines
    finally:
        r.done()


def _damage_last_record(path):
    b = bytearray(open(path, "rb").read())
    b[-3] ^= 0x55  # flash damage inside the segment's last record (its CRC no longer matches)
    with open(path, "wb") as f:
        f.write(b)


def test_records_flash_damage_made_unreadable_do_not_stall_the_confirmed_floor():
    # The gateway can never get them, so no confirmation covers them: the node's floor moves past
    # them (counted lost, as the queue always counted damage) and the ranges after them continue it.
    import os
    r = _rig({"segment_kb": 1, "max_kb": 8})
    try:
        r.tick(150)
        q = r.node.queue
        firsts = [s for s, n in q.segments()]
        assert len(firsts) >= 2, firsts
        _damage_last_record(q.dir + "/" + [f for f in sorted(os.listdir(q.dir)) if f.endswith(".q")][0])
        gap = firsts[1] - 1
        r.confirm(gap - 1, ranges="[[%d,%d]]" % (gap + 1, q.last_seq - 2))
        r.node.service_link(0)
        assert q.acked == q.last_seq - 2 and q.dropped == 1 and r.node.errors == 0, (q.acked, q.dropped, r.lines)
        r.confirm(gap - 1, ranges="[[%d,%d]]" % (gap + 1, q.last_seq - 1))  # once more: counted once
        r.node.service_link(0)
        assert q.acked == q.last_seq - 1 and q.dropped == 1
    finally:
        r.done()


def test_damage_in_the_open_segment_frees_nothing_unconfirmed_and_later_records_still_go():
    import os
    r = _rig({"segment_kb": 1, "max_kb": 8})
    try:
        r.tick(5)
        q = r.node.queue
        _damage_last_record(q.dir + "/" + [f for f in sorted(os.listdir(q.dir)) if f.endswith(".q")][-1])
        r.node._sent = q.acked  # everything goes again (as after a reconnect): record 5 cannot be read
        r.node.service_link(0)  # 1-4 (a batch)
        r.node.service_link(0)  # nothing readable after 4: the segment is sealed
        assert q.acked == 0 and len(q) == 5, (q.acked, r.lines)  # sent but unconfirmed: all stay
        r.tick(3)  # the damaged segment was sealed: records 6.. start a new one, replay reaches them
        assert 6 in _seqs(r) and 8 in _seqs(r), _seqs(r)
        r.confirm(4, ranges="[[6,8]]")
        r.node.service_link(0)
        assert q.acked == 8 and q.dropped == 1 and r.node.errors == 0, (q.acked, q.dropped, r.lines)
    finally:
        r.done()
