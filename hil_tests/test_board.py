"""Scenarios on a real ESP32 (HIL_PORT=/dev/ttyUSB0). Not run so far: no board was attached."""
import os

import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("HIL_PORT"),
                                reason="HIL_PORT not set: no real ESP32 attached (virtual-board scenarios run instead)")


def test_outage_and_replay():
    pytest.skip("board runner (mpremote deploy + broker on the bench LAN) not written yet; see README")


def test_power_cut():
    pytest.skip("needs EN-line control through the serial adapter's RTS; see README")
