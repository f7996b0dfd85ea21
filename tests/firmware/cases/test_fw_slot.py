"""slotboot.choose (the boot's choice of romfs partition, A/B) and start._rearm: an update waiting
is booted once on trial, an image that booted and never confirmed itself is left at the next boot,
and a first boot that only checked the config does not use up the trial."""
import os

from fakes import make_tmpdir
from slotboot import choose


def _read(p):
    with open(p) as f:
        return f.read()


def _write(p, s):
    with open(p, "w") as f:
        f.write(s)


def test_a_waiting_image_is_booted_once_on_trial_then_left_unless_confirmed():
    p = make_tmpdir() + "/slot"
    assert choose(2, p) == 0  # no file: partition 0, the one a deploy writes
    _write(p, "1?0 30")
    assert choose(2, p) == 1 and _read(p) == "1!0 30"  # its trial boot
    assert choose(2, p) == 0 and _read(p) == "0"  # it never confirmed itself (node.py writes "1"): back
    _write(p, "1")
    assert choose(2, p) == 1 and _read(p) == "1"  # confirmed: stays
    assert choose(1, p) == 0  # a board with one partition: the only one
    _write(p, "0?1 30")
    assert choose(2, p) == 0 and _read(p) == "0!1 30"
    assert choose(2, p) == 1 and _read(p) == "1"
    _write(p, "x")
    assert choose(2, p) == 0


def test_a_boot_that_only_checked_the_config_leaves_the_trial_to_the_next():
    from start import _rearm
    d = make_tmpdir()
    here = os.getcwd()
    os.chdir(d)
    try:
        _rearm()  # no slot file: nothing
        _write("slot", "1!0 30")
        _rearm()
        assert _read("slot") == "1?0 30" and choose(2, "slot") == 1 and _read("slot") == "1!0 30"
        _write("slot", "1")
        _rearm()
        assert _read("slot") == "1"
    finally:
        os.chdir(here)
