"""Sample time for records: Unix-epoch milliseconds whatever epoch the port counts from (the ESP32
counts from 2000-01-01), and `clk`, how far the gateway may trust it: "ntp", "rtc" or "none"."""
from compat import ticks_ms, ticks_diff

UNIX_2000_S = 946684800  # 2000-01-01T00:00:00Z in Unix seconds
# 2024-01-01: a clock before this was never set (fresh RTC after power-up). No const(): above a
# small int on 32-bit ports.
SANE_S = 1704067200


class Clock:
    """ns_fn(): nanoseconds since the port's epoch (time.time_ns). epoch_year: time.gmtime(0)[0].
    sync_fn(): sets the system time from NTP (ntptime.settime) or raises; None = the host keeps
    time itself (unix port: the PC is NTP-disciplined, so `host_clk` says what to report).
    max_age_s: an NTP sync older than this is reported as "rtc" (the RTC drifts)."""

    def __init__(self, ns_fn, epoch_year=1970, sync_fn=None, host_clk="ntp", sync_every_s=3600,
                 max_age_s=86400, now_ticks=ticks_ms):
        self._ns = ns_fn
        self._off_ms = UNIX_2000_S * 1000 if epoch_year == 2000 else 0
        self._sync_fn = sync_fn
        self._host_clk = host_clk
        self.sync_every_ms = sync_every_s * 1000
        self.max_age_ms = max_age_s * 1000
        self._ticks = now_ticks
        self._synced_at = None  # ticks of the last good NTP sync
        self.syncs = 0
        self.sync_errors = 0

    def now_ms(self):
        return self._ns() // 1000000 + self._off_ms

    @property
    def clk(self):
        if self._sync_fn is None:
            return self._host_clk
        if self._synced_at is not None and ticks_diff(self._ticks(), self._synced_at) < self.max_age_ms:
            return "ntp"
        # Unsynced: an RTC that kept time across a reset still reads a plausible date.
        return "rtc" if self.now_ms() >= SANE_S * 1000 else "none"

    def sync_due(self):
        if self._sync_fn is None:
            return False
        return self._synced_at is None or ticks_diff(self._ticks(), self._synced_at) >= self.sync_every_ms

    def sync(self):
        """One NTP attempt; raises on failure (the caller backs off and counts the error)."""
        try:
            self._sync_fn()
        except Exception:
            self.sync_errors += 1
            raise
        self._synced_at = self._ticks()
        self.syncs += 1
