"""The command channel (docs/ARCHITECTURE.md section 3): commands on the node's own
edge/v1/{site}/{node}/cmd (mqttsub.py subscribes at each connect), each answered on .../cmd/ack.
Loaded for the call (compat.call_once from node.py, while commands wait) and dropped after: the
poll loop keeps none of it, and a connect does not load it (at 64k, with profiles, loading it at
each connect did not find a 640-byte block).

A command: {"id":<int>,"cmd":"<op>","exp":<Unix ms>,"args":{...},"sig":"<hex>"}, signed like data
(HMAC-SHA256 with the node's key over the payload without its final ,"sig":"<hex>"). It is refused,
and the refusal acknowledged, when it is unsigned, forged, expired, not newer than the last one
accepted (a replay: that id is kept on flash, stored before the op runs, so a command runs once
even if the node resets half way) or unknown. Ops: time (the clock; args sync=true: NTP first),
status (the retained status now), reboot (after the ack), probe (cmdprobe.py), config (new_config),
update (fwupdate.py; the node resets after the ack), resend (cmdresend.py).

Heap: every name and every string of up to 10 characters in a loaded module is interned for good,
and the node ran 6 names short of a new 7 KB name table (620 of 620 with this module's first
draft). So this module has two functions, uses names the node already has, and writes its short
words (the reasons) as long strings."""
import json

def run(node, payload):
    """One command payload (bytes): checked, run, acknowledged on cmd/ack (signed by the node)."""
    if type(payload) is str:  # a big one, held on flash by node.on_message until its code is in
        f = open(payload, "rb")
        payload = f.read()
        f.close()
    clock = node.hw.clock
    now = clock.now_ms()
    err = None
    # the signature: ,"sig":"<64 hex>"} ends the payload; the HMAC covers the rest plus "}"
    err = __import__("compat").call_once("confirm", "signed", node.mac, payload)
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
        elif op not in "time status reboot probe config update resend".split():  # (one long string: short ones are interned)
            err = "unknown command: the ops are time, status, reboot, probe, config, update, resend"
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
                elif op == "config":
                    res = new_config(node, payload["args"])
                elif op == "resend":
                    res = __import__("compat").call_once("cmdresend", "resend", node, payload.get("args", {}))
                elif op == "update":
                    res = __import__("compat").call_once("fwupdate", "fetch", node, payload.get("args", {}))
                elif op != "reboot":  # probe
                    a = payload.get("args", {})
                    res = __import__("compat").call_once("cmdprobe", "scan", node, a) if "scan" in a else \
                        __import__("compat").call_once("cmdprobe", "sample", node, a.get("analyzer"))
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
    if op in ("reboot", "config", "update") and err is None:
        node.hw.reset()  # after the ack's PUBACK; a board replays its flash queue after the reset


def new_config(node, args):
    """config: args {"config": <node config>, "trial_s": s (default 300)}. Refused when it is for
    another site/node. Else written beside the running one (<path>.config-new, with the trial marker
    <path>.config-trial) and the node resets after the ack: the swap, the check by the boot's own
    validator and the trial are the boot's (start.load, cfgswap), while the heap is free (loading
    the validator here, beside the running node, does not fit a 64k heap)."""
    cfg = args.get("config")
    s = args.get("trial_s", 300)
    path = node._trial[0]
    if type(cfg) is not dict or type(s) is not int or not 10 <= s <= 3600:
        raise ValueError("args: a config object and trial_s 10..3600 expected")
    if "/%s/%s/" % (cfg.get("site"), cfg.get("node")) not in node.status_topic:
        raise ValueError("refused: the config is for %s/%s, not this node" % (cfg.get("site"), cfg.get("node")))
    f = open(path + ".config-new", "w")
    json.dump(cfg, f)  # streamed: one string of the whole config may not find a block in 64k
    f.close()
    cfg = None
    f = open(path + ".config-trial", "w")  # after it: no marker, no swap (a cut here loses nothing)
    f.write("0%d" % s)
    f.close()
    return '{"trial_s":%d}' % s
