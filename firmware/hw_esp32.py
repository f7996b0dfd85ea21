"""ESP32 hardware layer: RS-485 UART with DE pin (transport_uart), WiFi station (network.WLAN),
state on the LittleFS flash filesystem, machine.WDT, and the RTC set from NTP (ntptime)."""
import os
import time
import machine
import network
from clock import Clock



def makedirs(path):
    cur = ""
    for part in path.split("/"):
        if part:
            cur = cur + "/" + part
            try:
                os.mkdir(cur)
            except OSError:
                pass  # exists
    return path


class Esp32HW:
    """What Node needs from the hardware (same shape as hw_unix.UnixHW), plus network_up(),
    connect_network() and feed_watchdog(), which the node's loop calls."""

    def __init__(self, cfg):
        # On LittleFS (rename is atomic, appends are committed on close): config state_dir, "state"
        # by default, counted from the filesystem root as the board's working directory is "/".
        root = cfg.get("state_dir") or "state"
        if root[0] != "/":
            root = "/" + root
        self.state_dir = makedirs("%s/%s/%s" % (root, cfg["site"], cfg["node"]))
        self.mqtt_socket_factory = None  # plain TCP (mqtt.default_socket_factory)
        wd = cfg.get("watchdog_s", 120)
        # Longer than the longest blocking step (MQTT/NTP timeouts, every analyzer timing out).
        self._wdt = machine.WDT(timeout=wd * 1000) if wd else None
        self._wifi = cfg.get("wifi")
        self.wlan = network.WLAN(network.STA_IF)
        self.wlan.active(True)
        ntp = cfg["ntp"]

        def sync():
            import ntptime  # in the stock ESP32 firmware; sets the RTC (UTC)
            ntptime.host = ntp["host"]
            ntptime.settime()

        ns = time.time_ns if hasattr(time, "time_ns") else (lambda: time.time() * 1000000000)
        self.clock = Clock(ns, time.gmtime(0)[0], sync_fn=sync, sync_every_s=ntp["sync_s"])

    def make_transport(self, tcfg):
        kind = tcfg["kind"]
        if kind == "rtu":
            from transport_uart import open_uart
            return open_uart(tcfg)
        from transport_tcp import TcpTransport
        return TcpTransport(tcfg["host"], tcfg["port"], "rtu" if kind == "rtu_tcp" else "mbap")

    def network_up(self):
        return self.wlan.isconnected()

    def connect_network(self):
        """Start joining (non-blocking); the node's backoff decides when to call again."""
        if self._wifi is None:
            raise OSError("no wifi in the config")
        if self.wlan.status() == network.STAT_CONNECTING:
            return
        self.wlan.connect(self._wifi["ssid"], self._wifi.get("password") or "")

    def feed_watchdog(self):
        if self._wdt is not None:
            self._wdt.feed()

    def rssi(self):
        try:
            return self.wlan.status("rssi")
        except Exception:
            return None

    def reset(self):
        machine.reset()
