"""`make demo` end to end: three sites show live data, the staged exceedance raises an alarm and sends its
Chinese SMS, the clear follows, and stopping leaves no process behind."""

import io
import os

import pytest
from rich.console import Console

from edgemon.demo import SITES, run_demo

pytestmark = pytest.mark.integration


def test_demo_shows_three_sites_alarm_and_sms_and_stops_everything(tmp_path):
    out = io.StringIO()
    summary = run_demo(tmp_path / "demo", duration_s=34, poll_s=1.0, breach_at_s=8, breach_for_s=10,
                       console=Console(file=out, width=160))
    rows = summary["rows"]
    assert {r["site"] for r in rows} == {s.site for s in SITES}
    expected = {(s.site, n.node, p) for s in SITES for n in s.nodes for a in n.analyzers for p in a.signals}
    got = {(r["site"], r["node"], r["param"]) for r in rows}
    assert expected <= got, f"missing: {expected - got}"
    assert all(r["flag"] == "N" for r in rows)

    staged = next(s for s in SITES if s.staged_breach)
    _node, _unit, param, value = staged.staged_breach
    states = [(a["site"], a["param"], a["state"]) for a in summary["alarms"] if a["site"] == staged.site]
    assert states[:2] == [(staged.site, param, "raised"), (staged.site, param, "cleared")], summary["alarms"]
    raised = next(a for a in summary["alarms"] if a["site"] == staged.site and a["state"] == "raised")
    assert raised["value"] == value and raised["limit"] == 40.0

    texts = [t for _num, t in summary["sms"]]
    assert any(t.startswith(f"【超标预警】{staged.name_zh}化学需氧量监测值{value}mg/L，超过限值40mg/L") for t in texts), texts
    assert any(t.startswith(f"【告警解除】{staged.name_zh}化学需氧量") for t in texts), texts

    text = out.getvalue()
    assert "InfluxDB http://127.0.0.1:" in text and "database" in text
    assert all(0 < peak for peak in summary["heap_peak"].values()), summary["heap_peak"]
    nodes = sum(len(s.nodes) for s in SITES)
    assert len(summary["pids"]) == nodes + 3
    for pid in summary["pids"]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
