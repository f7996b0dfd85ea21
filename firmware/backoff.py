"""Reconnect pacing for WiFi and MQTT: exponential backoff with jitter, so a fleet does not
hammer a broker (or an access point) in lockstep after it comes back."""
from compat import ticks_ms, ticks_diff, ticks_add, rand_below


class Backoff:
    def __init__(self, min_ms=1000, cap_ms=30000, rand=rand_below, now=ticks_ms):
        self.min_ms = min_ms
        self.cap_ms = cap_ms
        self._rand = rand
        self._now = now
        self.step_ms = 0  # current un-jittered step; 0 = no failure since the last success
        self.failures = 0  # consecutive, since the last success
        self._due = now()

    def ready(self):
        return ticks_diff(self._now(), self._due) >= 0

    def failed(self):
        """Record a failure; returns the delay (ms) before the next attempt is ready()."""
        b = self.step_ms * 2 if self.step_ms else self.min_ms
        if b > self.cap_ms:
            b = self.cap_ms
        self.step_ms = b
        self.failures += 1
        delay = b // 2 + self._rand(b // 2 + 1)  # 50-100 % of the step
        self._due = ticks_add(self._now(), delay)
        return delay

    def succeeded(self):
        self.step_ms = 0
        self.failures = 0
        self._due = self._now()

    def retry_now(self):
        self._due = self._now()
