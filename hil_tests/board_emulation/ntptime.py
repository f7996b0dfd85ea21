"""Board emulation for hil_tests: `ntptime` as in the stock ESP32 firmware. settime() logs the
host it would ask and leaves the clock alone (the PC's clock is already NTP-disciplined)."""
from machine import _log

host = "pool.ntp.org"


def settime():
    _log("ntp settime %s" % host)
