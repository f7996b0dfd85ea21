"""Modbus RTU master: one request/response exchange over a byte transport (serial or RTU-over-TCP).
The transport does the I/O; this module owns framing, timeouts and reconnect-after-error."""
from compat import ticks_ms, ticks_diff
from modbus_rtu import build_read_request, parse_read_response, response_length


class ModbusTimeout(Exception):
    """No (complete) answer within the timeout."""

    def __str__(self):
        return "modbus timeout" + (": " + str(self.args[0]) if self.args else "")


class ModbusMaster:
    """Transport interface: send(bytes), recv_exact(n, timeout_ms)->bytes (raises ModbusTimeout
    or OSError), flush_input(), close(). Transports connect lazily on the next send()."""

    def __init__(self, transport):
        self.transport = transport

    def read_registers(self, unit, fc, addr, count, timeout_ms):
        req = build_read_request(unit, fc, addr, count)
        t = self.transport
        try:
            # A late answer to an earlier timed-out request would be taken as this one's answer.
            t.flush_input()
            t.send(req)
            start = ticks_ms()
            header = t.recv_exact(3, timeout_ms)
            rest_len = response_length(header, count) - 3
            left = timeout_ms - ticks_diff(ticks_ms(), start)
            rest = t.recv_exact(rest_len, left if left > 1 else 1)
        except OSError:
            # Socket/serial broken: drop it so the transport reconnects on the next request.
            try:
                t.close()
            except Exception:
                pass
            raise
        return parse_read_response(unit, fc, count, header + rest)
