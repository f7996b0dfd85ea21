"""What the node receives over MQTT (docs/ARCHITECTURE.md section 3): SUBSCRIBE for the MQTT client,
and the command channel on the node's own edge/v1/{site}/{node}/cmd, each command answered on
.../cmd/ack. Loaded for the call (compat.call_once from node.py: at each connect to subscribe, and
while commands wait) and dropped after: the poll loop keeps none of it.

A command: {"id":<int>,"cmd":"<op>","exp":<Unix ms>,"args":{...},"sig":"<hex>"}, signed like data
(HMAC-SHA256 with the node's key over the payload without its final ,"sig":"<hex>"). It is refused,
and the refusal acknowledged, when it is unsigned, forged, expired, not newer than the last one
accepted (a replay: that id is kept on flash, stored before the op runs, so a command runs once
even if the node resets half way) or unknown. Ops: time (the clock; args sync=true: NTP first),
status (the retained status now), reboot (after the ack).

Heap: every name and every string of up to 10 characters in a loaded module is interned for good,
and the node ran 6 names short of a new 7 KB name table (620 of 620 with this module's first
draft). So this module has two functions, uses names the node already has, and writes its short
words (the reasons) as long strings."""
import json
import struct
from binascii import hexlify
from compat import const
from mqtt import MQTTError, encode_remaining_length, _utf8

_SUBSCRIBE = const(0x82)  # with the flag bits 3.1.1 requires (0b0010)
_SUBACK = const(0x90)


def subscribe(self, topic, qos=1, timeout_ms=None):
    """SUBSCRIBE the connected mqtt.MQTTClient `self` to one topic filter and wait for its SUBACK;
    returns the granted QoS. Messages that arrive meanwhile (a retained one on this very topic, say)
    go to self.on_message as usual. A refusal (SUBACK 0x80: the broker's ACL) raises MQTTError and
    leaves the connection up (the node still publishes); any other error closes the client. With a
    clean session a subscription ends with its connection."""
    if self.sock is None:
        raise MQTTError("subscribe: not connected")
    pid = self._next_pid()
    body = struct.pack(">H", pid) + _utf8(topic) + bytes([qos])
    try:
        self._send(bytes([_SUBSCRIBE]) + encode_remaining_length(len(body)) + body)
        body = self._await(_SUBACK, pid, self.timeout_ms if timeout_ms is None else timeout_ms)
    except Exception:
        self.close()
        raise
    if len(body) != 3 or body[2] > 2:
        raise MQTTError("subscription to %s refused (check the broker ACL)" % topic)
    return body[2]


def run(node, payload):
    """One command payload (bytes): checked, run, acknowledged on cmd/ack (signed by the node)."""
    clock = node.hw.clock
    now = clock.now_ms()
    err = None
    # the signature: ,"sig":"<64 hex>"} ends the payload; the HMAC covers the rest plus "}"
    i = payload.rfind(b',"sig":"')
    if node.mac is None:
        err = "refused: this node has no key (commands must be signed)"
    elif i < 0 or payload[i + 72:] != b'"}':
        err = "unsigned: no sig member at the end"
    else:
        want = hexlify(node.mac.digest(memoryview(payload)[:i], b"}"))
        got = payload[i + 8:i + 72]
        d = 0
        for k in range(64):
            d |= got[k] ^ want[k]
        if d:
            err = "forged: signature does not match"
    try:
        payload = json.loads(payload)
        if type(payload) is not dict:
            raise ValueError
    except Exception:
        payload = {}
        err = err or "bad command: not a JSON object"
    i = payload.get("id")
    if type(i) is not int:
        i = None
    op = payload.get("cmd")
    if type(op) is not str or not op.isalpha() or len(op) > 16:
        op = None
    res = None
    if err is None:
        ptr = __import__("pointer").Pointer(node.queue.dir + "/last_command_id")
        exp = payload.get("exp")
        if i is None or i <= 0:
            err = "bad id: a positive integer expected"
        elif i <= ptr.value:
            err = "replayed: id %d is not newer than the last accepted (%d)" % (i, ptr.value)
        elif type(exp) is not int:
            err = "bad exp: Unix milliseconds expected"
        elif exp < now and clock.clk != "none":  # no clock yet: the id alone guards it
            err = "expired %d ms ago (check the clocks)" % (now - exp)
        elif type(payload.get("args", {})) is not dict:
            err = "bad args: an object expected"
        elif op not in "time status reboot probe".split():  # (one long string: short ones are interned)
            err = "unknown command: the ops are time, status, reboot, probe"
        else:
            ptr.store(i)  # before it runs: once only, whatever happens next
            try:
                if op == "time":
                    sync = getattr(clock, "sync", None)
                    if payload.get("args", {}).get("sync"):
                        res = '"no NTP here: the host keeps the time"'
                        if sync is not None:
                            sync()
                            res = '"NTP sync done"'
                    res = '{"now":%d,"clk":"%s","synced":%s}' % (clock.now_ms(), clock.clk, res or "null")
                elif op == "status":
                    node._status_due = True  # the retained status goes out right after this ack
                elif op != "reboot":  # probe
                    res = sample(node, payload.get("args", {}).get("analyzer"))
            except Exception as e:
                err = "failed: %s: %s" % (type(e).__name__, e)
    node.log("cmd %s %s: %s" % (i, op, err or "done, acknowledged"))
    if err is None:  # result: the op's own, else how many records wait on flash
        res = '"ok":true,"result":%s}' % (res or '{"queue":%d}' % len(node.queue))
    else:  # the reason is our own text, but part of it may echo a command's content
        res = '"ok":false,"err":%s}' % json.dumps(err)
    node._publish_signed("/".join((node.status_topic[:-7], "cmd", "ack")), (
        '{"id":%s,"cmd":%s,"ts":%d,%s' % ("null" if i is None else "%d" % i, json.dumps(op), clock.now_ms(),
                                          res)).encode(), False)
    if op == "reboot" and err is None:
        node.hw.reset()  # after the ack's PUBACK; a board replays its flash queue after the reset


def sample(node, name):
    """probe: each analyzer (or the one named) read now, as a poll reads it: its read blocks' raw
    registers (hex; bits as 0/1) as [fc, start, raw, members] (members: value index, offset in the
    block; -1 the status word), then each value as "param":[value, flag, type, order] after scaling,
    as a record would carry it. The analyzer's values layout (analyzer._V_*: param 0, type 2, order
    3, 9 entries a value) is read here by number; tests/firmware/test_fw_layout.py keeps them in step.
    (Names reused and the class made here, not at import: each new name and a class cost heap.)"""
    from record import format_number

    class _Tap:
        # The analyzer's master, keeping what each read returned: the probe shows the very registers
        # the values were decoded from (a second read could differ: analyzers move).
        def __init__(self, master):
            self.master = master
            self.out = {}

        def read_registers(self, unit, fc, start, *rest):
            got = self.master.read_registers(unit, fc, start, *rest)
            self.out[(fc, start)] = hexlify(b"".join([struct.pack(">H", r) for r in got])).decode()
            return got

        def read_bits(self, unit, fc, start, *rest):
            got = self.master.read_bits(unit, fc, start, *rest)
            self.out[(fc, start)] = "".join(["1" if b else "0" for b in got])
            return got

    out = []
    for a in node.analyzers:
        if name is not None and a.name != name:
            continue
        got = {}
        tap = _Tap(a.master)
        a.master = tap
        try:
            a.sample(got)
        finally:
            a.master = tap.master
        blocks = []
        for fc, start, count, members in a.blocks:
            blocks.append('[%d,%d,"%s",[%s]]' % (fc, start, tap.out.get((fc, start), "no answer (flag B or D)"),
                                                ",".join(["%d" % m for m in members])))
        v = a.vals
        vals = []
        for j in range(0, len(v), 9):
            x, f = got.get(v[j], (None, "B"))
            vals.append('"%s":[%s,"%s","%s","%s"]' % (v[j], format_number(x), f, v[j + 2], v[j + 3]))
        out.append('"%s":{"unit":%d,"blocks":[%s],"values":{%s}}' % (a.name, a.unit, ",".join(blocks), ",".join(vals)))
    if not out:
        raise ValueError("no analyzer named %s" % name)
    return "{" + ",".join(out) + "}"
