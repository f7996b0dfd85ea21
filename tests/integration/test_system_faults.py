"""The whole system under faults, the short form inside `make test` (`make test-faults` runs it too):
real Mosquitto and InfluxDB, three virtual nodes (the real firmware at 64k, its flash queue, its
simulated analyzer, polling every 0.5 s), the gateway as its own process. Each scenario kills what
it names by PID, then compares every record the nodes produced with what is in InfluxDB
(edgemon.dev.systemrig.SystemRig.account), prints one line and adds its row to results/faults.json.

The broker kill -9 scenarios are the hole end-to-end confirmation closes: Mosquitto acknowledges a
QoS 1 publish before anything is on its disk, so what it held since its last autosave is gone;
the nodes still hold it (unconfirmed) and send it again."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from edgemon.dev.systemrig import SystemRig

pytestmark = pytest.mark.integration

RESULTS = Path(__file__).resolve().parents[2] / "results" / "faults.json"


def _record(row: dict) -> None:
    print("scenario {scenario}: faults {faults}, produced {produced}, stored {stored}, lost {lost}, "
          "duplicated {duplicated}, pending on nodes {pending_on_nodes}".format(**row))
    RESULTS.parent.mkdir(exist_ok=True)
    try:
        rows = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        rows = []
    keep = {k: row[k] for k in ("scenario", "faults", "produced", "stored", "lost", "duplicated")}
    RESULTS.write_text(json.dumps([r for r in rows if r.get("scenario") != row["scenario"]] + [keep], indent=2) + "\n")


@pytest.fixture
def rig(tmp_path, request):
    marker = request.node.get_closest_marker("rig")
    r = SystemRig(tmp_path, **(marker.kwargs if marker else {}))
    yield r
    r.stop()


def _check(row: dict, rig: SystemRig) -> None:
    _record(row)
    assert row["lost"] == 0 and row["duplicated"] == 0, row
    assert row["produced"] >= 30 * len(rig.names), row  # the scenario really ran under load
    for name, n in row["nodes"].items():
        assert n["dropped"] == 0, (name, n)
        text = rig.nodes[name].log_path.read_text()  # the 64k heap held, confirmations and resends included
        assert "MemoryError" not in text and "Traceback" not in text, text[-1500:]
        assert "the gateway confirms" in text


@pytest.mark.rig(autosave_s=3600)  # the broker never saves on its own: a kill -9 loses all it held
def test_broker_kill9_gateway_down(rig):
    gw = rig.gateway().start()
    rig.start_nodes()
    for n in rig.names:
        rig.wait_seq(n, 10)
    rig.wait_stored()
    gw.stop()  # maintenance: the broker keeps the gateway's messages in its (unsaved) session
    marks = {n: rig.last_seq(n) for n in rig.names}
    for n in rig.names:
        rig.wait_seq(n, marks[n] + 12)  # PUBACKed by the broker, in no store
    rig.broker_kill9()
    time.sleep(1.0)
    rig.broker_start()  # no mosquitto.db: the gateway's session and what it held are gone
    for n in rig.names:
        rig.wait_seq(n, rig.last_seq(n) + 6)  # the nodes reconnect and send to a broker with no subscriber
    rig.gateway().start()  # back: it asks every node it knows to send its unconfirmed records again
    rig.wait_stored(timeout_s=90)
    _check(rig.account("broker_kill9_gateway_down", ["gateway stopped", "broker kill -9 (no autosave)",
                                                     "broker restarted"]), rig)


@pytest.mark.rig(autosave_s=5)  # the shipped stack's autosave
def test_broker_kill9_gateway_up(rig):
    rig.gateway().start()
    rig.start_nodes()
    for n in rig.names:
        rig.wait_seq(n, 15)
    for _ in range(2):
        rig.broker_kill9()
        time.sleep(2.0)
        rig.broker_start()
        for n in rig.names:
            rig.wait_seq(n, rig.last_seq(n) + 8)
    rig.wait_stored(timeout_s=90)
    _check(rig.account("broker_kill9_gateway_up", ["broker kill -9 x2 (gateway running)"]), rig)


def test_gateway_kill9_and_broker_graceful_restart(rig):
    gw = rig.gateway().start()
    rig.start_nodes()
    for n in rig.names:
        rig.wait_seq(n, 12)
    gw.kill9()
    for n in rig.names:
        rig.wait_seq(n, rig.last_seq(n) + 6)
    rig.gateway().start()
    rig.stack.mosquitto.restart()
    for n in rig.names:
        rig.wait_seq(n, rig.last_seq(n) + 8)
    rig.wait_stored(timeout_s=90)
    _check(rig.account("gateway_kill9_then_broker_restart", ["gateway kill -9", "broker graceful restart"]), rig)


def test_two_gateways_sharing_the_nodes_confirm_exactly_through_a_broker_kill9(rig):
    a = rig.gateway("gwa", shared_group="edge").start()
    rig.gateway("gwb", shared_group="edge").start()
    rig.start_nodes()
    for n in rig.names:
        rig.wait_seq(n, 15)
    rig.broker_kill9()
    time.sleep(1.0)
    rig.broker_start()
    for n in rig.names:
        rig.wait_seq(n, rig.last_seq(n) + 8)
    a.kill9()  # one of them dies too, and is started again (systemd's Restart=): its share waited
    for n in rig.names:  # in its persistent session, the peers' claims keep the confirmations exact
        rig.wait_seq(n, rig.last_seq(n) + 6)
    a.start()
    for n in rig.names:
        rig.wait_seq(n, rig.last_seq(n) + 6)
    rig.wait_stored(timeout_s=90)
    row = rig.account("two_gateways_broker_kill9_gateway_kill9",
                      ["2 gateways ($share)", "broker kill -9", "gateway A kill -9 and restart"])
    _check(row, rig)
    # Both stored part of every node's records (the split is real), and the nodes were confirmed past it.
    for g in ("gwa", "gwb"):
        counts = re.findall(r" records=(\d+) ", rig.gateways[g].log_path.read_text())
        assert counts and int(counts[-1]) > 0, (g, counts[-3:])  # (gwa's count is since its restart)
    assert all(n["confirmed"] >= n["produced"] - 40 for n in row["nodes"].values()), row["nodes"]


def test_node_power_cuts_and_a_silent_analyzer(rig):
    from edgemon.dev.simulator import AnalyzerSimulator, cod_profile
    rig.gateway().start()
    rig.start_nodes()
    for n in rig.names:
        rig.wait_seq(n, 10)
    for _ in range(2):  # power cut (SIGKILL, wherever the node is: a write, a publish) and power back
        fw = rig.nodes["n1"]
        fw.kill()
        time.sleep(0.5)
        fw.start()
        rig.wait_seq("n1", rig.last_seq("n1") + 5)
    port = rig.sims[1].port
    rig.sims[1].stop()  # n2's analyzer stops answering: its records carry no value, flag B
    rig.wait_seq("n2", rig.last_seq("n2") + 6)
    rig.sims[1] = AnalyzerSimulator(cod_profile(), port=port).start()
    rig.wait_seq("n2", rig.last_seq("n2") + 6)
    rig.wait_stored(timeout_s=90)
    _check(rig.account("node_power_cut_x2_analyzer_silent", ["node SIGKILL x2", "analyzer silent 3 s"]), rig)


def test_influxdb_down_while_the_nodes_poll(rig):
    rig.gateway().start()
    rig.start_nodes()
    for n in rig.names:
        rig.wait_seq(n, 10)
    rig.stack.influx.stop()  # the gateway's store takes it all and confirms it: nothing waits on the nodes
    for n in rig.names:
        rig.wait_seq(n, rig.last_seq(n) + 16)
    rig.stack.influx.start()  # same port and data: the writer drains its backlog
    rig.wait_stored(timeout_s=90)
    _check(rig.account("influxdb_down_while_nodes_poll", ["InfluxDB stopped 8 s"]), rig)
