"""`make demo` end to end: three sites show live data, and stopping leaves no process behind."""

import io
import os

import pytest
from rich.console import Console

from edgemon.demo import SITES, run_demo

pytestmark = pytest.mark.integration


def test_demo_shows_three_sites_and_stops_everything(tmp_path):
    out = io.StringIO()
    summary = run_demo(tmp_path / "demo", duration_s=12, poll_s=1.0, console=Console(file=out, width=160))
    rows = summary["rows"]
    assert sorted({r["site"] for r in rows}) == sorted(s.site for s in SITES)
    for r in rows:
        assert r["param"] == "w01018" and r["flag"] == "N" and r["value"] > 0
    text = out.getvalue()
    assert "database" in text and "InfluxDB http://127.0.0.1:" in text
    for s in SITES:
        assert s.site in text
    # Every firmware process reported its heap high-water mark, inside the 128 KiB heap it was given.
    assert all(0 < peak < 128 * 1024 for peak in summary["heap_peak"].values()), summary["heap_peak"]
    assert len(summary["pids"]) == len(SITES) + 3
    for pid in summary["pids"]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
