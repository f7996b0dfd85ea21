"""The command channel end to end: `edgemon node cmd` (a subprocess, as a technician runs it) against
the real firmware on the MicroPython unix port through the real Mosquitto. The node subscribes to its
cmd topic, runs a signed command once and acknowledges it, signed; an unsigned, forged, expired or
replayed command is refused and the refusal acknowledged; a reboot ends the process after its ack and
the rebooted node (started again by its runner) still refuses the command that rebooted it; data keeps flowing throughout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import paho.mqtt.client as paho
import pytest

from edgemon.commands import build_command
from edgemon.dev.nodeproc import FirmwareProcess, cod_node_config
from edgemon.dev.simulator import AnalyzerSimulator, cod_profile
from edgemon.keys import signed_payload

SITE, NODE = "cmd-site", "n1"
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def _gateway_toml(tmp_path, stack, keys: dict[str, bytes]):
    kf = tmp_path / "keys.toml"
    kf.write_text("[keys]\n" + "".join(f'"{n}" = "{k.hex()}"\n' for n, k in keys.items()))
    os.chmod(kf, 0o600)
    gt = tmp_path / "gateway.toml"
    gt.write_text(f"""[gateway]
id = "gw-cmd-{tmp_path.name[-20:]}"
state_dir = "gw"
[mqtt]
host = "127.0.0.1"
port = {stack.mqtt_port}
username = "{stack.mqtt_user}"
password = "{stack.mqtt_password}"
[influx]
url = "{stack.influx_url}"
database = "unused"
[trust]
keys_file = "{kf}"
""")
    return gt


def edgemon(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "edgemon.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


class Watch:
    """A subscriber on the node's topics: acks, data seqs, statuses."""

    def __init__(self, stack):
        self.acks: list[dict] = []
        self.seqs: list[int] = []
        self.statuses: list[dict] = []
        self.raw: list[bytes] = []  # the data payloads as published
        self.lock = threading.Lock()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"watch-{os.getpid()}-{time.time_ns()}")
        c.username_pw_set(stack.mqtt_user, stack.mqtt_password)
        c.on_message = self._on
        c.connect("127.0.0.1", stack.mqtt_port)
        for t in ("cmd/ack", "data", "status"):
            c.subscribe(f"edge/v1/{SITE}/{NODE}/{t}", qos=1)
        c.loop_start()
        self.c = c

    def _on(self, client, userdata, m):
        d = json.loads(m.payload)
        with self.lock:
            if m.topic.endswith("/cmd/ack"):
                self.acks.append(d)
            elif m.topic.endswith("/data"):
                self.seqs.extend(r["seq"] for r in d.get("batch", [d]))
                self.raw.append(bytes(m.payload))
            else:
                self.statuses.append(d)

    def publish_cmd(self, payload: bytes):
        self.c.publish(f"edge/v1/{SITE}/{NODE}/cmd", payload, qos=1).wait_for_publish(5)

    def wait(self, fn, what, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = fn(self)
            if got:
                return got
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; acks {self.acks}")

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def rig(stack, tmp_path):
    sim = AnalyzerSimulator(cod_profile()).start()
    user = f"{SITE}.{NODE}.{tmp_path.name[-12:]}"
    password = stack.add_mqtt_user(user)
    cfg = cod_node_config(SITE, NODE, mqtt_port=stack.mqtt_port, mqtt_user=user, mqtt_password=password,
                          analyzer_port=sim.port, state_dir=tmp_path / "node", poll_s=1, timeout_ms=500)
    cfg["key"] = KEY.hex()
    watch = Watch(stack)
    fw = FirmwareProcess(cfg, tmp_path / "node.json", heapsize="64k").start()
    gt = _gateway_toml(tmp_path, stack, {f"{SITE}/{NODE}": KEY})
    try:
        watch.wait(lambda w: any(s.get("state") == "online" for s in w.statuses), "the node online")
        yield {"fw": fw, "watch": watch, "toml": gt, "cfg": cfg, "tmp": tmp_path}
    finally:
        watch.close()
        fw.stop()
        sim.stop()
        print("firmware log tail:\n" + "\n".join(list(fw.lines)[-int(os.environ.get("FWTAIL", "30")):]))


def test_a_signed_command_is_run_once_and_acknowledged(rig):
    t0 = int(time.time() * 1000)
    r = edgemon("node", "cmd", "--config", str(rig["toml"]), SITE, NODE, "time", "--json", "--wait", "20")
    assert r.returncode == 0, r.stdout + r.stderr
    ack = json.loads(r.stdout)
    assert ack["ok"] is True and ack["cmd"] == "time" and ack["id"] >= t0
    assert abs(ack["result"]["now"] - t0) < 10_000 and ack["result"]["clk"] == "ntp"
    # the journal of what was sent and answered, in the gateway's state folder
    log = [json.loads(x) for x in (rig["tmp"] / "gw" / "commands.jsonl").read_text().splitlines()]
    assert [e.get("sent", False) for e in log] == [True, False] and log[1]["ack"]["ok"] is True
    # a second command gets a newer id, and a status op re-announces the retained status
    before = len(rig["watch"].statuses)
    r2 = edgemon("node", "cmd", "--config", str(rig["toml"]), SITE, NODE, "status", "--json")
    assert r2.returncode == 0, r2.stderr
    assert json.loads(r2.stdout)["id"] > ack["id"]
    rig["watch"].wait(lambda w: len(w.statuses) > before, "a status after the status op", timeout=5)


def test_unsigned_forged_expired_and_replayed_commands_are_refused(rig):
    w = rig["watch"]
    now = int(time.time() * 1000)
    good = build_command(now, "status", {}, now + 60_000, KEY)
    w.publish_cmd(good)
    w.wait(lambda w: any(a["id"] == now and a["ok"] for a in w.acks), "the good command's ack")
    body = json.dumps({"id": now + 1, "cmd": "reboot", "exp": now + 60_000, "args": {}}, separators=(",", ":"))
    tampered = signed_payload(body.replace("reboot", "status").encode(), KEY).replace(b'"status"', b'"reboot"')
    # one at a time, as `edgemon node cmd` sends them (a node holds at most 4 waiting commands)
    for n, payload in enumerate([
            body.encode(),  # unsigned
            build_command(now + 2, "reboot", {}, now + 60_000, OTHER_KEY),  # forged: another key
            build_command(now + 3, "reboot", {}, now - 1_000, KEY),  # expired
            good,  # replayed
            tampered], 2):  # signed, then changed
        w.publish_cmd(payload)
        acks = w.wait(lambda w: w.acks if len(w.acks) >= n else None, f"ack {n}")
    by = [(a["id"], a["ok"], a.get("err", "")) for a in acks[1:6]]
    assert [(i, ok) for i, ok, _ in by] == [(now + 1, False), (now + 2, False), (now + 3, False), (now, False),
                                           (now + 1, False)], by
    assert by[0][2].startswith("unsigned") and by[1][2].startswith("forged") and by[2][2].startswith("expired")
    assert by[3][2].startswith(f"replayed: id {now}") and by[4][2].startswith("forged")
    assert rig["fw"].alive()  # none of the reboots ran
    seen = len(w.seqs)
    w.wait(lambda w: len(w.seqs) >= seen + 2, "data still flowing")
    assert w.seqs == list(range(w.seqs[0], w.seqs[0] + len(w.seqs))), "seq not contiguous"


def test_reboot_resets_after_its_ack_and_its_replay_is_refused_after(rig):
    w = rig["watch"]
    fw = rig["fw"]
    first = fw.proc
    boot = max(s["cn"][0] for s in w.statuses if s.get("state") == "online")  # cn = [boot, connection]
    r = edgemon("node", "cmd", "--config", str(rig["toml"]), SITE, NODE, "reboot", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    cid = json.loads(r.stdout)["id"]
    first.wait(timeout=10)
    assert first.returncode == 75  # the unix port's "reset"; FirmwareProcess starts it again
    # resets: the first boot's (it checked the new config: --lean, as a board), then the reboot's
    w.wait(lambda w: fw.resets == 2 and any(s.get("state") == "online" and s["cn"][0] > boot for s in w.statuses),
           "online again, from the next boot")
    assert fw.proc is not first and fw.alive()
    seen = len(w.seqs)
    earlier = len([a for a in w.acks if a["id"] == cid])
    w.publish_cmd(build_command(cid, "reboot", {}, int(time.time() * 1000) + 60_000, KEY))
    w.wait(lambda w: len([a for a in w.acks if a["id"] == cid]) > earlier, "the replay's ack")
    assert [a for a in w.acks if a["id"] == cid][-1]["err"].startswith("replayed")
    w.wait(lambda w: len(w.seqs) > seen + 1, "data after the reboot")
    assert fw.resets == 2 and fw.alive()
    assert sorted(set(w.seqs)) == list(range(w.seqs[0], max(w.seqs) + 1)), "a record lost over the reboot"


def test_cli_errors_name_the_problem_with_their_exit_codes(stack, tmp_path):
    gt = _gateway_toml(tmp_path, stack, {f"{SITE}/other": KEY})
    r = edgemon("node", "cmd", "--config", str(gt), SITE, NODE, "time")
    assert r.returncode == 1 and f"no key for {SITE}/{NODE}" in r.stderr and "fix:" in r.stderr
    r = edgemon("node", "cmd", "--config", str(gt), SITE, NODE, "format")
    assert r.returncode == 2 and "op 'format'" in r.stderr and "reboot" in r.stderr
    r = edgemon("node", "cmd", "--config", str(gt), SITE, "other", "time", "--arg", "sync")
    assert r.returncode == 2 and "key=value" in r.stderr
    r = edgemon("node", "cmd", "--config", str(gt), SITE, "other", "time", "--wait", "1")  # nobody there
    assert r.returncode == 4 and "no ack" in r.stderr
    r = edgemon("node", "cmd", "--help")
    assert r.returncode == 0 and "Examples:" in r.stdout and "Exit codes" in r.stdout


def test_node_status_reads_the_retained_status_and_checks_its_signature(rig):
    r = edgemon("node", "status", "--config", str(rig["toml"]), SITE, NODE, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    st = json.loads(r.stdout)
    assert st["state"] == "online" and st["fw"] == "0.4.0" and st["signed"] == "signature ok" and st["cn"][0] >= 1
    rig["fw"].stop()  # a clean stop publishes the retained offline status
    time.sleep(0.5)
    r = edgemon("node", "status", "--config", str(rig["toml"]), SITE, NODE)
    assert r.returncode == 3 and "offline" in r.stdout, r.stdout + r.stderr
    # someone else's retained status on the node's topic (the gateway's own broker account here)
    rig["watch"].c.publish(f"edge/v1/{SITE}/{NODE}/status", signed_payload(b'{"state":"online"}', OTHER_KEY),
                           qos=1, retain=True).wait_for_publish(5)
    r = edgemon("node", "status", "--config", str(rig["toml"]), SITE, NODE)
    assert r.returncode == 5 and "forged" in r.stderr, r.stdout + r.stderr
    rig["watch"].c.publish(f"edge/v1/{SITE}/{NODE}/status", b"", qos=1, retain=True).wait_for_publish(5)  # cleared
    r = edgemon("node", "status", "--config", str(rig["toml"]), SITE, "nobody", "--wait", "1")
    assert r.returncode == 4 and "no status" in r.stderr


def test_probe_shows_raw_registers_decoded_values_and_every_order(rig):
    r = edgemon("node", "probe", "--config", str(rig["toml"]), SITE, NODE, "--all-orders", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads(r.stdout)
    (cod,) = [x for x in rows if x["param"] == "w01018"]
    assert cod["analyzer"] == "cod" and cod["unit_id"] == 1 and cod["flag"] == "N" and cod["unit"] == "mg/L"
    assert cod["type"] == "float32" and len(cod["regs"]) == 2 and len(cod["raw"].split()) == 2
    assert abs(cod["all_orders"]["float32 ABCD"] - cod["value"]) < 1e-3 * max(1, abs(cod["value"]))
    assert cod["all_orders"]["float32 CDAB"] != cod["all_orders"]["float32 ABCD"]
    text = edgemon("node", "probe", "--config", str(rig["toml"]), SITE, NODE)
    assert text.returncode == 0 and "w01018" in text.stdout and "float32 ABCD" in text.stdout
    r = edgemon("node", "probe", "--config", str(rig["toml"]), SITE, NODE, "--analyzer", "flow")
    assert r.returncode == 3 and "no analyzer named flow" in r.stderr


def test_probe_scan_finds_who_answers_on_the_bus_and_data_keeps_flowing(rig):
    n = len(rig["watch"].seqs)
    r = edgemon("node", "probe", "--config", str(rig["toml"]), SITE, NODE, "--scan", "--units", "1-6", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads(r.stdout)
    assert got["analyzer"] == "cod" and got["tried"] == 6 and got["found"] == [{"unit": 1, "baud": None,
                                                                                 "answer": "answers"}], got
    text = edgemon("node", "probe", "--config", str(rig["toml"]), SITE, NODE, "--scan", "--units", "2-3")
    assert text.returncode == 0 and "2 tried, 0 answered" in text.stdout and "nobody answered" in text.stdout
    r = edgemon("node", "probe", "--config", str(rig["toml"]), SITE, NODE, "--scan", "--bauds", "9600")
    assert r.returncode == 3 and "not a UART" in r.stderr, r.stderr  # a TCP bridge has no baud rate
    r = edgemon("node", "probe", "--config", str(rig["toml"]), SITE, NODE, "--scan", "--units", "0-300")
    assert r.returncode == 2 and "1..247" in r.stderr
    rig["watch"].wait(lambda w: len(w.seqs) > n + 2, "records after the scan")


def test_resend_publishes_records_again_from_flash_as_first_sent(rig):
    w = rig["watch"]
    w.wait(lambda w: len(w.seqs) >= 4, "four records")
    with w.lock:
        before = list(w.raw)
    r = edgemon("node", "resend", "--config", str(rig["toml"]), SITE, NODE, "1", "3")
    assert r.returncode == 0 and "3 record(s) sent again, seqs 1..3" in r.stdout, r.stdout + r.stderr
    w.wait(lambda w: len(w.raw) >= len(before) + 3, "the three again")
    with w.lock:
        again = w.raw[len(before):]
    firsts = {json.loads(p)["seq"]: p for p in before if b'"batch"' not in p}
    resent = [p for p in again if json.loads(p).get("seq") in (1, 2, 3)]
    assert sorted(json.loads(p)["seq"] for p in resent) == [1, 2, 3]
    assert all(firsts[json.loads(p)["seq"]] == p for p in resent if json.loads(p)["seq"] in firsts)  # byte for byte
    r = edgemon("node", "resend", "--config", str(rig["toml"]), SITE, NODE, "1", "5000")
    assert r.returncode == 3 and "the last record stored is" in r.stderr, r.stderr


def test_reconfigure_swaps_the_config_and_one_that_cannot_connect_rolls_back_by_itself(rig):
    path = rig["tmp"] / "node.json"
    first = json.loads(path.read_text())
    new = dict(first, poll_s=2)
    (rig["tmp"] / "new.json").write_text(json.dumps(new))
    r = edgemon("node", "reconfigure", "--config", str(rig["toml"]), SITE, NODE, str(rig["tmp"] / "new.json"),
                "--wait", "30", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr + "\n".join(list(rig["fw"].lines)[-20:])
    assert "config accepted" in r.stdout and "is up with the new config" in r.stdout, r.stdout
    assert json.loads(path.read_text())["poll_s"] == 2 and json.loads((rig["tmp"] / "node.json.config-old").read_text()) == first
    # the first boot's check, the op's reset, then the one after the boot that checked the new config:
    # the trial runs from a lean boot
    assert not (rig["tmp"] / "node.json.config-trial").exists() and rig["fw"].resets == 3
    # refused here, before anything is sent: every problem, naming the file and field
    bad = dict(new, poll_s=-1, mqtt=dict(new["mqtt"], port=99999))
    (rig["tmp"] / "bad.json").write_text(json.dumps(bad))
    r = edgemon("node", "reconfigure", "--config", str(rig["toml"]), SITE, NODE, str(rig["tmp"] / "bad.json"))
    assert r.returncode == 1 and "nothing sent" in r.stderr and "bad.json: poll_s:" in r.stderr, r.stderr
    assert "bad.json: mqtt.port:" in r.stderr
    # valid but stranding: a broker port nobody listens on. Accepted, the node resets, cannot connect,
    # resets again after its trial and comes back with the config it had; no record lost
    strand = dict(new, mqtt=dict(new["mqtt"], port=1))
    (rig["tmp"] / "strand.json").write_text(json.dumps(strand))
    r = edgemon("node", "reconfigure", "--config", str(rig["toml"]), SITE, NODE, str(rig["tmp"] / "strand.json"),
                "--trial", "10", "--wait", "5", timeout=90)
    assert r.returncode == 4 and "config accepted" in r.stdout and "brings back the previous config" in r.stderr, \
        r.stdout + r.stderr
    w = rig["watch"]
    boots = len([s for s in w.statuses if s.get("state") == "online"])
    w.wait(lambda w: len([s for s in w.statuses if s.get("state") == "online"]) > boots, "the node back online",
           timeout=60)
    # resets since: the op, the check, the trial's end, the check of the old one back
    assert json.loads(path.read_text())["mqtt"]["port"] == first["mqtt"]["port"] and rig["fw"].resets == 7
    assert not (rig["tmp"] / "node.json.config-trial").exists()
    assert any("the previous one is back" in ln for ln in rig["fw"].lines)
    n = len(w.seqs)
    w.wait(lambda w: len(w.seqs) > n + 3, "records after the rollback", timeout=20)
    seqs = sorted(set(w.seqs))
    assert seqs == list(range(seqs[0], seqs[-1] + 1)), seqs  # nothing lost across the three resets
