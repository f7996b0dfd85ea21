"""Board emulation for hil_tests: the ESP32's `network` station interface, on the unix port.
The join succeeds EDGEMON_WIFI_JOIN_MS (default 300) after connect() when the ssid equals
EDGEMON_WIFI_SSID, never otherwise. Events go to EDGEMON_BOARD_LOG (see machine.py)."""
import os
import time
from machine import _log

STA_IF = 0
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010


class WLAN:
    def __init__(self, iface=STA_IF):
        self._on = False
        self._up_at = None
        self._connecting = False

    def active(self, on=None):
        if on is None:
            return self._on
        self._on = bool(on)
        _log("wlan active=%d" % self._on)

    def connect(self, ssid, password=""):
        _log("wlan connect %s" % ssid)
        self._connecting = True
        if ssid == os.getenv("EDGEMON_WIFI_SSID") and self._on:
            self._up_at = time.ticks_add(time.ticks_ms(), int(os.getenv("EDGEMON_WIFI_JOIN_MS") or 300))

    def isconnected(self):
        return self._up_at is not None and time.ticks_diff(time.ticks_ms(), self._up_at) >= 0

    def status(self, param=None):
        if param == "rssi":
            return -61
        if self.isconnected():
            return STAT_GOT_IP
        return STAT_CONNECTING if self._connecting else STAT_IDLE
