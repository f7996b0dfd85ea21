"""Test doubles shared by the case modules (run under CPython and MicroPython): a scripted
Modbus slave transport, a fake hardware layer, a fake MQTT client and temp-dir helpers."""
import os
from compat import now_ms
from modbus_rtu import crc16
from modbus_slave import build_read_response, build_exception_response
from modbus_master import ModbusTimeout
from regencode import encode


class FakeSlave:
    """Implements the transport interface by answering requests from register maps.
    mode: "ok", "silent" (timeout), "exception", "badcrc", "wrong_unit", "oserror"."""

    def __init__(self, unit=1, holding=None, inputs=None):
        self.unit = unit
        self.regs = {3: holding or {}, 4: inputs or {}}
        self.mode = "ok"
        self.exc_code = 4
        self.rx = b""
        self.stale = b""  # bytes that appear before the next answer (a late earlier answer)
        self.requests = []
        self.flushes = 0
        self.closed = 0

    def set_float(self, fc, addr, value, order="ABCD"):
        r = encode(value, "float32", order)
        self.regs[fc][addr] = r[0]
        self.regs[fc][addr + 1] = r[1]

    def send(self, data):
        if self.mode == "oserror":
            raise OSError("link down")
        data = bytes(data)
        self.requests.append(data)
        fc = data[1]
        addr = (data[2] << 8) | data[3]
        count = (data[4] << 8) | data[5]
        if self.mode == "silent":
            self.rx = self.stale
            return
        if self.mode == "exception":
            resp = build_exception_response(self.unit, fc, self.exc_code)
        else:
            m = self.regs.get(fc, {})
            regs = []
            for a in range(addr, addr + count):
                if a not in m:
                    regs = None
                    break
                regs.append(m[a])
            if regs is None:
                resp = build_exception_response(self.unit, fc, 2)  # illegal data address
            else:
                resp = build_read_response(self.unit, fc, regs)
        if self.mode == "badcrc":
            resp = resp[:-1] + bytes([resp[-1] ^ 0xFF])
        elif self.mode == "wrong_unit":
            b = bytearray(resp)
            b[0] = (self.unit % 247) + 1
            c = crc16(b, 0, len(b) - 2)
            b[-2] = c & 0xFF
            b[-1] = c >> 8
            resp = bytes(b)
        self.rx = self.stale + resp

    def recv_exact(self, n, timeout_ms):
        if len(self.rx) < n:
            self.rx = b""
            raise ModbusTimeout("fake: no answer")
        out = self.rx[:n]
        self.rx = self.rx[n:]
        return out

    def flush_input(self):
        self.flushes += 1
        self.stale = b""
        self.rx = b""

    def close(self):
        self.closed += 1


class FakeClock:
    clk = "ntp"

    def __init__(self, t=1764000000000):
        self.t = t

    def now_ms(self):
        return self.t


class FakeHW:
    def __init__(self, state_dir, slaves):
        self.clock = FakeClock()
        self.state_dir = state_dir
        self.slaves = slaves  # host -> FakeSlave
        self.mqtt_socket_factory = None

    def make_transport(self, tcfg):
        return self.slaves[tcfg["host"]]

    def rssi(self):
        return None


class FakeMQTT:
    def __init__(self):
        self.connected = False
        self.fail_connect = False
        self.fail_publish = False
        self.published = []  # (topic, payload bytes, qos, retain)
        self.connects = 0
        self.will = None  # set by the node before each connect, as on the real client
        self.wills = []  # the will each successful connect carried
        self.subscribes = []  # SUBSCRIBE packets, as sent
        self.on_message = None

    def connect(self):
        if self.fail_connect:
            raise OSError("fake: connection refused")
        self.connects += 1
        self.connected = True
        self.wills.append(self.will)

    def maintain(self):
        if not self.connected:
            raise OSError("not connected")

    def publish(self, topic, payload, qos=1, retain=False, timeout_ms=None, length=None):
        if not self.connected:
            raise OSError("not connected")
        if self.fail_publish:
            self.connected = False
            raise OSError("fake: broker gone")
        # As the real client: the pieces (any bytes-like, possibly one reused buffer) are sent
        # back to back as they come, so each is copied now; a given length must be met exactly.
        if isinstance(payload, (bytes, bytearray, memoryview, str)):
            payload = [payload.encode() if isinstance(payload, str) else payload]
        sent = b"".join([bytes(p) for p in payload])
        if length is not None and len(sent) != length:
            self.connected = False
            raise OSError("fake: payload is %d bytes, announced %d" % (len(sent), length))
        self.published.append((topic, sent, qos, retain))

    def close(self):
        self.connected = False

    def disconnect(self):
        self.connected = False

    # What mqttsub.subscribe uses of the real client: each SUBSCRIBE is kept, and granted at QoS 1
    # unless refuse_subscribe (a SUBACK 0x80: the broker's ACL said no): True for every filter, or
    # a topic ending ("confirm": an older ACL).
    timeout_ms = 1000
    refuse_subscribe = False

    @property
    def sock(self):
        return True if self.connected else None

    def _next_pid(self):
        return 7

    def _send(self, packet):
        self.subscribes.append(bytes(packet))

    def _await(self, want, pid, timeout_ms):
        assert want == 0x90 and pid == 7, (want, pid)
        codes = [0x80 if self.refuse_subscribe is True or (self.refuse_subscribe and t.endswith(self.refuse_subscribe))
                 else 1 for t in self._filters(self.subscribes[-1])]
        return bytes([0, 7] + codes)

    @staticmethod
    def _filters(p):
        # fixed header (1 byte + 1-byte remaining length here), packet id, then (length, filter, qos)*
        out = []
        i = 4
        while i < len(p):
            n = (p[i] << 8) | p[i + 1]
            out.append(p[i + 2:i + 2 + n].decode())
            i += 3 + n
        return out

    def subscribed(self):
        """The topic filters subscribed so far, in order (from the SUBSCRIBE packets sent)."""
        out = []
        for p in self.subscribes:
            out.extend(self._filters(p))
        return out

    def data(self):
        return [p for p in self.published if p[0].endswith("/data")]

    def status(self):
        return [p for p in self.published if p[0].endswith("/status")]


_counter = [0]


def make_tmpdir():
    _counter[0] += 1
    path = "/tmp/fwtest-%d-%d" % (now_ms(), _counter[0])
    os.mkdir(path)
    return path


def rmtree(path):
    for name in os.listdir(path):
        p = path + "/" + name
        try:
            os.remove(p)
        except OSError:
            rmtree(p)
    os.rmdir(path)


def raises(exc_type, fn, *args):
    """Return the exception fn(*args) raises (must be exc_type); fail if none."""
    try:
        fn(*args)
    except exc_type as e:
        return e
    raise AssertionError("%s not raised" % exc_type.__name__)


def good_config():
    return {
        "site": "demo-site",
        "node": "cod-1",
        "poll_s": 5,
        "mqtt": {"host": "127.0.0.1", "port": 1883},
        "analyzers": [{
            "name": "cod",
            "transport": {"kind": "rtu_tcp", "host": "cod", "port": 5020},
            "unit": 1,
            "timeout_ms": 500,
            "values": [{"param": "w01018", "fc": 3, "addr": 0, "type": "float32", "order": "ABCD"}],
            "status": {"fc": 3, "addr": 2, "flags": {"0": "N", "1": "M", "2": "C", "3": "D", "4": "T", "5": "F"}},
        }],
    }


def loopback_server():
    """Listening TCP socket on 127.0.0.1; returns (sock, port). Picks ports by trial because the
    MicroPython unix port has no getsockname()."""
    import socket
    base = 20000 + now_ms() % 20000
    for i in range(50):
        port = base + i * 7
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
            s.listen(2)
            return s, port
        except OSError:
            s.close()
    raise OSError("no free port")


def recv_available(sock, wait_ms=500):
    """Everything the peer has sent so far (waits up to wait_ms for the first byte)."""
    import select
    p = select.poll()
    p.register(sock, select.POLLIN)
    out = b""
    t = wait_ms
    while p.poll(t):
        chunk = sock.recv(4096)
        if not chunk:
            break
        out += chunk
        t = 50
    return out


# ---- a Node on fakes (the uplink tests) ----

def cod_slave():
    """Unit 1: COD 35.2 (float32 at 0), status 0 (a code map: 0 -> N)."""
    s = FakeSlave(1, {2: 0, 3: 1})
    s.set_float(3, 0, 35.2)
    return s


class NodeRig:
    """A Node on FakeHW (one COD analyzer, host "cod") and FakeMQTT, stepped by tick()."""

    def __init__(self, cfg=None, hw_extra=None):
        from config import validate_config
        from node import Node
        self.dir = make_tmpdir()
        self.cfg = validate_config(cfg or good_config())
        self.hw = FakeHW(self.dir, {"cod": cod_slave()})
        if hw_extra:
            for k in hw_extra:
                setattr(self.hw, k, hw_extra[k])
        self.mqtt = FakeMQTT()
        self.lines = []
        self.node = Node(self.cfg, self.hw, self.mqtt, log=self.log)

    def log(self, line):
        # Keep every line but the routine cycle lines (all but the last): long runs stay small in the heap.
        if self.lines and self.lines[-1].startswith("cycle "):
            self.lines.pop()
        self.lines.append(line)

    def tick(self, n=1):
        for _ in range(n):
            self.hw.clock.t += 10000
            self.node.cycle()

    def confirm(self, upto, ranges="[]", again=0, mac=None):
        """The gateway's confirmation as the broker hands it to the node (.../confirm), signed with
        the rig's key (cfg["key"]) unless another mac is given."""
        from binascii import unhexlify
        from hmac_sha256 import HmacSha256
        from record import sign
        p = ('{"upto":%d,"ranges":%s,"again":%d,"gw":"gw1","ts":1}' % (upto, ranges, again)).encode()
        self.mqtt.on_message("edge/v1/%s/%s/confirm" % (self.cfg["site"], self.cfg["node"]),
                             sign(p, mac or HmacSha256(unhexlify(self.cfg["key"]))))

    def reconnect(self):
        self.mqtt.fail_connect = False
        self.mqtt.fail_publish = False
        self.node.mqtt_backoff.retry_now()

    def done(self):
        self.node.queue.close()
        rmtree(self.dir)


# ---- an MQTTClient on a loopback socket whose far end the test holds ----

def loopback_client(script, **kw):
    """(client, server socket, [the accepted peer]); `script`: bytes the peer has already sent
    when the client connects (replies queued before the client even asks)."""
    from mqtt import MQTTClient, default_socket_factory
    srv, port = loopback_server()
    peer = []

    def factory(host, p, timeout_ms):
        s = default_socket_factory(host, p, timeout_ms)
        conn = srv.accept()[0]
        if script:
            conn.send(script)
        peer.append(conn)
        return s

    c = MQTTClient("node1", "127.0.0.1", port, socket_factory=factory, **kw)
    return c, srv, peer


def close_loopback(c, srv, peer):
    c.close()
    for p in peer:
        p.close()
    srv.close()
