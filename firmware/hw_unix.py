"""Hardware layer for the MicroPython unix port and CPython on a PC: Modbus RTU over TCP
(as serial device servers do) and Modbus TCP, the host clock (NTP-disciplined) and the state directory."""
import os
from compat import now_ms
from transport_tcp import TcpTransport


class Clock:
    """The PC clock is NTP-disciplined, so records say clk="ntp"."""
    clk = "ntp"

    def now_ms(self):
        return now_ms()


def makedirs(path):
    """mkdir -p (MicroPython has no os.makedirs)."""
    cur = "/" if path.startswith("/") else ""
    for part in path.split("/"):
        if not part:
            continue
        cur = cur + part if (cur == "" or cur.endswith("/")) else cur + "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            pass  # exists already (errno differs between ports); a real failure shows on first write
    return path


class UnixHW:
    """What Node needs from the hardware: clock, state_dir, make_transport(), rssi()."""

    def __init__(self, state_dir):
        self.clock = Clock()
        self.state_dir = makedirs(state_dir)
        self.mqtt_socket_factory = None  # mqtt.default_socket_factory (plain TCP)

    def make_transport(self, tcfg):
        kind = tcfg["kind"]
        if kind == "rtu_tcp":
            return TcpTransport(tcfg["host"], tcfg["port"], "rtu")
        if kind == "tcp":
            return TcpTransport(tcfg["host"], tcfg["port"], "mbap")
        # A PC has no RS-485 UART with a driver-enable pin; the ESP32 layer builds transport_uart.
        raise ValueError("transport kind %s needs a board UART; on a PC use rtu_tcp or tcp" % kind)

    def rssi(self):
        return None  # wired host: no radio

    def reset(self):
        # A PC has no board to reset: the process ends with 75 and its runner starts it again
        # (edgemon.dev.nodeproc), which then replays from the state directory like a board.
        raise SystemExit(75)
