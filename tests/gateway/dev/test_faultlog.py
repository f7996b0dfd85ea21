"""results/faults.json rows (edgemon.dev.faultlog): a scenario's new row replaces its old one, others stay."""

import json

from edgemon.dev import faultlog


def test_a_scenario_row_replaces_its_older_row_and_the_table_lists_faults(tmp_path, monkeypatch):
    monkeypatch.setattr(faultlog, "THIS_RUN", [])  # (this run's table is for real scenarios)
    path = tmp_path / "results" / "faults.json"
    row = {"scenario": "a", "faults": ["x", "y"], "produced": 3, "stored": 3, "lost": 0, "duplicated": 0}
    faultlog.record(row, path)
    faultlog.record({**row, "scenario": "b", "faults": 2}, path)
    faultlog.record({**row, "produced": 5, "stored": 4, "lost": 1}, path)
    rows = json.loads(path.read_text())
    assert len(faultlog.THIS_RUN) == 3
    assert [(r["scenario"], r["produced"]) for r in rows] == [("b", 3), ("a", 5)]
    text = faultlog.table(rows)
    assert "| `a` | x; y | 5 | 4 | 1 | 0 |" in text and "| `b` | 2 | 3 | 3 | 0 | 0 |" in text
