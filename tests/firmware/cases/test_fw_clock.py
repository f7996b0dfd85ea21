"""Clock: Unix ms from a 2000-epoch port, and what clk says before and after NTP."""
from clock import Clock, UNIX_2000_S
from backoff import Backoff
import compat


class _T:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t


def test_2000_epoch_converted_to_unix_ms():
    unix_s = 1764000000
    c = Clock(lambda: (unix_s - UNIX_2000_S) * 1000000000 + 123456789, 2000, sync_fn=lambda: None)
    assert c.now_ms() == unix_s * 1000 + 123
    c1970 = Clock(lambda: unix_s * 1000000000, 1970)
    assert c1970.now_ms() == unix_s * 1000


def test_compat_now_ms_is_unix_ms():
    import time
    assert abs(compat.now_ms() - int(time.time()) * 1000) < 2000
    assert compat.now_ms() > 1704067200000  # after 2024: not counted from 2000


def test_clk_none_rtc_ntp():
    ticks = _T()
    fresh = [0]  # an ESP32 RTC after power-up: 2000-01-01 + uptime
    state = {"fail": True}

    def sync():
        if state["fail"]:
            raise OSError("no NTP answer")
        fresh[0] = (1764000000 - UNIX_2000_S) * 1000000000

    c = Clock(lambda: fresh[0], 2000, sync_fn=sync, sync_every_s=3600, max_age_s=7200, now_ticks=ticks)
    assert c.clk == "none" and c.sync_due()
    try:
        c.sync()
        raise AssertionError("sync should raise")
    except OSError:
        pass
    assert c.clk == "none" and c.sync_errors == 1
    state["fail"] = False
    c.sync()
    assert c.clk == "ntp" and not c.sync_due() and c.now_ms() == 1764000000000
    ticks.t += 3600 * 1000
    assert c.sync_due() and c.clk == "ntp"
    ticks.t += 3600 * 1000
    assert c.clk == "rtc"  # set once, but not re-synced for max_age_s
    rtc_only = Clock(lambda: (1764000000 - UNIX_2000_S) * 1000000000, 2000, sync_fn=sync, now_ticks=ticks)
    assert rtc_only.clk == "rtc"  # RTC kept time across a soft reset, no NTP yet this boot
    assert Clock(lambda: 0, 1970).clk == "ntp"  # host clock (unix port)


def test_backoff_doubles_caps_jitters_and_resets():
    now = _T()
    b = Backoff(1000, 30000, rand=lambda n: n - 1, now=now)  # max jitter
    assert b.ready()
    delays = [b.failed() for _ in range(7)]
    assert delays == [1000, 2000, 4000, 8000, 16000, 30000, 30000]
    assert not b.ready()
    now.t += 29999
    assert not b.ready()
    now.t += 1
    assert b.ready()
    b.succeeded()
    assert b.failed() == 1000
    low = Backoff(1000, 30000, rand=lambda n: 0, now=now)
    assert [low.failed() for _ in range(3)] == [500, 1000, 2000]  # at least half the step
    real = Backoff(1000, 8000)
    for _ in range(10):
        d = real.failed()
        assert 4000 <= d <= 8000 or real.step_ms < 8000
