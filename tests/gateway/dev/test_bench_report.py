"""The bench report (edgemon.bench.report): every figure beside its same-run reference and the ratio,
min/median/max over the gateway's rounds; Markdown and a PNG written from results/bench.json."""

from edgemon.bench import gateway as gwbench
from edgemon.bench import report


def _spread(a, b, c):
    return {"min": a, "median": b, "max": c}


RESULTS = {
    "gateway": {
        "rounds": 3, "messages": 200000, "sites": 1000,
        "readings_per_s": _spread(20000, 24000, 30000),
        "readings_per_s_confirm_off": _spread(25000, 26000, 31000),
        "confirm_on_over_off": _spread(0.8, 0.92, 0.97),
        "reference_influx_points_per_s": _spread(150000, 200000, 210000),
        "reference_broker_paho_msgs_per_s": _spread(10000, 12000, 20000),
        "reference_broker_c_msgs_per_s": _spread(30000, 40000, 50000),
        "over_broker_paho": _spread(0.3, 0.4, 0.5), "over_broker_c": _spread(0.1, 0.12, 0.15),
        "over_influx": _spread(0.1, 0.12, 0.14), "over_slower_reference": _spread(0.3, 0.4, 0.5),
        "lost": 0, "duplicates": 0, "quarantined": 0,
        "peak_rss_mb": _spread(45.0, 48.0, 50.0), "peak_rss_mb_confirm_off": _spread(38.0, 40.0, 41.0),
        "p50_ms": 13.0, "p99_ms": 35.0,
    },
    "e2e": {"reference_influx_write_to_queryable_p50_ms": 3.25},
    "alarm": {"publish_to_sms_p50_ms": 8000.0, "publish_to_sms_p99_ms": 12000.0,
              "reference_no_load_publish_to_sms_p50_ms": 16.0, "reference_no_load_publish_to_sms_p99_ms": 30.0},
    "firmware": {"heap_peak_bytes": 57952, "replay_day_10s_60k_records_per_s": 1100.0,
                 "replay_day_10s_128k_records_per_s": 1250.0},
}


def test_each_figure_has_its_reference_and_ratio():
    rows = {r[0]: r for r in report.rows(RESULTS) if r[0]}
    gw = rows["gateway readings/s end to end (signed, fsync, confirmation on)"]
    assert gw[1] == "24,000 (20,000-30,000)" and "60,000 (50,000-100,000)" in gw[2] and gw[3] == "0.40 (0.30-0.50)"
    assert rows["what end-to-end confirmation costs"][3] == "0.92 (0.80-0.97)"
    assert rows["gateway peak RSS, MB"][3] == "1.20"
    assert rows["publish -> queryable p50 / p99, ms (1,000 sites every 10 s)"][3] == "4.0"
    assert rows["reading -> SMS at the modem p50 / p99, ms (under the 1,000-site load)"][3] == "500"
    assert rows["firmware heap peak, poll loop (bytes)"][3] == "0.88"
    assert rows["replay of a day's backlog (10 s poll), records/s at 60k heap"][3] == "0.88"
    assert rows["readings lost / duplicated / quarantined"][2] == "6,000,000 readings sent"


def test_parts_not_run_are_left_out_and_the_files_are_written(tmp_path):
    only_fw = {"firmware": RESULTS["firmware"]}
    assert [r[0] for r in report.rows(only_fw)][0].startswith("firmware heap")
    written = report.write(RESULTS, tmp_path)
    md = (tmp_path / "bench.md").read_text()
    assert "median (min-max) of 3 interleaved rounds" in md and md.count("\n| ") == 2 + len(report.rows(RESULTS))
    png = tmp_path / "bench.png"
    assert png in written and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_spread_is_min_median_max():
    assert gwbench.spread([3.0, 1.0, 2.0]) == {"min": 1.0, "median": 2.0, "max": 3.0}
