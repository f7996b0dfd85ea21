"""The simulated HJ 212 platform (edgemon.dev.platformsim) against a plain socket client on 127.0.0.1:
9014 replies, framing across reads, refused frames, the faults (dropped replies, closed connection,
outage), requests and the answers they collect, the Modbus CRC link setting, and the CLI."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from edgemon.dev.platformsim import PlatformSimulator
from edgemon.hj212 import CP, Packet, parse

MN = "010000A8900016F000169DC0"
PW = "123456"


def upload(qn: str, cn: str = "2011", flag: int = 5, mn: str = MN, variant: str = "standard", **cp) -> bytes:
    fields = {"DataTime": qn[:14], **cp}
    return Packet(qn=qn, st="32", cn=cn, pw=PW, mn=mn, flag=flag,
                  cp=CP.build(fields, {"w01018": {"Rtd": "25.3", "Flag": "N"}})).encode(variant)


class Client:
    """A site's data logger reduced to a socket: send bytes, read whole frames."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def frame(self, timeout: float = 3.0) -> bytes:
        """The next \\r\\n-terminated frame; b"" when the platform closed the connection."""
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                return b""
            self.buf += chunk
        frame, _, self.buf = self.buf.partition(b"\r\n")
        return frame + b"\r\n"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sim():
    s = PlatformSimulator().start()
    yield s
    s.stop()


@pytest.fixture
def client(sim):
    c = Client(sim.port)
    yield c
    c.close()


def test_an_upload_gets_a_9014_with_its_qn_and_a_valid_crc_a_no_reply_upload_gets_none(sim, client):
    client.send(upload("20240101080000001", flag=4))  # Flag 4: no reply wanted
    client.send(upload("20240101080000002"))
    reply = parse(client.frame())  # raises on a wrong CRC or length
    assert reply.deviations == []
    r = reply.packet
    assert (r.qn, r.st, r.cn, r.pw, r.mn, r.flag) == ("20240101080000002", "91", "9014", PW, MN, 4)
    assert r.cp.items() == [] and reply.raw.endswith(b";Flag=4;CP=&&&&" + reply.raw[-6:])
    assert [k.packet.qn for k in sim.received] == ["20240101080000001", "20240101080000002"]
    got = sim.received[1]
    assert got.packet.cp.pollutants() == {"w01018": {"Rtd": "25.3", "Flag": "N"}}
    assert got.peer == client.sock.getsockname() and got.answer == "9014" and abs(got.at - time.time()) < 5
    assert sim.connections() == [client.sock.getsockname()]
    assert [k.packet.qn for k in sim.data(cn="2011", mn=MN)] == ["20240101080000001", "20240101080000002"]
    assert sim.data(cn="2061") == [] and sim.data(mn="other") == []


def test_a_2025_heartbeat_gets_the_2025_version_bits_a_notify_9013_and_replies_nothing(sim, client):
    client.send(Packet(qn="20260101080000001", st="32", cn="9014", pw=PW, mn=MN, flag=5).encode())
    client.send(Packet(qn="20260101080000002", st="32", cn="9015", pw=PW, mn=MN, flag=9).encode())
    r = parse(client.frame()).packet
    assert (r.qn, r.cn, r.flag, r.version) == ("20260101080000002", "9014", 8, "HJ 212-2025")
    client.send(Packet(qn="20260101080000003", st="32", cn="1013", pw=PW, mn=MN, flag=5).encode())
    r = parse(client.frame()).packet
    assert (r.qn, r.st, r.cn, r.flag) == ("20260101080000003", "91", "9013", 4)
    assert [k.answer for k in sim.received] == [None, "9014", "9013"]
    assert sim.data() == []  # none of them is a data packet


def test_two_frames_in_one_send_and_one_frame_over_two_sends(sim, client):
    client.send(upload("20240101080000001") + b"\r\n" + upload("20240101080000002"))  # an empty line: skipped
    assert [parse(client.frame()).packet.qn for _ in range(2)] == ["20240101080000001", "20240101080000002"]
    raw = upload("20240101080000003")
    client.send(raw[:40])
    time.sleep(0.1)
    assert len(sim.received) == 2 and sim.rejected == []  # half a frame waits for its rest
    client.send(raw[40:])
    assert parse(client.frame()).packet.qn == "20240101080000003"
    assert sim.received[2].raw == raw


def test_wrong_crc_wrong_length_and_garbage_are_refused_with_their_reason_and_not_answered(sim, client):
    good = upload("20240101080000001")
    bad_crc = good[:-6] + (b"0000" if good[-6:-2] != b"0000" else b"1111") + b"\r\n"
    bad_len = b"##%04d" % (int(good[2:6]) + 1) + good[6:]
    client.send(bad_crc + bad_len + b"hello\r\n" + upload("20240101080000009"))
    assert parse(client.frame()).packet.qn == "20240101080000009"  # the first reply is the good one's
    assert [(r.kind, r.raw) for r in sim.rejected] == [("crc", bad_crc), ("length", bad_len), ("syntax", b"hello\r\n")]
    assert "standard CRC of its data segment" in sim.rejected[0].reason
    assert "the header says" in sim.rejected[1].reason and sim.rejected[0].peer == client.sock.getsockname()
    assert [k.packet.qn for k in sim.received] == ["20240101080000009"]


def test_drop_replies_drops_exactly_that_many(sim, client):
    sim.drop_replies(1)
    client.send(upload("20240101080000001") + upload("20240101080000002") + upload("20240101080000003"))
    assert [parse(client.frame()).packet.qn for _ in range(2)] == ["20240101080000002", "20240101080000003"]
    assert [k.answer for k in sim.received] == ["dropped", "9014", "9014"]


def test_close_on_next_closes_the_connection_without_a_reply_once(sim, client):
    sim.close_on_next(1)
    client.send(upload("20240101080000001"))
    assert client.frame() == b""  # closed, and no 9014 before that
    assert sim.received[0].answer == "closed"
    assert sim.wait_for(lambda: sim.connections() == [], 3)
    again = Client(sim.port)
    try:
        again.send(upload("20240101080000002"))
        assert parse(again.frame()).packet.qn == "20240101080000002"
    finally:
        again.close()


def test_set_down_refuses_and_closes_then_accepts_again_on_the_same_port(sim, client):
    port = sim.port
    client.send(upload("20240101080000001"))
    assert client.frame()
    sim.set_down(True)
    assert client.frame() == b"" and sim.connections() == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    sim.set_down(False)
    assert sim.port == port
    back = Client(port)
    try:
        back.send(upload("20240101080000002"))
        assert parse(back.frame()).packet.qn == "20240101080000002"
    finally:
        back.close()


def test_a_history_request_reaches_the_site_and_its_answers_are_collected(sim, client):
    with pytest.raises(LookupError):
        sim.request(MN, "2061", {})  # nobody has sent this MN yet
    client.send(upload("20240101080000001"))
    client.frame()
    qn = sim.request(MN, "2061", {"BeginTime": "20240101000000", "EndTime": "20240101010000"})
    req = parse(client.frame())
    k = req.packet
    assert req.deviations == [] and (k.qn, k.st, k.cn, k.pw, k.mn, k.flag) == (qn, "32", "2061", PW, MN, 5)
    assert k.cp.items() == [("BeginTime", "20240101000000"), ("EndTime", "20240101010000")]
    # the site: 9011 ready, two hours of data (each its own QN, each wants a 9014), 9012 success
    client.send(Packet(qn=qn, st="91", cn="9011", pw=PW, mn=MN, flag=4, cp=CP.build({"QnRtn": "1"})).encode())
    client.send(upload("20240101080000010", cn="2061") + upload("20240101080000011", cn="2061"))
    assert [parse(client.frame()).packet.cn for _ in range(2)] == ["9014", "9014"]
    client.send(Packet(qn=qn, st="91", cn="9012", pw=PW, mn=MN, flag=5, cp=CP.build({"ExeRtn": "1"})).encode())
    client.send(upload("20240101080000020", cn="2061"))  # after the 9012: a plain upload again
    assert parse(client.frame()).packet.qn == "20240101080000020"  # (the 9012 itself got no 9014)
    assert [r.packet.cn for r in sim.replies_to(qn)] == ["9011", "2061", "2061", "9012"]
    assert sim.replies_to(qn)[-1].packet.cp.get("ExeRtn") == "1"
    assert sim.replies_to("20240101080000001") == []
    qn2 = sim.request(MN, "1011", {})
    assert qn2 != qn and parse(client.frame()).packet.cn == "1011"


def test_requests_take_the_sites_version_bits_or_the_configured_ones(client, sim):
    client.send(Packet(qn="20260101080000001", st="32", cn="9015", pw=PW, mn=MN, flag=9).encode())
    client.frame()
    sim.request(MN, "1000", {"OverTime": 5, "ReCount": 3})
    k = parse(client.frame()).packet
    assert k.flag == 9 and k.cp.get("OverTime") == "5" and k.cp.get("ReCount") == "3"
    sim.version_flag_bits = 1
    sim.request(MN, "1011", {})
    assert parse(client.frame()).packet.flag == 5
    sim.request(MN, "1011", {}, pw="654321", flag=4)
    k = parse(client.frame()).packet
    assert (k.pw, k.flag) == ("654321", 4)


def test_the_modbus_crc_link_accepts_modbus_frames_and_refuses_standard_ones():
    with PlatformSimulator(crc_variant="modbus") as sim:
        c = Client(sim.port)
        try:
            standard = upload("20240101080000001")
            c.send(standard + upload("20240101080000002", variant="modbus"))
            raw = c.frame()
            r = parse(raw, "modbus").packet
            assert (r.qn, r.cn) == ("20240101080000002", "9014") and raw == Packet(
                qn=r.qn, st="91", cn="9014", pw=PW, mn=MN, flag=4).encode("modbus")
            assert [(x.kind, x.raw) for x in sim.rejected] == [("crc", standard)]
            assert "it is the standard CRC" in sim.rejected[0].reason
        finally:
            c.close()


def _lines(proc) -> queue.Queue:
    q: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            q.put(line)
        q.put(None)
    threading.Thread(target=pump, daemon=True).start()
    return q


def _until(q: queue.Queue, text: str, timeout: float = 5.0) -> str:
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        if text in line:
            return line
        seen.append(line)
    pytest.fail(f"no line with {text!r} within {timeout} s; output:\n{''.join(seen)}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_cli_prints_each_packet_received_and_stops_on_a_signal(sig):
    with socket.socket() as s:  # a free port for --port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "edgemon.cli", "hj212", "platform", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        q = _lines(proc)
        assert f"listening on 127.0.0.1:{port}" in _until(q, "listening on")
        c = Client(port)
        try:
            c.send(upload("20240101080000001") + b"##9999QN=1\r\n")
            assert parse(c.frame()).packet.qn == "20240101080000001"
            line = _until(q, f"MN={MN}")
            assert "CN=2011 QN=20240101080000001 -> 9014" in line and "127.0.0.1:" in line
            assert "REJECTED syntax" in _until(q, "REJECTED")
        finally:
            c.close()
        proc.send_signal(sig)
        assert "stopped: 1 packet(s) accepted, 1 refused" in _until(q, "stopped:")
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def test_the_hj212_command_does_not_import_the_development_tools():
    code = ("import sys; import edgemon.hj212_cli; "
            "print(sorted(m for m in sys.modules if m.startswith('edgemon.dev')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
