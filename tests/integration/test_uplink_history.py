"""The platform's history requests are answered from InfluxDB: `aggregate` points written as the
gateway writes them, read back by the forwarder's history source (InfluxQL against a real InfluxDB)."""

from __future__ import annotations

import pytest

from edgemon.aggregates.engine import Point
from edgemon.aggregates.lines import point_line
from edgemon.aggregates.stats import Value
from edgemon.config import GatewayConfig
from edgemon.influx import InfluxV1Writer
from edgemon.uplink.build import influx_history

pytestmark = pytest.mark.integration
T0 = 1796000400000 // 3_600_000 * 3_600_000


def test_history_reads_the_aggregate_points_of_the_site_period_and_range(stack):
    db = stack.new_database()
    v = Value(22.5, 20.0, 25.0, 0.18, "N", True, 6, 6, True, 6)
    bad = Value(None, None, None, None, "D", False, 0, 3, False, 0)
    points = [Point("plant", "n1", "w01018", "hour", T0, v), Point("plant", "n1", "w00000", "hour", T0, v),
              Point("plant", "n1", "w01018", "hour", T0 + 3_600_000, bad),
              Point("plant", "n1", "w01018", "hour", T0 + 7_200_000, v),  # outside the range asked
              Point("plant", "n1", "w01018", "minute", T0, v),  # another period
              Point("other", "n1", "w01018", "hour", T0, v)]  # another site
    with InfluxV1Writer(stack.influx_url, db) as influx:
        influx.write([point_line(p) for p in points])
    history = influx_history(GatewayConfig(influx_url=stack.influx_url, influx_db=db))
    got = history("plant", "hour", T0, T0 + 3_600_000)
    assert [start for start, _ in got] == [T0, T0 + 3_600_000]
    assert got[0][1] == {"w01018": v, "w00000": v}
    assert got[1][1] == {"w01018": bad}
    assert history("plant", "day", T0, T0 + 86_400_000) == []
