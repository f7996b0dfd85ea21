"""A day and a bit of the demo's three sites, made with the gateway's own writers so that every
measurement, tag and field is the real one: `reading` (lineproto.records_lines), `node`
(lineproto.node_line), `event` (lineproto.event_line), `ingest` (lineproto.ingest_line),
`completeness` (Completeness.lines), `gateway` (Journal.health_line), `alarm` (the alarm Engine with
the demo's alarms.toml) and `aggregate` (the Aggregator on its SQLite store, aggregates.lines).

What it stages, and keeps as the expectations the query tests compare with:
- a record every 5 minutes per node for 26 h, values on the demo sites' daily cycles;
- qd_wwtp_outlet in maintenance (flag M) for 30 minutes, river_sec_03's fluoride analyzer not
  answering (null, flag B) for 20 minutes, five seqs of qd_wwtp_outlet/node01 never arriving;
- laixi_ent_07's COD at 57.3 mg/L for 30 minutes (raised, then cleared), river_sec_03's pH at 9.6
  in the last 20 minutes (raised, still open);
- laixi_ent_07/node01 replaying after an outage (ingest lag 2 minutes: late), laixi_ent_07/node02
  offline at the end; a second boot of river_sec_03/node01 5 h ago;
- the gateway quarantining one payload an hour.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import requests

from edgemon import lineproto
from edgemon.aggregates.engine import Aggregator, SiteSettings
from edgemon.aggregates.lines import point_line
from edgemon.aggregates.store import AggregateStore
from edgemon.alarms import config as alarms_config
from edgemon.alarms.engine import Engine, new_mem
from edgemon.completeness import Completeness
from edgemon.contract import Event, Reading, Record, Status
from edgemon.dev.demo import write_gateway_files
from edgemon.dev.demo_sites import SITES
from edgemon.journal import Journal

STEP_MS = 300_000
SPAN_MS = 26 * 3_600_000
MISSING = ("qd_wwtp_outlet", "node01", range(50, 55))
LATE_LAG_MS = 120_000


@dataclass
class Demo:
    now_ms: int
    latest: dict = field(default_factory=dict)  # (site, param) -> (ts, value, flag)
    last_value: dict = field(default_factory=dict)  # (site, param) -> (ts, value) of the newest non-null value
    latest_node_ts: dict = field(default_factory=dict)  # (site, node) -> ts of its newest record
    online: dict = field(default_factory=dict)  # (site, node) -> bool
    status: dict = field(default_factory=dict)  # (site, node) -> last Status
    boots: dict = field(default_factory=dict)  # (site, node) -> [boot ts]
    flagged: list = field(default_factory=list)  # (site, param, ts, value, flag) with flag != N
    transitions: list = field(default_factory=list)  # the alarm engine's transitions
    active: list = field(default_factory=list)  # alarms still raised at the end
    completeness: list = field(default_factory=list)  # (time, site, node, fields)
    ingest: list = field(default_factory=list)  # (time, site, node, lag_ms_max)
    health: list = field(default_factory=list)  # (time, quarantined)
    aggregates: list = field(default_factory=list)  # Points
    lines: int = 0


def _write(url: str, db: str, lines: list[str]) -> None:
    for i in range(0, len(lines), 5000):
        r = requests.post(f"{url}/write", params={"db": db, "precision": "ms"},
                          data="\n".join(lines[i:i + 5000]).encode(), timeout=30)
        assert r.status_code == 204, r.text


def _value(site, param, base, t_ms, now_ms, breach):
    if breach and param == breach[0] and breach[1] <= now_ms - t_ms < breach[2]:
        return breach[3]
    return base


def make(url: str, db: str, tmp: Path, now_ms: int) -> Demo:
    stack = SimpleNamespace(mosquitto=SimpleNamespace(host="127.0.0.1", port=1883), gateway_user="gateway",
                            influx=SimpleNamespace(url=url, database=db))
    write_gateway_files(tmp, stack, {}, "/dev/null", 300.0)
    engine = Engine(alarms_config.load(tmp / "alarms.toml"))
    mem = new_mem()
    units = {c: v.get("unit", "") for c, v in tomllib.loads(
        (Path(alarms_config.DATA_DIR) / "params.toml").read_text("utf-8")).items()}
    agg = Aggregator(AggregateStore(tmp / "agg"), {s.site: SiteSettings(poll_s=300.0) for s in SITES}, units=units,
                     close_after_s=60)
    comp = Completeness()
    d = Demo(now_ms)
    out: list[str] = []
    start = now_ms - SPAN_MS
    breaches = {"laixi_ent_07": ("w01018", 2 * 3_600_000, 2 * 3_600_000 + 1_800_000, 57.3),
                "river_sec_03": ("w01001", 0, 1_200_000, 9.6)}
    for s in SITES:
        for n in s.nodes:
            key = (s.site, n.node)
            totals: dict = {}
            seq = 0
            d.boots[key] = [start - 60_000]
            if key == ("river_sec_03", "node01"):
                d.boots[key].append(now_ms - 5 * 3_600_000)
            for b in d.boots[key]:
                out.append(lineproto.event_line(s.site, n.node, Event(b, "boot", {"fw": "0.4.0", "seq": seq + 1,
                                                                                   "queue": 0, "repaired_bytes": 0})))
            t = start
            batch: list[Record] = []
            while t < now_ms:
                seq += 1
                readings = {}
                for a in n.analyzers:
                    for param, v in a.step(t / 1000, STEP_MS / 1000, 86_400.0, {}, totals, noise=False).items():
                        v = _value(s.site, param, v, t, now_ms, breaches.get(s.site))
                        flag = "N"
                        if s.site == "qd_wwtp_outlet" and 3 * 3_600_000 - 1_800_000 < now_ms - t <= 3 * 3_600_000:
                            flag = "M"
                        if s.site == "river_sec_03" and param == "w21017" and 4 * 3_600_000 - 1_200_000 < now_ms - t <= 4 * 3_600_000:
                            v, flag = None, "B"
                        readings[param] = Reading(v, flag)
                        d.latest[(s.site, param)] = (t, v, flag)
                        if v is not None:
                            d.last_value[(s.site, param)] = (t, v)
                        if flag != "N":
                            d.flagged.append((s.site, param, t, v, flag))
                record = Record(t, seq, "ntp", readings)
                if not (key[:2] == MISSING[:2] and seq in MISSING[2]):
                    out.extend(lineproto.records_lines(s.site, n.node, [record]))
                    o = engine.records(mem, s.site, n.node, [record], t + 500)
                    out.extend(o.lines)
                    d.transitions.extend(o.transitions)
                    agg.add(s.site, n.node, [record], t + 500)
                    batch.append(record)
                    d.latest_node_ts[key] = t
                t += STEP_MS
                if (t - start) % 3_600_000 == 0 or t >= now_ms:  # an hour's health points
                    comp.add(s.site, n.node, [r.seq for r in batch])
                    batch = []
                    for line in comp.lines(t):
                        out.append(line)
                        nc = comp.nodes[f"{s.site}/{n.node}"]
                        d.completeness.append((t, s.site, n.node, {"expected": nc.expected, "received": nc.received,
                                                                   "missing": nc.missing, "duplicates": nc.duplicates,
                                                                   "seq_jumps": nc.jumps, "lost": nc.lost,
                                                                   "last_seq": nc.last}))
                if (t - start) % 600_000 == 0 and t < now_ms:  # ingest windows and statuses every 10 minutes
                    late = key == ("laixi_ent_07", "node01") and 6 * 3_600_000 <= now_ms - t < 6 * 3_600_000 + 1_800_000
                    lag = LATE_LAG_MS if late else 350
                    out.append(lineproto.ingest_line(s.site, n.node, lag_ms_last=lag, lag_ms_max=lag, records=2,
                                                     time_ms=t))
                    d.ingest.append((t, s.site, n.node, lag))
                    st = Status("online", fw="0.4.0", up=(t - d.boots[key][-1]) / 1000, heap=21_000 + seq % 7 * 100,
                                rssi=-58 - len(n.analyzers), queue=seq % 3)
                    out.append(lineproto.node_line(s.site, n.node, st, t, clock_offset_ms=120.0))
                    d.status[key], d.online[key] = st, True
    gone = ("laixi_ent_07", "node02")
    out.append(lineproto.node_line(*gone, Status("offline"), now_ms - 60_000))
    d.online[gone] = False
    agg.compute(now_ms)
    d.aggregates = agg.pending()
    out.extend(point_line(p) for p in d.aggregates)
    d.active = engine.active(mem)
    gw = SimpleNamespace(stats={k: 0 for k in ("backlog_readings", "received", "records", "stored_readings",
                                               "readings_written", "write_errors", "duplicates", "observer_errors",
                                               "clock_skewed", "events", "seq_jumps")},
                         store=None, cfg=SimpleNamespace(client_id="demo-gateway"))
    journal = Journal(gw)
    for k, t in enumerate(range(start + 3_600_000, now_ms, 3_600_000)):
        gw.stats["quarantined"] = k + 1
        head, _, _ = journal.health_line().rpartition(" ")  # the real fields; this test's time
        out.append(f"{head} {t}")
        d.health.append((t, k + 1))
    _write(url, db, out)
    d.lines = len(out)
    return d
