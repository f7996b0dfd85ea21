"""Startup-only code of the node: building Node and Analyzer state from the config (and the flash
queue, first). Imported for the call through compat.call_once and unloaded after, so its bytecode
is not in the heap while the node polls (the heap is the budget: see README "Heap")."""
import gc
from compat import ticks_ms, ticks_add, call_once, const

_KINDS = {"code": 0, "bits": 1, "ascii_flag": 2}  # analyzer._CODE, _BITS, _ASCII
_BACKOFF_MIN_MS = const(1000)  # MQTT reconnects: 1 s, doubling up to 30 s
_BACKOFF_CAP_MS = const(30000)


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
    # No attribute beyond what the poll loop reads: past 17 the instance's attribute table grows to
    # its next size (~0.1 KB more per analyzer). One flat tuple, not the config dicts nor a tuple
    # per value (-0.2 KB per analyzer): analyzer._V_N entries a value, in the order of analyzer.py's
    # _V_* offsets: param, fc, type, order (or bit), mul, div, offset, low, high.
    vals = []
    for v in values:
        mul, div = _scaling(v["scale"])
        r = v.get("range")
        # A register bit field (type bit, fc 3/4) keeps its bit number where the order would be.
        vals.extend((v["param"], v["fc"], v["type"], v.get("bit", v["order"]), mul, div, v["offset"],
                     r[0] if r else None, r[1] if r else None))
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
    for fc, start, count, members in call_once("blockplan", "plan_blocks", values, st, cfg.get("max_regs", 125)):
        flat = []
        for m in members:
            flat.extend(m)
        blocks.append((fc, start, count, tuple(flat)))
    self.blocks = tuple(blocks)
    self.health = [0, 0, 0, 0, 0]  # answers, timeouts, bad frames (CRC/unit/length), exceptions, CRC errors
    self.fails = 0  # polls in a row without any answer
    now = ticks_ms()
    self.next_due = now
    self.resume = now  # while backing off: no request before this tick


def init_node(self, config, hw, mqtt_client, log, Analyzer):
    """Node.__init__ (which hands over the Analyzer class: this module imports nothing back from
    its callers)."""
    from modbus_master import ModbusMaster
    # Every attribute set once first: the instance dict grows to its final size now, while the heap
    # still has long free runs, not by copies at the end of the startup (where 64k failed).
    self.cycles = self.errors = self.sent = self.heap_peak = self.heap_live = self.sample_ts = 0
    self.queue = self.mqtt = self.mac = self.event_topic = self.batch_max = self.batch_bytes = None
    self.seq = self._boot = self.mqtt_backoff = self.net_backoff = self.ntp_backoff = None
    self._status_due = self._last_status = self._dropped_told = self._boot_event = self._rec_len = None
    self._rows = self._cn = self._cmd = self._sent = self._cf = None
    # [config path, ticks deadline of a config on trial (the config op's, start.trial) or None]
    # then [ticks deadline of an image on trial (slot file "1!0 300": fwupdate.py), its slot] or None, None
    t = config.get("_trial") or ("/node.json", 0)
    self._trial = [t[0], ticks_add(ticks_ms(), t[1] * 1000) if t[1] else None, None, None]
    try:
        t = open("slot").read()
    except OSError:
        t = ""
    if t[1:2] == "!":
        self._trial[2:] = [ticks_add(ticks_ms(), int(t[4:]) * 1000), t[0]]
    self.hw = hw
    self.log = log
    # The MQTT socket factory, until the client below takes it. With mqtt.tls (CA pinned) its module
    # is loaded now, by a long name (not interned on a node without TLS), and its context (3.6 KB on
    # this 64-bit port) is built first, while the heap is still in one piece.
    m = config["mqtt"]
    self.mqtt = getattr(hw, "mqtt_socket_factory", None)
    if m.get("tls") and not mqtt_client:
        self.mqtt = __import__("mqtt_tls_link").socket_factory(m["tls"], m["host"], log)
        gc.collect()
    site = config["site"]
    node = config["node"]
    base = "edge/v1/%s/%s/" % (site, node)
    self.data_topic = base + "data"
    self.status_topic = base + "status"
    self.poll_ms = int(config["poll_s"] * 1000)
    self.status_ms = int(config.get("status_s", 60) * 1000)
    self.analyzers = []
    n = 0
    for acfg in config["analyzers"]:
        n += len(acfg["values"])
    # Config order: the order readings appear in records and log lines.
    self.params = [None] * n
    # Per param, 1: its value is an analyzer's float32 itself, written with the shortest text that
    # maps back to it (a bytearray, not a list of bools: -0.2 KB).
    self.f32s = bytearray(n)
    n = 0
    for acfg in config["analyzers"]:
        for v in acfg["values"]:
            self.params[n] = v["param"]
            if v["type"] == "float32" and v["scale"] == 1 and v["offset"] == 0:
                self.f32s[n] = 1
            n += 1
    # Allocated first, while the heap still has long free runs (see Node._publish_next).
    self._out = bytearray(40 * n + 128)  # a record of floats and its sig fit
    self._out[:] = b""
    self._rows = [None] * (3 * n)  # each record read back from flash is decoded into this (flat)
    # The queue is read back from flash now, before the analyzers: with a backlog, recovery needs
    # room that the heap no longer has in one piece once the node is built (64k failed there).
    _recover_queue(self, config, hw, log)
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
        acfg = a = None
        gc.collect()
    # The MQTT and backoff modules are loaded only now: with start.py's order, the analyzers'
    # config is freed before their code objects join the heap (a lower startup peak).
    acfgs = masters = None
    gc.collect()
    from backoff import Backoff
    from mqtt import MQTTClient
    self.event_topic = base + "event"
    self.mac = None
    if config.get("key"):
        from binascii import unhexlify
        from hmac_sha256 import HmacSha256
        self.mac = HmacSha256(unhexlify(config["key"]))
    q = config.get("queue") or {}
    self.batch_max = int(q.get("batch_max", 50))
    self.batch_bytes = int(q.get("batch_bytes", 32768))
    self._rec_len = 60 * len(self.params)  # running estimate of one record's JSON size
    m = config["mqtt"]
    self.mqtt = mqtt_client or MQTTClient(
        m.get("client_id") or site + "-" + node, m["host"], m.get("port", 1883),
        m.get("user"), m.get("password"), m.get("keepalive", 60), m.get("clean_session", True),
        will=None, timeout_ms=int(m.get("timeout_ms", 5000)), socket_factory=self.mqtt)
    # Commands from the cmd topic wait here (payloads) until the loop runs them (cmdchan.py)
    self._cmd = []
    self.mqtt.on_message = self.on_message
    self.cycles = 0
    self.errors = 0
    self.sent = 0
    self.heap_peak = 0
    self.heap_live = 0
    self.sample_ts = 0
    self._boot = ticks_ms()
    self.mqtt_backoff = Backoff(_BACKOFF_MIN_MS, _BACKOFF_CAP_MS)
    self.net_backoff = Backoff(4000, 60000)  # joining WiFi takes seconds: do not restart it sooner
    self.ntp_backoff = Backoff(5000, 600000)
    self._status_due = True
    self._last_status = self._boot
    self._dropped_told = 0  # queue.dropped already reported in an event
    self._boot_event = True


def _recover_queue(self, config, hw, log):
    from flashqueue import FlashQueue
    q = config.get("queue") or {}
    self.queue = FlashQueue(hw.state_dir, int(q.get("max_kb", 1536)) * 1024, int(q.get("segment_kb", 32)) * 1024,
                            log=log, params=self.params)
    if self.queue.last_seq == 0:
        call_once("queuerecover", "adopt_legacy_seq", self.queue, hw.state_dir)
    self.seq = self.queue.last_seq  # seq of the newest stored record
    # Boots counted on flash: the connection id [boot, connection] only grows, across reboots too.
    from pointer import Pointer
    p = Pointer(self.queue.dir + "/boots")
    p.store(p.value + 1)
    self._cn = [p.value, 0]
    # End-to-end confirmation (confirm.py, Node.service_link): sent up to _sent on this connection;
    # a gateway that confirms was seen once (on flash), or PUBACK frees records (no key to check a
    # confirmation with, or queue.confirm_s = 0), or the node waits confirm_s for a first one.
    self._sent = self.queue.acked
    s = int(q.get("confirm_s", 600))
    p = Pointer(self.queue.dir + "/confirmed.ptr")  # (over 10 characters: not interned)
    self._cf = [None if p.value else True if s == 0 or not config.get("key") else
                -s * 1000, 0, 30000, None]  # (negative: armed at the first connect, node.py)
    p = None
    gc.collect()
