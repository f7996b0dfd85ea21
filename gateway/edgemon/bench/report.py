"""`make bench`, the report: one table of every headline figure beside its reference measured in
the same run and the ratio, from results/bench.json, written as results/bench.md and drawn as
results/bench.png. The gateway's figures are min/median/max over its interleaved rounds
(bench/gateway.py); the other parts run once, each with its own same-run reference.

  python -m edgemon.bench.report        # again from results/bench.json, without measuring
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path("results")
HEAP_BUDGET = 65536  # the board's heap (ESP32 build of the firmware: 64k for MicroPython)


def _n(v: float, fmt: str = "{:,.0f}") -> str:
    return fmt.format(v)


def _spread(d: dict, fmt: str = "{:,.0f}") -> str:
    return f"{_n(d['median'], fmt)} ({_n(d['min'], fmt)}-{_n(d['max'], fmt)})"


def rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(figure, measured, reference, ratio) for each part present in results."""
    out: list[tuple[str, str, str, str]] = []
    g = results.get("gateway")
    if g and isinstance(g.get("readings_per_s"), dict):
        out += [
            ("gateway readings/s end to end (signed, fsync, confirmation on)", _spread(g["readings_per_s"]),
             "broker alone x 5 readings, paho: " + _spread({k: v * 5 for k, v in g["reference_broker_paho_msgs_per_s"].items()}),
             _spread(g["over_broker_paho"], "{:.2f}")),
            ("", "", "broker alone x 5, C clients (ceiling): "
             + _spread({k: v * 5 for k, v in g["reference_broker_c_msgs_per_s"].items()}),
             _spread(g["over_broker_c"], "{:.2f}")),
            ("", "", "InfluxDB alone, points/s: " + _spread(g["reference_influx_points_per_s"]),
             _spread(g["over_influx"], "{:.2f}")),
            ("what end-to-end confirmation costs", _spread(g["readings_per_s"]),
             "confirmation off: " + _spread(g["readings_per_s_confirm_off"]), _spread(g["confirm_on_over_off"], "{:.2f}")),
            ("readings lost / duplicated / quarantined", f"{g['lost']} / {g['duplicates']} / {g.get('quarantined', 0)}",
             f"{2 * g['rounds'] * g['messages'] * 5:,} readings sent", "-"),
            ("gateway peak RSS, MB", _spread(g["peak_rss_mb"], "{:.1f}"),
             "confirmation off: " + _spread(g["peak_rss_mb_confirm_off"], "{:.1f}"),
             f"{g['peak_rss_mb']['median'] / g['peak_rss_mb_confirm_off']['median']:.2f}"),
        ]
        e = results.get("e2e", {})
        ref = e.get("reference_influx_write_to_queryable_p50_ms")
        out.append(("publish -> queryable p50 / p99, ms (1,000 sites every 10 s)", f"{g['p50_ms']:.0f} / {g['p99_ms']:.0f}",
                    f"one point written straight to InfluxDB p50: {ref:.0f}" if ref else "-",
                    f"{g['p50_ms'] / ref:.1f}" if ref else "-"))
    a = results.get("alarm")
    if a:
        out.append(("reading -> SMS at the modem p50 / p99, ms (under the 1,000-site load)",
                    f"{a['publish_to_sms_p50_ms']:,.0f} / {a['publish_to_sms_p99_ms']:,.0f}",
                    f"no load: {a['reference_no_load_publish_to_sms_p50_ms']:,.0f} / "
                    f"{a['reference_no_load_publish_to_sms_p99_ms']:,.0f}",
                    f"{a['publish_to_sms_p50_ms'] / a['reference_no_load_publish_to_sms_p50_ms']:.0f}"))
    f = results.get("firmware")
    if f:
        out.append(("firmware heap peak, poll loop (bytes)", f"{f['heap_peak_bytes']:,}",
                    f"board heap: {HEAP_BUDGET:,}", f"{f['heap_peak_bytes'] / HEAP_BUDGET:.2f}"))
        if "tls_heap_peak_bytes" in f:
            out.append((f"firmware heap peak, poll loop over TLS, CA pinned (bytes; held at {f['tls_heap_size_needed']})",
                        f"{f['tls_heap_peak_bytes']:,}", f"board heap: {HEAP_BUDGET:,}",
                        f"{f['tls_heap_peak_bytes'] / HEAP_BUDGET:.2f}"))
        if "replay_day_10s_128k_records_per_s" in f:
            out.append(("replay of a day's backlog (10 s poll), records/s at 60k heap",
                        f"{f['replay_day_10s_60k_records_per_s']:,.0f}",
                        f"the same at 128k: {f['replay_day_10s_128k_records_per_s']:,.0f}",
                        f"{f['replay_day_10s_60k_records_per_s'] / f['replay_day_10s_128k_records_per_s']:.2f}"))
    ag = results.get("aggregates")
    if ag:
        out.append(("HJ 212 aggregator, records/s (5 readings each, one SQLite transaction per record)",
                    f"{ag['records_per_s']:,.0f}",
                    f"bare SQLite, same transactions: {ag['reference_sqlite_bare_transactions_per_s']:,.0f}",
                    f"{ag['records_per_s'] / ag['reference_sqlite_bare_transactions_per_s']:.2f}"))
        out.append(("", "", f"nominal load (1,000 sites every 10 s): {ag['reference_nominal_records_per_s']:,.0f}",
                    f"{ag['records_per_s'] / ag['reference_nominal_records_per_s']:.1f}"))
    return out


def markdown(results: dict) -> str:
    g = results.get("gateway", {})
    head = ["# make bench", ""]
    if g.get("rounds"):
        head.append(f"Gateway figures: median (min-max) of {g['rounds']} interleaved rounds of {g['messages']:,} "
                    f"messages x 5 readings from {g['sites']:,} sites; ratios are per round."
                    + (f" Reduced run: EDGEMON_BENCH_SCALE={g['scale']}." if "scale" in g else ""))
        head.append("")
    lines = ["| figure | measured | reference, same run | ratio |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(results)]
    return "\n".join(head + lines) + "\n"


def chart(results: dict, path: Path) -> Path | None:
    g = results.get("gateway")
    if not g or not isinstance(g.get("readings_per_s"), dict):
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [("gateway\nconfirm on", g["readings_per_s"]), ("gateway\nconfirm off", g["readings_per_s_confirm_off"]),
            ("broker x5\npaho", {k: v * 5 for k, v in g["reference_broker_paho_msgs_per_s"].items()}),
            ("broker x5\nC clients", {k: v * 5 for k, v in g["reference_broker_c_msgs_per_s"].items()}),
            ("InfluxDB\nalone", g["reference_influx_points_per_s"])]
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    xs = range(len(bars))
    med = [b[1]["median"] for b in bars]
    err = [[m - b[1]["min"] for m, b in zip(med, bars)], [b[1]["max"] - m for m, b in zip(med, bars)]]
    ax.bar(xs, med, yerr=err, capsize=5, color=["#2a6f97", "#61a5c2", "#adb5bd", "#6c757d", "#495057"])
    ax.set_xticks(list(xs), [b[0] for b in bars])
    ax.set_yscale("log")
    ax.set_ylabel("readings/s (log; bar = median, whiskers = min-max)")
    ax.set_title(f"make bench: gateway end to end and its references, {g['rounds']} interleaved rounds")
    for x, m in zip(xs, med):
        ax.annotate(f"{m:,.0f}", (x, m), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write(results: dict, results_dir: Path = RESULTS) -> list[Path]:
    results_dir.mkdir(exist_ok=True)
    md = results_dir / "bench.md"
    text = markdown(results)
    md.write_text(text)
    print(text)
    written = [md]
    png = chart(results, results_dir / "bench.png")
    if png:
        written.append(png)
    return written


def main(argv: list[str] | None = None) -> None:
    path = RESULTS / "bench.json"
    if not path.exists():
        sys.exit(f"{path} not found: run `make bench` first")
    for p in write(json.loads(path.read_text())):
        print(f"written {p}")


if __name__ == "__main__":
    main()
