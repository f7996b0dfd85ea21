"""The node's job: poll analyzers every poll_s, store each record on flash first, publish it over
MQTT (QoS 1; a backlog replays in signed batches), retained status, backoff, a loop that never dies.
A record leaves flash once the gateway confirms it has it (confirm.py), not at the broker's PUBACK.
Over 400 lines on purpose: this class is the poll loop's live heap, and each module or method of
its own costs heap and interned names on a 64k board (a node runs 2-6k under its limit); the rare
paths already live in modules loaded for the call (nodesetup, cmdchan, confirm, fwupdate, ...)."""
from compat import ticks_ms, ticks_diff, ticks_add, sleep_ms, collect, mem_alloc, mem_free
from compat import call_once
from record import put_record_rows, build_event, build_status, format_number
from record import append_member, signed_parts, sig_tail


class Node:
    def __init__(self, config, hw, mqtt_client=None, log=print):
        # Built by nodesetup.py (startup only, unloaded after): analyzers, queue, MQTT client, backoffs.
        # The Analyzer class is handed to it from here, so nodesetup.py imports nothing back from
        # the modules that call it (no import cycle).
        from analyzer import Analyzer
        call_once("nodesetup", "init_node", self, config, hw, mqtt_client, log, Analyzer)

    # ---- sampling ----

    def sample(self):
        """Poll every analyzer that is due (each has its own poll_s); returns {param: (value or None,
        flag)} for their values only. Sets sample_ts."""
        self.sample_ts = self.hw.clock.now_ms()  # sample start, not send time
        # An empty dict with room for every param, allocated once now (right after the cycle's
        # collection) rather than grown copy by copy to a 368-byte table in a fragmented heap.
        readings = dict.fromkeys(self.params)
        for p in self.params:
            del readings[p]
        for a in self.analyzers:
            now = ticks_ms()
            # One on the node's own period (the default) is polled every cycle; a slower one when due,
            # with half a node period of slack so timing jitter does not cost it a whole cycle.
            if a.poll_ms > self.poll_ms and not a.due(now, self.poll_ms // 2):
                continue
            a.schedule(now)
            try:
                a.sample(readings, now)
            except Exception as e:  # a decoding bug must not cost the other analyzers' data
                self._error("sample " + a.name, e)
                a._all(readings, "D")
            self._feed()  # the watchdog waits for one analyzer at most (config.py checks that bound)
        return readings

    def analyzer_health(self):
        """Status member "an": {"<analyzer>": [answers, timeouts, bad frames, exceptions, CRC errors], ...}."""
        return "{" + ",".join([a.health_json() for a in self.analyzers]) + "}"

    # ---- one cycle ----

    def _mark(self):
        a = mem_alloc()
        if a > self.heap_peak:
            self.heap_peak = a

    def cycle(self):
        collect()  # start each cycle from a clean heap so the peak we see is this cycle's own
        self.heap_live = mem_alloc()  # what survives a collection: the node's real footprint
        self._mark()
        readings = self.sample()
        self._mark()
        vals = flags = None
        if readings:  # nothing due this cycle (every analyzer polls slower than the node): no record
            vals, flags = self.store(readings)
            self._mark()
        # The dict and its (value, flag) tuples go now, not after the publish: the heap's worst moment
        # is building the record back from flash, and 1.3 KB less is held then. The log line reads
        # the two flat lists the record was stored from.
        readings = None
        self.service_link(0)
        self._mark()
        # The default log (print) gets the line piece by piece: the same text, but no ~350-byte
        # string (nor list) that a fragmented heap may not have room for.
        pr = self.log is print
        line = None if pr else []
        s = "cycle seq=%d" % self.seq
        f32s = self.f32s
        for i in range(len(f32s) if flags else 0):
            f = flags[i]
            if f is None:
                continue  # its analyzer was not due this cycle
            if pr:
                print(s, end=" ")
            else:
                line.append(s)
            s = "%s=%s/%s" % (self.params[i], format_number(vals[i], f32s[i]), f)
        t = ("heap_peak=%d heap_live=%d queue=%d dropped=%d mqtt=%s"
             % (self.heap_peak, self.heap_live, len(self.queue), self.queue.dropped,
                "up" if self.mqtt.connected else "down"))
        if pr:
            print(s, end=" ")
            print(t)
        else:
            line.append(s)
            line.append(t)
            self.log(" ".join(line))

    def store(self, readings):
        """Append the record to the flash queue (before any publish); sets seq. Only the params in
        readings (the analyzers that were due) go into the record. Returns (values, flags), lists
        in param order (flag None: not sampled this time)."""
        n = len(self.params)
        vals = [None] * n  # one allocation each, not lists grown append by append
        flags = [None] * n  # None: not sampled, stored as absent, left out of the record
        for i in range(n):
            r = readings.get(self.params[i])
            if r is not None:
                vals[i], flags[i] = r  # (value, flag)
        before = self.queue.dropped
        self.seq = self.queue.append(self.sample_ts, self.hw.clock.clk, self.params, vals, flags, self.f32s)
        if self.queue.dropped != before:
            self.log("queue full: %d oldest record(s) dropped (total %d)" % (self.queue.dropped - before,
                                                                            self.queue.dropped))
        return vals, flags

    # ---- uplink: network, clock, MQTT, queue drain ----

    def status_payload(self):
        st = build_status(ticks_diff(ticks_ms(), self._boot) // 1000, mem_free(), self.heap_peak,
                          len(self.queue), self.hw.clock.clk, self.hw.rssi(), self.queue.dropped,
                          self.errors, cn=self._cn)
        return append_member(st, "an", self.analyzer_health())  # per-analyzer Modbus health

    def _feed(self):
        f = getattr(self.hw, "feed_watchdog", None)
        if f is not None:
            f()

    def _network(self):
        """True when the network is up; otherwise (re)starts joining it, paced by backoff."""
        hw = self.hw
        up = getattr(hw, "network_up", None)
        if up is None or up():
            if self.net_backoff.failures:
                self.net_backoff.succeeded()
            return True
        if self.net_backoff.ready():
            self.net_backoff.failed()  # the next attempt waits unless the network comes up first
            try:
                hw.connect_network()
            except Exception as e:
                self._error("network", e)
        return False

    def _sync_clock(self):
        c = self.hw.clock
        due = getattr(c, "sync_due", None)
        if due is None or not due() or not self.ntp_backoff.ready():
            return
        try:
            c.sync()
            self.ntp_backoff.succeeded()
        except Exception as e:
            self.ntp_backoff.failed()
            self._error("ntp", e)

    def service_link(self, budget_ms=0):
        """Network, clock, MQTT connect (backoff), status and events when due, then publish queued
        records oldest first for up to budget_ms (at least one publish per call)."""
        t = self._trial[2]  # an image on trial (fwupdate.py) not confirmed in time: the previous one
        if t is not None and ticks_diff(ticks_ms(), t) > 0:
            self.hw.reset()  # (slotboot.py mounts it)
        if not self._network():
            return
        self._sync_clock()
        m = self.mqtt
        if not m.connected:
            if not self.mqtt_backoff.ready():
                return
            # A new connection id: this connection's will (signed now, known only to the broker
            # until it fires) and its online status carry it, so the gateway believes the will for
            # this connection only (an old will replayed later names an older connection).
            self._cn[1] += 1
            r = __import__("record")  # not imported by name: each name in this module's globals costs heap
            m.will = (self.status_topic, r.sign(r.offline(self._cn), self.mac), 1, True)
            r = None
            try:
                m.connect()
            except Exception as e:
                m.will = None
                self._link_failed("connect", e)
                e = self._trial[1]  # a new config on trial that has not reached the broker in time
                if e is not None and ticks_diff(ticks_ms(), e) > 0:
                    self.hw.reset()  # start.trial brings the previous config back
                return
            m.will = None  # the broker holds it now (a new one is built for the next connection)
            if self._trial[1] is not None:  # a new config on trial (cfgswap.py) reached the broker: it stays
                __import__("os").remove(self._trial[0] + ".config-trial")
                self._trial[1] = None
                self.log("config: the new config is confirmed (connected with it)")
            self.mqtt_backoff.succeeded()
            if type(self._cf[0]) is int and self._cf[0] < 0:  # the wait for a first confirmation
                self._cf[0] = ticks_add(ticks_ms(), -self._cf[0])  # counts from the first connect
            self._feed()
            self._sent = self.queue.acked  # every unconfirmed record goes again on a new connection
            try:  # the command channel and the confirmations, this connection's (clean session)
                call_once("mqttsub", "subscribe", m, (self.status_topic[:-6] + "cmd", self.status_topic[:-6] + "confirm"), 1)
            except Exception as e:  # refused by the ACL: the link stays up, data still flows
                if isinstance(e, MemoryError):
                    m.close()  # no command channel on this link: try again with the next one
                if not m.connected:
                    self._link_failed("cmd", e)
                    return
                self._error("cmd", e)
            self._status_due = True  # fresh session: announce online (retained) at once
            self._feed()  # at most one MQTT exchange between two feeds (config.py checks its timeout)
        try:
            m.maintain()
            now = ticks_ms()
            if self._status_due or ticks_diff(now, self._last_status) >= self.status_ms:
                try:
                    st = self.status_payload()
                except Exception as e:  # as an event: a status that cannot be built holds back no record
                    st = None
                    self._error("status", e)
                self._status_due = False
                self._last_status = now
                if st is not None:
                    self._publish_signed(self.status_topic, st, True)
                    st = None
                    self._feed()
                else:  # tried again in 5 s, not at the next period: the retained status says offline
                    self._last_status = ticks_add(now, 5000 - self.status_ms)
            self._events()
            # The gateway's confirmations (confirm.py) and the wait for them: self._cf is [None when
            # a gateway confirms (seen once: on flash), True when PUBACK frees records (no key, or
            # queue.confirm_s passed with no confirmation: an older gateway), else the ticks that
            # wait ends at; the ticks unconfirmed records are sent again at; that timeout in ms;
            # the newest confirmation not taken yet]. (Inline: each method name costs heap.)
            cf = self._cf
            if cf[3] is not None:
                p = cf[3]
                cf[3] = None
                call_once("confirm", "run", self, p)
                p = None
            q = self.queue
            if cf[0] is not None and cf[0] is not True and cf[0] >= 0 and ticks_diff(now, cf[0]) >= 0:
                cf[0] = True
                q.ack(self._sent)
                self.log("confirm: none came in queue.confirm_s; the broker's PUBACK frees records (older gateway)")
            if cf[0] is True or self._sent <= q.acked:
                cf[1] = ticks_add(now, cf[2])  # nothing waits for a confirmation
            elif ticks_diff(now, cf[1]) >= 0:  # none for a while: the gateway may never have got them
                self.log("confirm: none in %d s; records from seq %d go again" % (cf[2] // 1000, q.acked + 1))
                self._sent = q.acked
                cf[2] = cf[2] * 2 if cf[2] < 450000 else 900000  # 30 s, 60 s, ... 15 min
                cf[1] = ticks_add(now, cf[2])
            while self._cmd:  # commands, oldest first; their code is loaded for them only
                call_once("cmdchan", "run", self, self._cmd.pop(0))  # popped first: one that fails never blocks the data
                self._feed()
            start = ticks_ms()
            while self.queue.last_seq > self._sent:
                self._publish_next()
                self._feed()
                if ticks_diff(ticks_ms(), start) >= budget_ms:
                    break
        except Exception as e:
            if isinstance(e, MemoryError) and self.batch_bytes > 256:
                self.batch_bytes //= 2  # a fragmented heap: replay in smaller batches from now on
            self._link_failed("publish", e)

    def _events(self):
        q = self.queue
        if self._boot_event and self._event("boot", '{"fw":"%s","seq":%d,"queue":%d,"repaired_bytes":%d}',
                                            (__import__("record").FW_VERSION, q.last_seq, len(q), q.repaired)):
            self._boot_event = False
        if q.dropped > self._dropped_told:
            # Never silent: how many records the bounded queue lost since the last event (also those
            # lost before a reboot that came before the event: the queue keeps that count on flash).
            told = q.dropped
            # "lost": every loss since the queue began (flash; only grows), so the gateway counts
            # each record once even if an event whose PUBACK was lost is followed by a larger one.
            # (Read here, not through a FlashQueue method: one more class member costs live heap.)
            lost = __import__("pointer").Pointer(q.dir + "/lost").value
            if self._event("queue_overflow", '{"dropped":%d,"total":%d,"lost":%d}',
                           (told - self._dropped_told, told, lost)):
                self._dropped_told = told
                q.lost_told()

    def _event(self, kind, fmt, args):
        """Publish one event; False if it could not be built (it is tried again next time)."""
        try:
            p = build_event(self.hw.clock.now_ms(), kind, fmt % args)
        except Exception as e:  # e.g. a MemoryError: it must not hold back the records behind it
            self._error("event " + kind, e)
            return False
        self._publish_signed(self.event_topic, p, False)
        self._feed()
        return True

    def _publish_signed(self, topic, payload, retain):
        """QoS 1 publish of the payload signed (record.signed_parts: in pieces, without the copies
        sign() makes; a status is ~300 bytes: too long for a fragmented heap)."""
        self.mqtt.publish(topic, signed_parts(payload, self.mac), 1, retain)

    def _publish_next(self):
        """One publish from the head of the queue: a single record, or a batch when there is a
        backlog, from the first not sent on this connection; the queue forgets them once the
        gateway confirms them (or at the PUBACK, without confirmations)."""
        q = self.queue
        n = self.batch_bytes // self._rec_len
        n = 1 if n < 1 else (self.batch_max if n > self.batch_max else n)
        # Records are read and built one at a time, in one reused buffer (self._out, allocated at
        # startup): a batch is measured first, then rebuilt piece by piece as it is sent (_batch),
        # so neither a single record nor a batch needs any large block of the heap.
        out = self._out
        first = self._sent if self._sent > q.acked else q.acked
        last = first
        count = size = 0
        while count < n:
            items = q.peek(1, last, self._rows)
            if not items:
                break
            seq, ts, clk, schema, rows = items[0]
            items = None  # its rows become garbage once it is built
            out[:] = b""
            put_record_rows(out, ts, seq, clk, schema, rows)
            rows = None
            size += len(out)
            count += 1
            last = seq
        if not count:
            # Pending but unreadable (flash damage in the open segment): sealed, so what follows
            # starts a new segment that replay reaches. Without confirmations they are counted and
            # acked now; with them nothing unconfirmed is freed here (peek counts the damaged ones
            # once it skips them, and confirm.run moves the floor past them).
            q._seg_len[-1] = q.seg_bytes
            if self._cf[0] is True:
                q.lose(q.last_seq - first)
                q.ack(q.last_seq)
            self._sent = q.last_seq
            return
        self._rec_len = size // count + 1
        if count == 1:
            self._publish_signed(self.data_topic, out, False)
        else:
            size += 10 + count - 1 + (75 if self.mac is not None else 2)  # {"batch":[ , ]} / ] + sig_tail: ,"sig":"<64>"}
            self.mqtt.publish(self.data_topic, self._batch(first, last), 1, False, length=size)
        self._sent = last  # after the PUBACK: at-least-once, and a resend is byte-identical
        if self._cf[0] is True:
            q.ack(last)
        self.sent += count
        if self._trial[2] is not None:  # an image on trial: its health check (fwupdate.updated)
            call_once("fwupdate", "updated", self)

    def _batch(self, after, last):
        """The pieces of the signed batch of the stored records after..last, each record rebuilt
        from flash into self._out just before it is sent (the MAC is taken as they go)."""
        q = self.queue
        h = self.mac.begin() if self.mac is not None else None
        out = self._out
        piece = b'{"batch":['
        first = after
        while True:
            if h is not None:
                h.update(piece)
            yield piece
            if after == last:
                break
            items = q.peek(1, after, self._rows)
            if not items or items[0][0] > last:
                raise ValueError("stored records changed while a batch was sent")
            seq, ts, clk, schema, rows = items[0]
            items = None
            out[:] = b"" if after == first else b","
            put_record_rows(out, ts, seq, clk, schema, rows)
            rows = None
            after = seq
            piece = out
        if h is None:
            yield b"]}"
        else:
            h.update(b"]}")
            yield b"]" + sig_tail(self.mac.end(h))

    def on_message(self, topic, payload):
        # A command (the node subscribes to its cmd topic only), from inside the MQTT client's
        # reads (during a publish, say): only queued here, run by the loop (cmdchan.run). A big one
        # (a config) waits on flash: held in the heap, it could leave cmdchan's code no block.
        try:
            if topic[-1] == "m":  # .../confirm: only the newest one matters (service_link)
                self._cf[3] = payload
                return
            if len(payload) > 200:
                topic = self.queue.dir + "/cmd-held"
                if topic in self._cmd:
                    raise OverflowError("a big command is already waiting, this one dropped")
                f = open(topic, "wb")
                f.write(payload)
                f.close()
                payload = topic
            if len(self._cmd) >= 4:  # the sender gets no ack and may send it again
                raise OverflowError("4 commands waiting, one dropped")
            self._cmd.append(payload)
        except Exception as e:  # never into the MQTT client's read
            self._error("cmd", e)

    def _link_failed(self, where, e):
        self.mqtt.close()
        delay = self.mqtt_backoff.failed()
        self._error("mqtt %s (retry in %d ms)" % (where, delay), e)

    def _error(self, where, e):
        self.errors += 1
        try:
            self.log("error %s: %s: %s" % (where, type(e).__name__, e))
        except Exception:
            pass

    # ---- main loop ----

    def idle_until(self, due):
        """Until the next poll: keep the link alive and drain any backlog; sleep only when idle."""
        while True:
            self._feed()
            left = ticks_diff(due, ticks_ms())
            if left <= 0:
                return
            try:
                self.service_link(left)
            except Exception as e:
                self._error("link", e)
            left = ticks_diff(due, ticks_ms())
            if left > 0 and (self.queue.last_seq <= self._sent or not self.mqtt.connected):
                sleep_ms(left if left < 100 else 100)

    def run(self, max_cycles=None):
        """Sample every poll_s until max_cycles (None = forever). Nothing raised in a cycle ends it."""
        due = ticks_ms()
        while max_cycles is None or self.cycles < max_cycles:
            self._feed()
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
            try:
                self.idle_until(due)
            except Exception as e:  # e.g. a MemoryError in a log line: counted, the loop goes on
                self._error("idle", e)
        self.shutdown()

    def shutdown(self):
        """Clean stop: say offline (retained) ourselves, since DISCONNECT suppresses the will."""
        if self.mqtt.connected:
            try:
                self._publish_signed(self.status_topic, __import__("record").offline(self._cn), True)
            except Exception as e:
                self._error("shutdown", e)
            self.mqtt.disconnect()
