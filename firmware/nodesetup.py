"""Startup-only code of the node: building Node, Analyzer and FlashQueue state from the config and
the flash. Imported for the call through compat.call_once and unloaded after, so its bytecode is
not in the heap while the node polls (the heap is the budget: see README "Heap")."""
import gc
import os
from compat import ticks_ms
from decode import register_count

_STATUS = -1  # member index marking the status register inside a read block (as analyzer.py)
_KINDS = {"code": 0, "bits": 1, "ascii_flag": 2}  # analyzer._CODE, _BITS, _ASCII


def _nregs(typ):
    return 1 if typ == "bit" else register_count(typ)


def plan_blocks(values, status, max_regs=125):
    """Group value/status registers into as few read requests as possible: same fc, contiguous
    (no gaps: unmapped registers would make the whole request fail), at most max_regs (2000 bits).
    Returns [[fc, start, count, [(member, offset), ...]], ...]; member is a value index or -1."""
    items = []
    for i, v in enumerate(values):
        items.append((v["fc"], v["addr"], _nregs(v["type"]), i))
    if status is not None:
        items.append((status["fc"], status["addr"], 1, _STATUS))
    items.sort(key=lambda t: (t[0], t[1], t[3]))
    blocks = []
    cur = None
    for fc, addr, n, member in items:
        top = 2000 if fc <= 2 else max_regs
        if (cur is not None and fc == cur[0] and addr <= cur[1] + cur[2]
                and max(cur[1] + cur[2], addr + n) - cur[1] <= top):
            cur[2] = max(cur[1] + cur[2], addr + n) - cur[1]
        else:
            cur = [fc, addr, n, []]
            blocks.append(cur)
        cur[3].append((member, addr - cur[1]))
    return blocks


def _scaling(scale):
    # Divide by 10/100/1000 rather than multiply by 0.1/0.01: 735 / 100 is 7.35, 735 * 0.01 is not.
    if scale != 1 and scale != 0:
        inv = 1 / scale
        r = int(inv + 0.5) if inv > 0 else int(inv - 0.5)
        if r != 0 and abs(inv - r) < 1e-9 * abs(inv):
            return 1, r
    return scale, 1


def init_analyzer(self, cfg, master):
    """Analyzer.__init__: config entry -> the tuples the poll loop uses."""
    self.name = cfg["name"]
    self.unit = cfg["unit"]
    self.timeout_ms = int(cfg["timeout_ms"])  # read_registers() wants an int
    self.retries = cfg.get("retries", 1)
    self.poll_ms = int(cfg.get("poll_s", 0) * 1000)
    self.master = master
    values = cfg["values"]
    # One flat tuple, not the config dicts nor a tuple per value: 9 entries per value,
    # (param, fc, type, order, mul, div, offset, low, high) at 9 * value index (-0.2 KB per analyzer).
    vals = []
    self.params = []
    self.f32 = []  # params whose reported value is the analyzer's float32 itself (shortest text)
    for v in values:
        mul, div = _scaling(v["scale"])
        r = v.get("range")
        vals.extend((v["param"], v["fc"], v["type"], v["order"], mul, div, v["offset"],
                     r[0] if r else None, r[1] if r else None))
        self.params.append(v["param"])
        if v["type"] == "float32" and v["scale"] == 1 and v["offset"] == 0:
            self.f32.append(v["param"])
    st = cfg.get("status")
    self.st_kind = None
    if st is not None:
        self.st_kind = _KINDS[st.get("kind", "code")]
        if self.st_kind == 1:
            self.st_table = st["bits"]
        else:
            self.st_table = st["map"]
        self.st_default = st.get("default", "D" if self.st_kind == 2 else "N")
    self.vals = tuple(vals)
    # (fc, start, count, (member, offset, member, offset, ...)): flat tuples, not lists of tuples.
    blocks = []
    for b in plan_blocks(values, st, cfg.get("max_regs", 125)):
        flat = []
        for m in b[3]:
            flat.extend(m)
        blocks.append((b[0], b[1], b[2], tuple(flat)))
    self.blocks = tuple(blocks)
    self.health = [0, 0, 0, 0]  # answers, timeouts, bad frames (CRC/unit/length), exceptions
    self.fails = 0  # polls in a row without any answer
    self.last_error = None
    now = ticks_ms()
    self.next_due = now
    self.resume = now  # while backing off: no request before this tick


def init_node(self, config, hw, mqtt_client=None, log=print):
    """Node.__init__."""
    from analyzer import Analyzer
    from modbus_master import ModbusMaster
    # Every attribute set once first: the instance dict grows to its final size now, while the heap
    # still has long free runs, not by copies at the end of the startup (where 64k failed).
    self.cycles = self.errors = self.sent = self.heap_peak = self.heap_live = self.sample_ts = 0
    self.queue = self.mqtt = self.mac = self.event_topic = self.batch_max = self.batch_bytes = None
    self.seq = self._boot = self.mqtt_backoff = self.net_backoff = self.ntp_backoff = None
    self._status_due = self._last_status = self._dropped_told = self._boot_event = self._rec_len = None
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
    # Allocated first, while the heap still has long free runs (see Node._publish_next).
    n = 0
    for acfg in config["analyzers"]:
        n += len(acfg["values"])
    self._out = bytearray(40 * n + 128)  # a record of floats and its sig fit
    self._out[:] = b""
    self.f32s = bytearray()  # per param, 1: its value is an analyzer's float32 itself (not a list of bools: -0.2 KB)
    masters = {}  # one transport and master per bus: analyzers on one RS-485 line or port share it
    acfgs = config["analyzers"]
    for i in range(len(acfgs)):
        acfg = acfgs[i]
        if config.get("_once"):  # set by start.py: nothing reuses this config, so each analyzer's
            acfgs[i] = None  # config is garbage once the analyzer is built (a lower startup peak)
        t = acfg["transport"]
        key = "%s|%s|%s|%s" % (t["kind"], t.get("host"), t.get("port"), t.get("uart"))
        if key not in masters:
            masters[key] = ModbusMaster(hw.make_transport(t))
        a = Analyzer(acfg, masters[key])
        self.analyzers.append(a)
        self.params.extend(a.params)
        for p in a.params:  # each param once per node (config.py)
            self.f32s.append(1 if p in a.f32 else 0)
        a.f32 = a.params = None  # only needed here (the poll loop reads the params from a.vals)
        acfg = a = None
        gc.collect()
    # The queue, MQTT and backoff modules are loaded only now: with start.py's order, the analyzers'
    # config is freed before their code objects join the heap (a lower startup peak).
    acfgs = masters = None
    gc.collect()
    from record import sign, OFFLINE
    from flashqueue import FlashQueue
    from backoff import Backoff
    from mqtt import MQTTClient
    from node import BACKOFF_MIN_MS, BACKOFF_CAP_MS
    self.event_topic = base + "event"
    self.mac = None
    if config.get("key"):
        from binascii import unhexlify
        from hmac_sha256 import HmacSha256
        self.mac = HmacSha256(unhexlify(config["key"]))
    q = config.get("queue") or {}
    self.queue = FlashQueue(hw.state_dir, int(q.get("max_kb", 1536)) * 1024, int(q.get("segment_kb", 32)) * 1024,
                            log=log)
    self.batch_max = int(q.get("batch_max", 50))
    self.batch_bytes = int(q.get("batch_bytes", 4096))
    self._rec_len = 60 * len(self.params)  # running estimate of one record's JSON size
    m = config["mqtt"]
    self.mqtt = mqtt_client or MQTTClient(
        m.get("client_id") or site + "-" + node, m["host"], m.get("port", 1883),
        m.get("user"), m.get("password"), m.get("keepalive", 60), m.get("clean_session", True),
        will=(self.status_topic, sign(OFFLINE, self.mac), 1, True), timeout_ms=int(m.get("timeout_ms", 5000)),
        socket_factory=getattr(hw, "mqtt_socket_factory", None))
    self.cycles = 0
    self.errors = 0
    self.sent = 0
    self.heap_peak = 0
    self.heap_live = 0
    self.sample_ts = 0
    if self.queue.last_seq == 0:
        _adopt_legacy_seq(self, hw.state_dir)
    self.seq = self.queue.last_seq  # seq of the newest stored record
    self._boot = ticks_ms()
    self.mqtt_backoff = Backoff(BACKOFF_MIN_MS, BACKOFF_CAP_MS)
    self.net_backoff = Backoff(4000, 60000)  # joining WiFi takes seconds: do not restart it sooner
    self.ntp_backoff = Backoff(5000, 600000)
    self._status_due = True
    self._last_status = self._boot
    self._dropped_told = 0  # queue.dropped already reported in an event
    self._boot_event = True


def _adopt_legacy_seq(self, state_dir):
    # Firmware 0.1 kept seq in <state_dir>/seq: continue from it so the gateway sees no reset.
    try:
        with open(state_dir + "/seq") as f:
            t = f.read().strip()
    except OSError:
        return
    if t.isdigit():
        self.queue.continue_from(int(t))


def recover_queue(self):
    """FlashQueue.__init__: find the segments, cut a torn tail, drop what is acknowledged."""
    from flashqueue import _SUFFIX, _size
    for name in sorted(os.listdir(self.dir)):
        if name.endswith(".tmp") and name != "ack.tmp":
            os.remove(self.dir + "/" + name)  # an interrupted tail repair; the original is intact
        elif name.endswith(_SUFFIX) and len(name) == 8 + len(_SUFFIX):
            self._segs.append([int(name[:8], 16), _size(self.dir + "/" + name)])
    self.last_seq = self._ack.value
    while self._segs:
        first = self._segs[-1][0]
        st, schema, good, size = _scan(self, first)
        if schema is None or st.seq == 0:
            os.remove(self._path(first))  # torn before its first record was complete
            self._segs.pop()
            continue
        if good < size:
            _truncate(self, first, good)
            self.repaired += size - good
        self._segs[-1][1] = good
        self._tail = st
        self._tail_schema = schema
        if st.seq > self.last_seq:
            self.last_seq = st.seq
        break
    # Segments wholly acknowledged before the cut may still be there.
    self._drop_acked()
    if self.log and self.repaired:
        self.log("queue: cut %d torn byte(s) from the newest segment" % self.repaired)


def _scan(self, first):
    """Read a whole segment: (state after the last good record, schema, good bytes, file bytes)."""
    from flashqueue import _SegReader
    from reccodec import State, decode
    path = self._path(first)
    st = State()
    schema = None
    r = _SegReader(path)
    try:
        try:
            b = r.frame()
            if b is not None:
                schema = bytes(b).decode().split(",")
                while True:
                    b = r.frame()
                    if b is None:
                        break
                    decode(st, b, len(schema))
                    if st.seq < first:
                        raise ValueError("seq below segment start")
        except (ValueError, IndexError):
            pass
        # decode() only updates st on success, so st is the last good record's state.
        return st, schema, r.good, r.size
    finally:
        r.close()


def _truncate(self, first, good):
    # MicroPython has no truncate(): copy the good prefix, then rename over (atomic on LittleFS).
    path = self._path(first)
    tmp = path + ".tmp"
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        left = good
        while left > 0:
            chunk = src.read(512 if left > 512 else left)
            if not chunk:
                break
            dst.write(chunk)
            left -= len(chunk)
    os.rename(tmp, path)
