"""The AT driver and the sender against the modem simulated on a real pseudo-terminal."""

import json
import time

import pytest

from edgemon.sms.modem import Modem, ModemError, ModemGone, ModemTimeout
from edgemon.dev.modemsim import ModemSimulator
from edgemon.sms.outbox import Message, Outbox
from edgemon.sms.pdu import encode_submit
from edgemon.sms.sender import SenderConfig, SmsSender

from .pdudecoder import join_messages

NUMBER = "+8613800138000"


@pytest.fixture
def sim(tmp_path):
    (tmp_path / "dev").mkdir()
    s = ModemSimulator(tmp_path / "dev").start()
    yield s
    s.stop()


def test_open_puts_modem_in_pdu_mode_and_reads_health(sim):
    m = Modem(sim.path, command_timeout_s=1)
    m.open()
    assert sim.commands[:4] == ["AT", "ATE0", "AT+CMEE=1", "AT+CMGF=0"]
    sim.csq, sim.creg = 15, 5
    h = m.health()
    assert (h.csq, h.rssi_dbm, h.creg, h.registered) == (15, -83, 5, True)
    sim.creg = 2
    assert m.health().registered is False
    m.close()


def test_send_concatenated_message_with_matching_cmgs_lengths(sim):
    m = Modem(sim.path, command_timeout_s=1)
    m.open()
    text = "【测试】" + "超标告警" * 30
    pdus = encode_submit(NUMBER, text, ref=42)
    refs = [m.send_pdu(p) for p in pdus]
    assert len(pdus) == 2 and refs == [1, 2]
    assert [r.length for r in sim.received] == [p.tpdu_len for p in pdus]
    assert join_messages([r.pdu for r in sim.received]) == [(NUMBER, text)]


def test_cms_error_is_reported_with_its_code_and_whether_to_retry(sim):
    m = Modem(sim.path, command_timeout_s=1)
    m.open()
    pdu = encode_submit(NUMBER, "x")[0]
    sim.fail_next(1, 38)
    with pytest.raises(ModemError) as e:
        m.send_pdu(pdu)
    assert (e.value.code, e.value.permanent) == (38, False)
    sim.fail_next(1, 304)
    with pytest.raises(ModemError) as e:
        m.send_pdu(pdu)
    assert (e.value.code, e.value.permanent) == (304, True)
    assert m.send_pdu(pdu) == 1  # the modem is still usable
    assert len(sim.received) == 1


def test_no_answer_times_out(sim):
    m = Modem(sim.path, command_timeout_s=0.3, send_timeout_s=0.3)
    m.open()
    sim.silent_next(1)
    t0 = time.monotonic()
    with pytest.raises(ModemTimeout):
        m.send_pdu(encode_submit(NUMBER, "x")[0])
    assert time.monotonic() - t0 < 2


def test_unplugged_modem_is_gone_until_replugged(sim):
    m = Modem(sim.path, command_timeout_s=0.5)
    m.open()
    sim.unplug()
    with pytest.raises(ModemGone):
        m.send_pdu(encode_submit(NUMBER, "x")[0])
    assert not m.is_open
    with pytest.raises(ModemGone):
        m.open()
    sim.replug()
    m.open()
    assert m.send_pdu(encode_submit(NUMBER, "x")[0]) == 1


def _sender(sim, tmp_path, lines, **cfg):
    outbox = Outbox(tmp_path / "state")
    modem = Modem(sim.path, command_timeout_s=0.5, send_timeout_s=0.5)
    return outbox, SmsSender(outbox, modem, tmp_path / "state", lines.extend,
                             SenderConfig(backoff_first_s=0.05, backoff_max_s=0.2, health_interval_s=3600, **cfg))


def _wait(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_sender_retries_through_errors_and_an_unplug_and_audits(sim, tmp_path):
    lines = []
    outbox, sender = _sender(sim, tmp_path, lines)
    sim.fail_next(2, 500)
    outbox.add([Message(id="a", to=NUMBER, text="化学需氧量超标" * 12, created_ms=1)])
    sender.start()
    try:
        assert _wait(lambda: not outbox.pending())
        sim.unplug()
        outbox.add([Message(id="b", to=NUMBER, text="恢复正常", created_ms=2)])
        time.sleep(0.5)
        assert [m.id for m in outbox.pending()] == ["b"]  # kept while the modem is away
        sim.replug()
        assert _wait(lambda: not outbox.pending())
    finally:
        sender.stop()
    assert join_messages([r.pdu for r in sim.received]) == [(NUMBER, "化学需氧量超标" * 12), (NUMBER, "恢复正常")]
    audit = [json.loads(x) for x in (tmp_path / "state" / "sms_audit.jsonl").read_text().splitlines()]
    assert [(a["id"], a["result"], a["attempts"]) for a in audit][0] == ("a", "sent", 3)
    assert audit[1]["id"] == "b" and audit[1]["result"] == "sent" and audit[1]["attempts"] >= 2
    assert sum(1 for ln in lines if ln.startswith("sms,")) == 2
    assert any(ln.startswith("modem,") and "ok=true" in ln for ln in lines)


def test_permanent_error_gives_up_once_and_records_failure(sim, tmp_path):
    lines = []
    outbox, sender = _sender(sim, tmp_path, lines)
    sim.fail_next(1, 304)
    outbox.add([Message(id="bad", to=NUMBER, text="x", created_ms=1)])
    sender.start()
    try:
        assert _wait(lambda: not outbox.pending())
    finally:
        sender.stop()
    audit = [json.loads(x) for x in (tmp_path / "state" / "sms_audit.jsonl").read_text().splitlines()]
    assert audit[0]["result"] == "failed" and "304" in audit[0]["error"]
    assert sim.received == []


def test_outbox_survives_restart_and_is_idempotent(tmp_path):
    ob = Outbox(tmp_path)
    assert ob.add([Message(id="x", to=NUMBER, text="a", created_ms=1)]) == 1
    assert ob.add([Message(id="x", to=NUMBER, text="a", created_ms=1)]) == 0
    ob2 = Outbox(tmp_path)  # a restart
    assert [m.id for m in ob2.pending()] == ["x"]
    ob2.finish("x")
    ob3 = Outbox(tmp_path)
    assert ob3.pending() == [] and ob3.add([Message(id="x", to=NUMBER, text="a", created_ms=1)]) == 0


def test_a_restart_mid_message_sends_only_the_remaining_parts(sim, tmp_path):
    text = "氨氮" * 80  # 3 parts
    ob = Outbox(tmp_path / "state")
    ob.add([Message(id="m", to=NUMBER, text=text, created_ms=1)])
    msg = ob.pending()[0]
    m = Modem(sim.path, command_timeout_s=0.5)
    m.open()
    m.send_pdu(encode_submit(NUMBER, text, msg.ref)[0])  # part 1 went out, then the gateway died
    msg.parts_sent = 1
    ob.update(msg)
    m.close()
    lines = []
    outbox, sender = _sender(sim, tmp_path, lines)
    sender.start()
    try:
        assert _wait(lambda: not outbox.pending())
    finally:
        sender.stop()
    assert len(sim.received) == 3
    assert join_messages([r.pdu for r in sim.received]) == [(NUMBER, text)]
