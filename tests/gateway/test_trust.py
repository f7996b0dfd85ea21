"""The gateway's trust, liveness, completeness and observer hook against the real Mosquitto and
InfluxDB (the session `stack` fixture), plus the v2 API against a real VictoriaMetrics."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
import requests

from edgemon import quarantine as q
from edgemon.keys import signed_payload
from edgemon.dev.victoria import VictoriaMetrics

from .test_ingest_against_servers import TS, record, run, wait_for  # noqa: F401 - `run` is a fixture

pytestmark = pytest.mark.integration

KEY_A = bytes.fromhex("11" * 32)
KEY_B = bytes.fromhex("22" * 32)


def now_ms() -> int:
    return int(time.time() * 1000)


class Recorder:
    def __init__(self, fail_on_records: bool = False):
        self.records, self.statuses, self.ticks, self.threads = [], [], [], set()
        self.fail = fail_on_records

    def on_records(self, site, node, records, receive_ms):
        self.threads.add(threading.current_thread().name)
        self.records.append((site, node, [r.seq for r in records], receive_ms))
        if self.fail:
            raise RuntimeError("observer bug")

    def on_status(self, site, node, status, receive_ms):
        self.statuses.append((site, node, status.state))

    def on_tick(self, now_ms):
        self.ticks.append(now_ms)


def test_observers_get_records_statuses_ticks_and_can_write(run):
    from edgemon.ingest import Gateway

    good, bad = Recorder(), Recorder(fail_on_records=True)
    gw = Gateway(run.config())
    gw.add_observer(bad)
    gw.add_observer(good)
    run.gateways.append(gw)
    gw.start()
    with pytest.raises(Exception, match="before start"):
        gw.add_observer(Recorder())
    run.publish(run.topic("n1", "data"), json.dumps(record(5, TS, w01018=(1.5, "N"))))
    run.publish(run.topic("n1", "data"), b"garbage")  # quarantined: observers never see it
    run.publish(run.topic("n1", "status"), b'{"state":"online","fw":"2.0"}')
    wait_for(lambda: good.statuses and len(good.ticks) >= 2, "status and ticks")
    assert [(s, n, seqs) for s, n, seqs, _ in good.records] == [(run.site, "n1", [5])]
    assert good.statuses == [(run.site, "n1", "online")]
    assert good.threads == {"edgemon-observer"}
    assert gw.stats["observer_errors"] == 1  # the failing observer was counted, the gateway went on

    gw.write_lines([f'alarm,node=n1,param=w01018,rule=max,site={run.site} state="raised",value=1.5 {TS}'])
    rows = wait_for(lambda: run.influx.query_rows(f"SELECT * FROM alarm WHERE site = '{run.site}'"), "alarm point")
    assert rows[0]["state"] == "raised" and rows[0]["time"] == TS


def test_observer_stop_runs_at_gateway_stop_and_its_last_lines_are_stored(run):
    from edgemon.ingest import Gateway

    class Saver(Recorder):
        def __init__(self, gw):
            super().__init__()
            self.gw, self.stopped = gw, 0

        def stop(self):
            # What an alarm observer does on the way out: save state, hand over its last points.
            self.stopped += 1
            self.gw.write_lines([f'alarm,node=n1,param=w01018,rule=max,site={run.site} state="cleared" {TS + 1}'])

    gw = Gateway(run.config())
    saver = Saver(gw)
    gw.add_observer(saver)
    run.gateways.append(gw)
    gw.start()
    run.publish(run.topic("n1", "data"), json.dumps(record(9, TS, w01018=(2.5, "N"))))
    wait_for(lambda: saver.records, "the record reached the observer")
    gw.stop()
    assert saver.stopped == 1
    gw2 = Gateway(run.config())  # the writer of the next start drains what the last one stored
    run.gateways.append(gw2)
    gw2.start()
    rows = wait_for(lambda: run.influx.query_rows(f"SELECT * FROM alarm WHERE site = '{run.site}'"), "alarm point")
    assert [(r["state"], r["time"]) for r in rows] == [("cleared", TS + 1)]


def test_signatures_are_checked_per_node(run):
    keys = {f"{run.site}/a": KEY_A, f"{run.site}/b": KEY_B}
    gw = run.gateway(keys=keys)
    body = json.dumps(record(1, TS, w01018=(7.0, "N")), separators=(",", ":")).encode()
    run.publish(run.topic("a", "data"), signed_payload(body, KEY_A))  # good
    run.publish(run.topic("a", "data"), body)  # unsigned in a keyed site
    run.publish(run.topic("a", "data"), signed_payload(body, KEY_B))  # b's key on a's topic
    tampered = signed_payload(body, KEY_A).replace(b"7.0", b"9.0")
    run.publish(run.topic("a", "data"), tampered)
    run.publish(run.topic("c", "data"), signed_payload(body, KEY_A))  # c has no key in a keyed site
    wait_for(lambda: gw.stats["received"] == 5, "all received")
    wait_for(lambda: gw.stats["readings_written"] == 1, "the signed record written")
    assert run.readings() == [("a", "w01018", TS, 7.0, "N")]
    reasons = [e["reason"] for e in q.read(run.state_dir / q.FILE_NAME)]
    assert reasons == [
        f"sig: missing; {run.site}/a must sign its payloads (HMAC-SHA256, last member)",
        f"sig: signed with the key of {run.site}/b, not of {run.site}/a (topic's site/node)",
        f"sig: does not match the key of {run.site}/a",
        f"sig: no key for {run.site}/c in the keys file; the payload cannot be trusted",
    ]
    assert gw.quarantine.counts == {f"{run.site}/a": 3, f"{run.site}/c": 1}


def test_clock_skew_is_recorded_and_ts_kept(run):
    gw = run.gateway()
    now = now_ms()
    run.publish(run.topic("ok", "data"), json.dumps(record(1, now - 1000, w01018=(1.0, "N"))))
    run.publish(run.topic("fut", "data"), json.dumps(record(1, now + 3_600_000, w01018=(2.0, "N"))))
    old = dict(record(1, now - 86_400_000, w01018=(3.0, "N")), clk="rtc")
    run.publish(run.topic("past", "data"), json.dumps(old))
    replay = {"batch": [record(1, now - 86_400_000, w01018=(4.0, "N")), record(2, now - 1000, w01018=(5.0, "N"))]}
    run.publish(run.topic("replay", "data"), json.dumps(replay))
    nts = dict(record(1, now - 500, w01018=(6.0, "N")), clk="none")
    run.publish(run.topic("noclk", "data"), json.dumps(nts))
    wait_for(lambda: gw.stats["readings_written"] == 6, "all readings")
    times = {(r[0], r[2]) for r in run.readings()}
    assert (("fut", now + 3_600_000) in times) and (("past", now - 86_400_000) in times)  # ts never rewritten
    rows = wait_for(lambda: run.influx.query_rows(
        f"SELECT clock, clock_offset_ms FROM node WHERE site = '{run.site}' GROUP BY node"), "node points")
    verdict = {r["node"]: (r["clock"], r["clock_offset_ms"]) for r in rows}
    assert verdict["fut"][0] == "future" and verdict["fut"][1] > 3_590_000
    assert verdict["past"][0] == "past" and verdict["past"][1] < -86_000_000
    assert verdict["noclk"][0] == "none"
    assert verdict["ok"][0] == "ok" and verdict["replay"][0] == "ok"  # an old record in a replay batch is fine
    assert gw.stats["clock_skewed"] == 3


def test_completeness_counts_gaps_duplicates_and_survives_restart(run):
    gw = run.gateway(ingest_interval_s=0.5)
    for seq in (1, 2, 5, 5):
        run.publish(run.topic("n1", "data"), json.dumps(record(seq, TS + seq, w01018=(1.0, "N"))))
    wait_for(lambda: gw.completeness().get(f"{run.site}/n1", {}).get("received") == 3, "3 distinct records")
    gw.stop()
    gw2 = run.gateway(ingest_interval_s=0.5)  # same state dir: the counts go on
    run.publish(run.topic("n1", "data"), json.dumps({"batch": [record(3, TS + 3, w01018=(1.0, "N"))]}))
    want = {"expected": 5, "received": 4, "missing": 1, "duplicates": 1, "lost": 0, "seq_jumps": 0}
    wait_for(lambda: gw2.completeness().get(f"{run.site}/n1") == want, "restored and updated")
    q_ = f"SELECT last(expected) AS e, last(received) AS r, last(missing) AS m, last(duplicates) AS d FROM completeness WHERE site = '{run.site}'"
    wait_for(lambda: run.influx.query_rows(q_) and run.influx.query_rows(q_)[0]["m"] == 1.0, "completeness point")
    row = run.influx.query_rows(q_)[0]
    assert (row["e"], row["r"], row["m"], row["d"]) == (5.0, 4.0, 1.0, 1.0)


def test_silent_node_goes_offline_and_comes_back(run):
    gw = run.gateway(nodes=[(run.site, "quiet", 0.3), (run.site, "talk", 0.3)], silent_periods=3)
    stop = time.monotonic() + 2.5
    seq = 0
    while time.monotonic() < stop:
        seq += 1
        run.publish(run.topic("talk", "data"), json.dumps(record(seq, now_ms(), w01018=(1.0, "N"))))
        time.sleep(0.1)
    q_ = f"SELECT online, reason FROM node WHERE site = '{run.site}' GROUP BY node"
    rows = wait_for(lambda: run.influx.query_rows(q_), "node points")
    quiet = [r for r in rows if r["node"] == "quiet"]
    assert quiet and quiet[0]["online"] is False and "silent: no data for" in quiet[0]["reason"]
    assert "3 poll periods of 0.3 s" in quiet[0]["reason"]
    assert not [r for r in rows if r["node"] == "talk" and r["online"] is False]
    run.publish(run.topic("quiet", "data"), json.dumps(record(1, now_ms(), w01018=(1.0, "N"))))
    wait_for(lambda: any(r["node"] == "quiet" and r["online"] is True and r["reason"] == "data resumed"
                         for r in run.influx.query_rows(q_)), "back online")
    assert gw.stats["quarantined"] == 0


HOSTILE = [
    b"",
    b"\x00" * 100,
    b"[" * 100_000 + b"]" * 100_000,  # deep nesting
    b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1e999999,"f":"N"}}}',
    b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":Infinity,"f":"N"}}}',
    b'{"ts":' + b"9" * 5000 + b',"seq":1,"readings":{"w01018":{"v":1,"f":"N"}}}',
    b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1,"f":"' + b"N" * 200_000 + b'"}}}',
    b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1,"f":"N"}},"pad":"' + b"x" * (1024 * 1024) + b'"}',
    "{\"ts\":1764000000000,\"seq\":1,\"readings\":{\"w01018\":{\"v\":1,\"f\":\"N\"}}}".encode("utf-16"),
    b'{"batch":[' + b",".join([b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":"1","f":"N"}}}'] * 5000) + b"]}",
    os.urandom(4096),
]


def test_hostile_payloads_while_a_good_node_publishes(run):
    gw = run.gateway()
    done = threading.Event()

    def good_node():
        for seq in range(1, 61):
            run.publish(run.topic("good", "data"), json.dumps(record(seq, TS + seq * 1000, w01018=(float(seq), "N"))))
            time.sleep(0.01)
        done.set()

    t = threading.Thread(target=good_node)
    t.start()
    for payload in HOSTILE:
        run.publish(run.topic("evil", "data"), payload)
        run.publish(run.topic("evil", "status"), payload)
    t.join()
    wait_for(lambda: gw.stats["received"] == 60 + 2 * len(HOSTILE), "all messages", timeout=30)
    wait_for(lambda: gw.stats["readings_written"] == 60, "the good node's readings")
    readings = run.readings()
    assert {r[0] for r in readings} == {"good"} and len(readings) == 60
    # Every hostile payload is quarantined, except an empty status: that clears a retained status.
    assert gw.stats["quarantined"] == 2 * len(HOSTILE) - 1
    assert gw.quarantine.counts[f"{run.site}/evil"] == 2 * len(HOSTILE) - 1


def test_v2_api_into_victoria_metrics(run, tmp_path):
    """influx.api = "v2" through influxdb-client into a real VictoriaMetrics. VictoriaMetrics keeps
    numeric fields as metrics `<measurement>_<field>` with the tags as labels; it does not keep string
    fields (flag comes back as 0), so the numeric values are compared."""
    with VictoriaMetrics(tmp_path / "vm") as vm:
        gw = run.gateway(influx_api="v2", influx_url=vm.url, influx_db="edge", influx_org="edge",
                         influx_token="unused", client_id=run.client_id + "-v2", state_dir=tmp_path / "gw2")
        batch = {"batch": [record(1, TS, w01018=(35.2, "N"), w21003=(1, "M")), record(2, TS + 60_000, w01018=(36.5, "N"))]}
        run.publish(run.topic("n1", "data"), json.dumps(batch))
        wait_for(lambda: gw.stats["readings_written"] == 3, "written through the v2 API")

        def export():
            requests.get(vm.url + "/internal/force_flush", timeout=5)
            r = requests.get(vm.url + "/api/v1/export",
                             params={"match[]": f'reading_value{{site="{run.site}"}}'}, timeout=5)
            return [json.loads(line) for line in r.text.splitlines() if line]

        series = wait_for(export, "points in VictoriaMetrics")
        got = sorted((s["metric"]["node"], s["metric"]["param"], t, v)
                     for s in series for t, v in zip(s["timestamps"], s["values"]))
        assert got == [("n1", "w01018", TS, 35.2), ("n1", "w01018", TS + 60_000, 36.5), ("n1", "w21003", TS, 1.0)]


def test_v2_refusal_is_a_clear_error_and_keeps_the_data(run, tmp_path, caplog):
    """HTTP 401 (a wrong token; here VictoriaMetrics requiring other credentials) is logged as an
    error naming the setting to fix, retried, and nothing is dropped."""
    with VictoriaMetrics(tmp_path / "vm", basic_auth=("edge", "secret")) as vm:
        gw = run.gateway(influx_api="v2", influx_url=vm.url, influx_db="edge", influx_org="edge",
                         influx_token="wrong", client_id=run.client_id + "-v2bad",
                         state_dir=tmp_path / "gw3", retry_max_s=0.5)
        run.publish(run.topic("n1", "data"), json.dumps(record(1, TS, w01018=(1.0, "N"))))
        wait_for(lambda: gw.stats["write_errors"] >= 2, "refused writes")
        stats = gw.stats
        assert (stats["readings_written"], stats["backlog_readings"], stats["quarantined"]) == (0, 1, 0)
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert any("InfluxDB refused the credentials: check influx.token in gateway.toml" in m
                   and "backlog=1 readings kept in the store" in m for m in errors), errors
