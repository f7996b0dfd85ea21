"""Modbus master: request/response exchanges over a byte transport, RTU or Modbus TCP framing,
with retries and per-caller health counters. The transport does the I/O; framing lives here."""
from compat import ticks_ms, ticks_diff, const
from modbus_rtu import (ModbusException, FrameError, build_request, request_pdu, rtu_response_length,
                        parse_rtu_response, parse_pdu)

# Indexes into a health list [ok, timeouts, bad frames (any), exceptions, of the bad frames: CRC errors].
# The health counters' slots (analyzer.health_json writes them in this order); const(): each
# module-level name is an interned name for good on the device, a const() one is folded away.
_OK = const(0)
_TIMEOUTS = const(1)
_BAD_FRAMES = const(2)
_EXCEPTIONS = const(3)
_CRC_ERRORS = const(4)


class ModbusTimeout(Exception):
    """No (complete) answer within the timeout."""

    def __str__(self):
        return "modbus timeout" + (": " + str(self.args[0]) if self.args else "")


class ModbusMaster:
    """Transport interface: send(bytes), recv_exact(n, timeout_ms)->bytes (raises ModbusTimeout
    or OSError), flush_input(), close(), optional `framing` ("rtu" default, or "mbap").
    Transports connect lazily on send(); a serial transport adds the wire time to the timeout."""

    def __init__(self, transport):
        self.transport = transport
        self.mbap = getattr(transport, "framing", "rtu") == "mbap"
        self.tid = 0
        if self.mbap:
            # Modbus TCP framing is loaded only when an analyzer uses it (heap: see README "Heap").
            import modbus_tcp
            self._tcp = modbus_tcp

    def read_registers(self, unit, fc, addr, count, timeout_ms, retries=0, health=None):
        """FC03 (holding) or FC04 (input) registers -> list of 16-bit ints."""
        if fc != 3 and fc != 4:
            raise ValueError("fc must be 3 or 4")
        return self.request(unit, fc, addr, count, timeout_ms, retries, health)

    def read_bits(self, unit, fc, addr, count, timeout_ms, retries=0, health=None):
        """FC01 (coils) or FC02 (discrete inputs) -> list of 0/1."""
        if fc != 1 and fc != 2:
            raise ValueError("fc must be 1 or 2")
        return self.request(unit, fc, addr, count, timeout_ms, retries, health)

    def request(self, unit, fc, addr, arg, timeout_ms, retries=0, health=None):
        """Any supported function code; writes go through here (FC05 arg: bool, FC06: value,
        FC16: list of values; each returns True once the slave echoed it): no wrapper methods, as
        no profile writes and every method of a loaded module costs heap on the device.
        One exchange, repeated up to `retries` times after a timeout or a bad frame (line noise);
        an exception response is a clear answer and is never repeated, except a gateway's 0x0A/0x0B
        (no answer from the analyzer behind it), which is a timeout. A broken link (OSError)
        closes the transport, so it reconnects on the next request, and is not repeated either."""
        attempt = 0
        while True:
            try:
                r = self._once(unit, fc, addr, arg, timeout_ms)
                if health is not None:
                    health[_OK] += 1
                return r
            except ModbusException as e:
                # 0x0A/0x0B: a serial server or TCP gateway saying the analyzer behind it did not
                # answer (path unavailable, target failed to respond): silence, not a device fault.
                if e.args[0] != 10 and e.args[0] != 11:
                    if health is not None:
                        health[_EXCEPTIONS] += 1
                    raise
                if health is not None:
                    health[_TIMEOUTS] += 1
                if attempt >= retries:
                    raise ModbusTimeout("gateway exception %d" % e.args[0])
            except FrameError as e:
                if health is not None:
                    health[_BAD_FRAMES] += 1
                    if e.args[0] == "bad CRC":  # modbus_rtu's CRC check: line noise, not a wrong device
                        health[_CRC_ERRORS] += 1
                e = None
                if attempt >= retries:
                    raise
            except ModbusTimeout:
                if health is not None:
                    health[_TIMEOUTS] += 1
                if attempt >= retries:
                    raise
            except OSError:
                if health is not None:
                    health[_TIMEOUTS] += 1
                try:
                    self.transport.close()
                except Exception:
                    pass
                raise
            attempt += 1

    def _once(self, unit, fc, addr, arg, timeout_ms):
        t = self.transport
        # A late answer to an earlier timed-out request would be taken as this one's answer.
        t.flush_input()
        if self.mbap:
            self.tid = (self.tid + 1) & 0xFFFF
            req = self._tcp.mbap_frame(self.tid, unit, request_pdu(fc, addr, arg))
        else:
            if not (type(unit) is int and 1 <= unit <= 247):
                raise ValueError("unit must be 1-247")
            req = build_request(unit, fc, addr, arg)
        t.send(req)
        start = ticks_ms()
        if self.mbap:
            header = t.recv_exact(7, timeout_ms)  # modbus_tcp.MBAP_LEN
            n = self._tcp.parse_mbap_header(header, self.tid, unit)
            body = t.recv_exact(n, self._left(start, timeout_ms))
            return parse_pdu(fc, addr, arg, body, 0, n)
        header = t.recv_exact(3, timeout_ms)
        total = rtu_response_length(header, fc, arg)
        rest = t.recv_exact(total - 3, self._left(start, timeout_ms))
        return parse_rtu_response(unit, fc, addr, arg, header + rest)

    def _left(self, start, timeout_ms):
        left = timeout_ms - ticks_diff(ticks_ms(), start)
        return left if left > 1 else 1
