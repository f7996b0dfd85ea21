"""The node's job: poll analyzers every poll_s, build records with a persistent seq, publish them
over MQTT (QoS 1) with a bounded outbox, retained status, backoff, and a loop that never dies."""
from compat import ticks_ms, ticks_diff, ticks_add, sleep_ms, collect, mem_alloc, mem_free, rand_below
from modbus_rtu import ModbusException, FrameError
from modbus_master import ModbusMaster, ModbusTimeout
from decode import decode, register_count
from record import build_record, build_status, format_number, OFFLINE
from seqstore import SeqStore
from outbox import Outbox
from mqtt import MQTTClient

BACKOFF_MIN_MS = 1000
BACKOFF_CAP_MS = 30000
_STATUS = -1  # member index marking the status register inside a read block


def plan_blocks(values, status, max_regs=125):
    """Group value/status registers into as few read requests as possible: same fc, contiguous
    (no gaps: unmapped registers would make the whole request fail), at most max_regs.
    Returns [[fc, start, count, [(member, offset), ...]], ...]; member is a value index or -1."""
    items = []
    for i, v in enumerate(values):
        items.append((v["fc"], v["addr"], register_count(v["type"]), i))
    if status is not None:
        items.append((status["fc"], status["addr"], 1, _STATUS))
    items.sort(key=lambda t: (t[0], t[1], t[3]))
    blocks = []
    cur = None
    for fc, addr, n, member in items:
        if (cur is not None and fc == cur[0] and addr <= cur[1] + cur[2]
                and max(cur[1] + cur[2], addr + n) - cur[1] <= max_regs):
            cur[2] = max(cur[1] + cur[2], addr + n) - cur[1]
        else:
            cur = [fc, addr, n, []]
            blocks.append(cur)
        cur[3].append((member, addr - cur[1]))
    return blocks


class Analyzer:
    def __init__(self, cfg, transport):
        self.name = cfg["name"]
        self.unit = cfg["unit"]
        self.timeout_ms = int(cfg["timeout_ms"])  # poll() wants an int
        self.values = cfg["values"]
        self.master = ModbusMaster(transport)
        st = cfg.get("status")
        self.flag_map = {}
        if st is not None:
            for k in st["flags"]:
                self.flag_map[int(k)] = st["flags"][k]
        self.blocks = plan_blocks(self.values, st)
        self.last_error = None

    def sample(self, out):
        """Fill out[param] = (value, flag) for every value of this analyzer."""
        vals = self.values
        got = [None] * len(vals)  # decoded value per value index, or None if its block failed
        status = None
        status_failed = False
        for fc, start, count, members in self.blocks:
            try:
                regs = self.master.read_registers(self.unit, fc, start, count, self.timeout_ms)
            except (ModbusTimeout, OSError) as e:
                # Silent analyzer (or link down): nothing else will answer either, stop here.
                self.last_error = e
                for v in vals:
                    out[v["param"]] = (None, "B")
                return
            except (ModbusException, FrameError) as e:
                # It answered, but not with data: a device-side fault for those registers.
                self.last_error = e
                for member, off in members:
                    if member == _STATUS:
                        status_failed = True
                continue
            for member, off in members:
                if member == _STATUS:
                    status = regs[off]
                else:
                    v = vals[member]
                    got[member] = (decode(regs, v["type"], v["order"], off),)
        for i, v in enumerate(vals):
            g = got[i]
            if g is None or status_failed:
                # Without the status word we cannot claim the value is normal: D (fault).
                out[v["param"]] = (None, "D")
                continue
            x = g[0]
            if v["scale"] != 1 or v["offset"] != 0:
                x = x * v["scale"] + v["offset"]
            out[v["param"]] = (x, self.flag_map.get(status, "N") if status is not None else "N")


class Node:
    def __init__(self, config, hw, mqtt_client=None, log=print):
        self.cfg = config
        self.hw = hw
        self.log = log
        site = config["site"]
        node = config["node"]
        base = "edge/v1/%s/%s/" % (site, node)
        self.data_topic = base + "data"
        self.status_topic = base + "status"
        self.poll_ms = int(config["poll_s"] * 1000)
        self.status_ms = int(config.get("status_s", 60) * 1000)
        self.analyzers = []
        self.params = []  # config order: the order readings appear in records and log lines
        self.f32 = {}
        for acfg in config["analyzers"]:
            self.analyzers.append(Analyzer(acfg, hw.make_transport(acfg["transport"])))
            for v in acfg["values"]:
                self.params.append(v["param"])
                if v["type"] == "float32":
                    self.f32[v["param"]] = True
        self.seq = SeqStore(hw.state_dir)
        self.outbox = Outbox(config.get("outbox_max", 100))
        m = config["mqtt"]
        self.mqtt = mqtt_client or MQTTClient(
            m.get("client_id") or site + "-" + node, m["host"], m.get("port", 1883),
            m.get("user"), m.get("password"), m.get("keepalive", 60), m.get("clean_session", True),
            will=(self.status_topic, OFFLINE, 1, True), timeout_ms=int(m.get("timeout_ms", 5000)),
            socket_factory=getattr(hw, "mqtt_socket_factory", None))
        self.cycles = 0
        self.errors = 0
        self.sent = 0
        self.heap_peak = 0
        self.sample_ts = 0
        self._boot = ticks_ms()
        self._backoff = 0
        self._next_retry = self._boot
        self._status_due = True
        self._last_status = self._boot

    # ---- sampling ----

    def sample(self):
        """Poll every analyzer once; returns {param: (value or None, flag)}. Sets sample_ts."""
        self.sample_ts = self.hw.clock.now_ms()  # sample start, not send time
        readings = {}
        for a in self.analyzers:
            try:
                a.sample(readings)
            except Exception as e:  # a decoding bug must not cost the other analyzers' data
                self._error("sample " + a.name, e)
                for v in a.values:
                    readings[v["param"]] = (None, "D")
        return readings

    # ---- one cycle ----

    def _mark(self):
        a = mem_alloc()
        if a > self.heap_peak:
            self.heap_peak = a

    def cycle(self):
        collect()  # start each cycle from a clean heap so the peak we see is this cycle's own
        self._mark()
        readings = self.sample()
        self._mark()
        ordered = [(p, readings[p][0], readings[p][1]) for p in self.params]
        seq = self.seq.next()
        rec = build_record(self.sample_ts, seq, self.hw.clock.clk, ordered, self.f32)
        self.outbox.push(rec)
        self._mark()
        self.service_link()
        self._mark()
        line = ["cycle seq=%d" % seq]
        for p, v, f in ordered:
            line.append("%s=%s/%s" % (p, format_number(v, p in self.f32), f))
        line.append("heap_peak=%d queue=%d dropped=%d mqtt=%s"
                    % (self.heap_peak, len(self.outbox), self.outbox.dropped,
                       "up" if self.mqtt.connected else "down"))
        self.log(" ".join(line))
        return readings

    # ---- MQTT link ----

    def status_payload(self):
        return build_status(ticks_diff(ticks_ms(), self._boot) // 1000, mem_free(), self.heap_peak,
                            len(self.outbox), self.hw.clock.clk, self.hw.rssi(), self.outbox.dropped,
                            self.errors)

    def service_link(self):
        """Connect when due (backoff), keep the link alive, publish status when due, flush outbox."""
        now = ticks_ms()
        m = self.mqtt
        if not m.connected:
            if ticks_diff(now, self._next_retry) < 0:
                return
            try:
                m.connect()
            except Exception as e:
                self._link_failed("connect", e)
                return
            self._backoff = 0
            self._status_due = True  # fresh session: announce online (retained) at once
        try:
            m.maintain()
            while len(self.outbox):
                m.publish(self.data_topic, self.outbox.peek(), 1, False)
                self.outbox.pop()  # only after PUBACK: at-least-once
                self.sent += 1
            if self._status_due or ticks_diff(now, self._last_status) >= self.status_ms:
                m.publish(self.status_topic, self.status_payload(), 1, True)
                self._status_due = False
                self._last_status = now
        except Exception as e:
            self._link_failed("publish", e)

    def _link_failed(self, where, e):
        self.mqtt.close()
        b = self._backoff * 2 if self._backoff else BACKOFF_MIN_MS
        if b > BACKOFF_CAP_MS:
            b = BACKOFF_CAP_MS
        self._backoff = b
        # Jitter (50-100% of b) so a fleet does not reconnect in lockstep after a broker restart.
        delay = b // 2 + rand_below(b // 2 + 1)
        self._next_retry = ticks_add(ticks_ms(), delay)
        self._error("mqtt %s (retry in %d ms)" % (where, delay), e)

    def _error(self, where, e):
        self.errors += 1
        try:
            self.log("error %s: %s: %s" % (where, type(e).__name__, e))
        except Exception:
            pass

    # ---- main loop ----

    def idle_until(self, due):
        while True:
            left = ticks_diff(due, ticks_ms())
            if left <= 0:
                return
            try:
                self.service_link()
            except Exception as e:
                self._error("link", e)
            sleep_ms(left if left < 100 else 100)

    def run(self, max_cycles=None):
        """Sample every poll_s until max_cycles (None = forever). Nothing raised in a cycle ends it."""
        due = ticks_ms()
        while max_cycles is None or self.cycles < max_cycles:
            try:
                self.cycle()
            except Exception as e:
                self._error("cycle", e)
            self.cycles += 1
            if max_cycles is not None and self.cycles >= max_cycles:
                break
            due = ticks_add(due, self.poll_ms)
            if ticks_diff(due, ticks_ms()) < 0:
                due = ticks_ms()  # fell behind (slow analyzer): skip, do not burst
            self.idle_until(due)
        self.shutdown()

    def shutdown(self):
        """Clean stop: say offline (retained) ourselves, since DISCONNECT suppresses the will."""
        if self.mqtt.connected:
            try:
                self.mqtt.publish(self.status_topic, OFFLINE, 1, True)
            except Exception as e:
                self._error("shutdown", e)
            self.mqtt.disconnect()
