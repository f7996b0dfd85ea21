"""The node's command channel (cmdchan.py) through a Node on fake hardware: it subscribes to its cmd
topic at each connect and answers each command on cmd/ack, signed: ops run once; refusals (unsigned,
forged, tampered, expired, replayed, malformed, unknown) reported with their reason; the last
accepted id kept across a reboot; a refused subscription or a full queue of commands costs no data."""
import json
from binascii import hexlify, unhexlify

from fakes import NodeRig, good_config
from hmac_sha256 import HmacSha256
from record import sign

KEY = "5f" * 32
MAC = HmacSha256(unhexlify(KEY))
OTHER = HmacSha256(unhexlify("a0" * 32))
T0 = 1764000000000


def command(cid, op, exp=T0 + 60000, args="{}", mac=MAC):
    p = ('{"id":%d,"cmd":"%s","exp":%d,"args":%s}' % (cid, op, exp, args)).encode()
    return sign(p, mac) if mac is not None else p


def signed_by(payload, mac):
    """The ack carries the node's signature (the same rule as data: HMAC over the rest plus "}")."""
    i = payload.rfind(b',"sig":"')
    return i > 0 and payload[i + 8:-2] == hexlify(mac.digest(payload[:i] + b"}"))


def _rig():
    cfg = good_config()
    cfg["key"] = KEY
    resets = []

    def reset():
        resets.append(1)

    rig = NodeRig(cfg, {"reset": reset})
    rig.resets = resets
    return rig


def _acks(rig):
    out = []
    for topic, payload, qos, retain in rig.mqtt.published:
        if topic.endswith("/cmd/ack"):
            assert topic == "edge/v1/demo-site/cod-1/cmd/ack" and qos == 1 and not retain
            assert signed_by(payload, MAC), payload  # the node signs its acks
            out.append(json.loads(payload))
    return out


def _send(rig, payload):
    rig.mqtt.on_message("edge/v1/demo-site/cod-1/cmd", payload)


def test_the_node_subscribes_at_each_connect_and_answers_a_command():
    rig = _rig()
    try:
        rig.tick()
        assert rig.mqtt.subscribed() == ["edge/v1/demo-site/cod-1/cmd", "edge/v1/demo-site/cod-1/confirm"]
        _send(rig, command(10, "time"))
        assert _acks(rig) == []  # queued while the client reads; run by the loop
        rig.tick()
        a = _acks(rig)
        assert len(a) == 1 and a[0]["id"] == 10 and a[0]["cmd"] == "time" and a[0]["ok"] is True, a
        assert a[0]["result"] == {"now": rig.hw.clock.t, "clk": "ntp", "synced": None}
        syncs = []
        rig.hw.clock.sync = lambda: syncs.append(1)  # a board's NTP sync
        _send(rig, command(11, "time", args='{"sync":true}'))
        rig.tick()
        assert syncs == [1] and _acks(rig)[-1]["result"]["synced"] == "NTP sync done"
        rig.mqtt.connected = False  # link lost: the next connection subscribes again
        rig.reconnect()
        rig.tick()
        assert rig.mqtt.subscribed() == ["edge/v1/demo-site/cod-1/cmd", "edge/v1/demo-site/cod-1/confirm"] * 2
    finally:
        rig.done()


def test_refused_commands_are_reported_and_do_not_run():
    rig = _rig()
    try:
        rig.tick()
        good = command(24, "status")
        _send(rig, command(20, "reboot", mac=None))  # unsigned
        _send(rig, command(21, "reboot", mac=OTHER))  # forged: another key
        _send(rig, good.replace(b'"status"', b'"reboot"'))  # tampered after signing
        _send(rig, good[:-1] + b',"x":1}')  # the sig is not the last member
        rig.tick()
        _send(rig, command(22, "reboot", exp=T0 - 1))  # expired (the fake clock is past T0)
        _send(rig, sign(b"{\"id\":27,oops}", MAC))  # signed, but not JSON
        _send(rig, command(23, "frobnicate"))
        rig.tick()
        _send(rig, command(0, "status"))
        _send(rig, command(25, "status", args="[1]"))
        _send(rig, sign(b'{"id":26,"cmd":"status","exp":1.5,"args":{}}', MAC))
        rig.tick()
        _send(rig, good)
        _send(rig, good)  # the same again: a replay
        _send(rig, command(23, "status"))  # an older id, never run: still too old
        rig.tick()
        a = _acks(rig)
        got = [(x["id"], x["cmd"], x["ok"], x.get("err", "")) for x in a]
        assert [g[:3] for g in got] == [
            (20, "reboot", False), (21, "reboot", False), (24, "reboot", False), (24, "status", False),
            (22, "reboot", False), (None, None, False), (23, "frobnicate", False),
            (0, "status", False), (25, "status", False), (26, "status", False),
            (24, "status", True), (24, "status", False), (23, "status", False)], got
        why = [g[3] for g in got]
        assert why[0].startswith("unsigned") and why[1].startswith("forged") and why[2].startswith("forged")
        assert why[3].startswith("unsigned") and why[4].startswith("expired") and why[5].startswith("bad command")
        assert why[6].startswith("unknown command") and why[7].startswith("bad id") and why[8].startswith("bad args")
        assert why[9].startswith("bad exp") and why[11].startswith("replayed: id 24") and why[12].startswith("replayed: id 23")
        assert rig.resets == []
    finally:
        rig.done()


def test_reboot_after_its_ack_and_the_last_id_survives_it():
    rig = _rig()
    try:
        rig.tick()
        _send(rig, command(30, "reboot"))
        rig.tick()
        assert rig.resets == [1] and _acks(rig)[-1]["ok"] is True
        # the board comes back on the same flash: the same command again is a replay
        from node import Node
        rig.node.queue.close()
        rig.mqtt.published = []
        rig.mqtt.connected = False
        rig.node = Node(rig.cfg, rig.hw, rig.mqtt, log=rig.log)
        rig.tick()
        _send(rig, command(30, "reboot"))
        _send(rig, command(31, "time"))
        rig.tick()
        assert [(x["id"], x["ok"]) for x in _acks(rig)] == [(30, False), (31, True)]
        assert rig.resets == [1]
    finally:
        rig.done()


def test_a_refused_subscription_keeps_the_node_publishing():
    rig = _rig()
    rig.mqtt.refuse_subscribe = True
    try:
        rig.tick(2)
        assert rig.mqtt.connected and len(rig.mqtt.data()) == 2
        assert any("error cmd" in ln and "refused" in ln for ln in rig.lines), rig.lines
        _send(rig, command(40, "time"))
        _send(rig, command(41, "time"))
        _send(rig, command(42, "time"))
        _send(rig, command(43, "time"))
        _send(rig, command(44, "time"))  # a fifth waiting: dropped, counted
        assert any("4 commands waiting" in ln for ln in rig.lines)
        rig.tick()
        assert [x["id"] for x in _acks(rig)] == [40, 41, 42, 43]
    finally:
        rig.done()


def test_probe_reports_raw_registers_and_decoded_values():
    rig = _rig()
    try:
        rig.tick()
        _send(rig, command(50, "probe"))
        _send(rig, command(51, "probe", args='{"analyzer":"nope"}'))
        rig.tick()
        a, b = _acks(rig)
        assert a["ok"] is True, a
        cod = a["result"]["cod"]
        assert cod["unit"] == 1
        fc, start, raw, members = cod["blocks"][0]
        assert fc == 3 and start == 0 and len(raw) % 4 == 0  # hex, 4 digits a register
        regs = [int(raw[i:i + 4], 16) for i in range(0, len(raw), 4)]
        value, flag, typ, order = cod["values"]["w01018"]
        assert (typ, order, flag) == ("float32", "ABCD", "N")
        off = members[members.index(0) + 1]  # value 0's offset in the block
        import struct
        assert abs(struct.unpack(">f", struct.pack(">HH", regs[off], regs[off + 1]))[0] - value) < 1e-3
        assert -1 in members[0::2]  # the status register is in the block too
        assert b["ok"] is False and b["err"] == "failed: ValueError: no analyzer named nope"
    finally:
        rig.done()
