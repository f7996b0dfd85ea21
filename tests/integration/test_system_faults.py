"""The whole system under faults, the short form inside `make test` (`make test-faults` runs it too):
real Mosquitto and InfluxDB, three virtual nodes (the real firmware at 64k, its flash queue, its
simulated analyzer, polling every 0.5 s), the gateway as its own process. Each scenario kills what
it names by PID, then compares every record the nodes produced with what is in InfluxDB
(edgemon.dev.systemrig.SystemRig.account), prints one line and adds its row to results/faults.json.

The broker kill -9 scenarios are the hole end-to-end confirmation closes: Mosquitto acknowledges a
QoS 1 publish before anything is on its disk, so what it held since its last autosave is gone;
the nodes still hold it (unconfirmed) and send it again."""

from __future__ import annotations

import os
import re
import time

import pytest

from edgemon.dev import faultlog
from edgemon.dev.systemrig import SystemRig

pytestmark = pytest.mark.integration

LONG = os.environ.get("EDGEMON_FAULTS_LONG", "") not in ("", "0")  # make test-faults: the long forms


LONG_ONLY = pytest.mark.skipif(not LONG, reason="long form only (make test-faults): make test covers it in "
                               "other scenarios, and stays under 20 minutes")


def _record(row: dict) -> None:
    print("scenario {scenario}: faults {faults}, produced {produced}, stored {stored}, lost {lost}, "
          "duplicated {duplicated}, pending on nodes {pending_on_nodes}".format(**row))
    faultlog.record({k: row[k] for k in ("scenario", "faults", "produced", "stored", "lost", "duplicated")})


@pytest.fixture
def rig(tmp_path, request):
    marker = request.node.get_closest_marker("rig")
    r = SystemRig(tmp_path, **(marker.kwargs if marker else {}))
    yield r
    r.stop()


def _check(row: dict, rig: SystemRig) -> None:
    _record(row)
    assert row["lost"] == 0 and row["duplicated"] == 0, row
    # the scenario really ran under load (25 records a node: its fault windows are 5-20 s at a 0.5 s poll;
    # a machine busy with other work produced 87 of 3 x 30 once, nothing lost)
    assert row["produced"] >= 25 * len(rig.names), row
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


@LONG_ONLY  # (make test: gateway kill -9 in test_gateway_faults.py, broker kill -9 above)
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




@LONG_ONLY
def test_node_power_cuts_and_a_silent_analyzer(rig):
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
    rig.buses["n2"].set_fault(1, "silent")  # n2's analyzer stops answering: its records carry no value
    rig.wait_seq("n2", rig.last_seq("n2") + 6)
    rig.buses["n2"].set_fault(1, None)
    rig.wait_seq("n2", rig.last_seq("n2") + 6)
    rig.wait_stored(timeout_s=90)
    _check(rig.account("node_power_cut_x2_analyzer_silent", ["node SIGKILL x2", "analyzer silent 3 s"]), rig)


@LONG_ONLY  # (make test: InfluxDB down in test_gateway_faults.py)
@pytest.mark.timeout(900 if LONG else 300)
def test_influxdb_down_while_the_nodes_poll(rig):
    down_s = 180 if LONG else 8
    rig.gateway().start()
    rig.start_nodes()
    for n in rig.names:
        rig.wait_seq(n, 10)
    rig.stack.influx.stop()  # the gateway's store takes it all and confirms it: nothing waits on the nodes
    time.sleep(down_s)
    rig.stack.influx.start()  # same port and data: the writer drains its backlog
    rig.wait_stored(timeout_s=90 + down_s)
    _check(rig.account("influxdb_down_while_nodes_poll", [f"InfluxDB stopped {down_s} s"]), rig)


# A node's network cut, the outage shortened by polling faster: the node holds what an hour at a
# 12 s poll (short form) or at a 1 s poll (make test-faults) produces, and replays it for real.
@pytest.mark.timeout(1800 if LONG else 300)
@pytest.mark.rig(poll_s=0.1)
def test_a_nodes_network_cut_for_an_hour(rig):
    held = 3600 if LONG else 300
    rig.gateway().start()
    rig.start_nodes()
    for n in rig.names:
        rig.wait_seq(n, 20)
    start = rig.last_seq("n1")
    rig.links["n1"].cut()  # no FIN, no RST: the node finds out by its keepalive
    rig.wait_seq("n1", start + held, timeout_s=held * 0.3 + 60)
    assert len(rig.stored_times("n1")) <= start + 5  # (nothing went through the cut)
    rig.links["n1"].restore()
    rig.wait_stored(timeout_s=120)
    row = rig.account("node_network_cut_1h", [f"n1 network cut while it took {held} records (an hour at "
                                                  f"{3600 // held} s polling)"])
    _check(row, rig)
    text = rig.nodes["n1"].log_path.read_text()
    assert re.search(r"queue=\d+ dropped=0 mqtt=down", text), text[-1500:]  # it saw the link go


def test_a_nodes_power_cut_during_a_flash_write(rig):
    rig.gateway().start()
    rig.start_nodes()
    for n in rig.names:
        rig.wait_seq(n, 10)
    for _ in range(2):
        rig.power_cut_during_write("n1")
        rig.nodes["n1"].start()  # power back: recovery cuts the torn bytes, the rest goes on
        rig.wait_seq("n1", rig.last_seq("n1") + 10)
    rig.wait_stored(timeout_s=90)
    row = rig.account("node_power_cut_during_flash_write_x2",
                      ["n1 SIGKILL x2 at the entry of a flash-queue write, torn bytes left on its segment"])
    _check(row, rig)
    cuts = re.findall(r"cut (\d+) torn byte", rig.nodes["n1"].log_path.read_text())
    assert len(cuts) == 2 and all(int(c) > 0 for c in cuts), cuts


def test_analyzer_timeouts_crc_errors_and_exception_replies(rig):
    rig.gateway().start()
    rig.start_nodes()
    for n in rig.names:
        rig.wait_seq(n, 10)
    faults = {"n1": "silent", "n2": "bad_crc", "n3": "exception"}
    marks = {}
    for n, mode in faults.items():
        rig.buses[n].set_fault(1, mode)
        marks[n] = rig.last_seq(n)
    for n in rig.names:
        rig.wait_seq(n, marks[n] + 6)
    for n in rig.names:
        rig.buses[n].set_fault(1, None)
    for n in rig.names:
        rig.wait_seq(n, rig.last_seq(n) + 6)
    rig.wait_stored(timeout_s=90)
    _check(rig.account("analyzer_timeout_crc_exception", ["n1 analyzer silent", "n2 CRC errors",
                                                            "n3 exception replies (04)"]), rig)
    # The records taken while the analyzers failed are stored, and carry no value for COD.
    for n in rig.names:
        assert rig.values_missing(n) >= 5, (n, rig.values_missing(n))


@pytest.mark.rig(alarms=True)
def test_gsm_modem_unplugged_while_an_alarm_fires(rig):
    rig.gateway().start()
    rig.start_nodes()
    for n in rig.names:
        rig.wait_seq(n, 6)
    rig.modem.unplug()
    rig.buses["n3"].set_value(1, "w01018", 120.0)  # over the 50 mg/L limit: raised after 2 readings
    rig.wait_seq("n3", rig.last_seq("n3") + 8)
    assert rig.modem.texts() == []
    rig.modem.replug()
    assert rig.modem.wait_for(1, timeout_s=60), rig.gateways["gw"].log_tail()
    rig.wait_seq("n3", rig.last_seq("n3") + 10)  # the alarm goes on: no second SMS for it
    texts = rig.modem.texts()
    assert len(texts) == 1 and "120mg/L" in texts[0][1] and "超过限值50mg/L" in texts[0][1], texts
    _check(rig.account("gsm_modem_unplugged_during_alarm", ["GSM modem unplugged", "n3 COD over its limit",
                                                              "modem plugged back"]), rig)


@LONG_ONLY  # (make test: each of its faults alone, above)
def test_a_random_mix_of_faults(rig):
    """Seeded (EDGEMON_FAULTS_SEED): faults drawn one after another from those above, each with
    the system still under load; 4 in the short form, 12 in make test-faults."""
    import os
    import random
    seed = int(os.environ.get("EDGEMON_FAULTS_SEED", "20261207"))
    rnd = random.Random(seed)
    gw = rig.gateway().start()
    rig.start_nodes()
    for n in rig.names:
        rig.wait_seq(n, 8)
    done = []
    kinds = ["broker_kill9", "broker_restart", "gateway_kill9", "influx_stop", "node_power_cut",
             "network_cut", "analyzer_fault"]
    for _ in range(12 if LONG else 4):
        kind = rnd.choice(kinds)
        node = rnd.choice(rig.names)
        if kind == "broker_kill9":
            rig.broker_kill9()
            time.sleep(rnd.uniform(0.5, 2))
            rig.broker_start()
        elif kind == "broker_restart":
            rig.stack.mosquitto.restart()
        elif kind == "gateway_kill9":
            gw.kill9()
            time.sleep(rnd.uniform(0.5, 3))
            gw.start()
        elif kind == "influx_stop":
            rig.stack.influx.stop()
            time.sleep(rnd.uniform(2, 6))
            rig.stack.influx.start()
        elif kind == "node_power_cut":
            rig.nodes[node].kill()
            time.sleep(0.3)
            rig.nodes[node].start()
        elif kind == "network_cut":
            rig.links[node].cut()
            time.sleep(rnd.uniform(3, 10))
            rig.links[node].restore()
        else:
            mode = rnd.choice(["silent", "bad_crc", "exception"])
            rig.buses[node].set_fault(1, mode)
            time.sleep(rnd.uniform(1, 3))
            rig.buses[node].set_fault(1, None)
            kind += f" ({mode})"
        done.append(kind + ("" if kind.split()[0] not in ("node_power_cut", "network_cut", "analyzer_fault")
                            else f" {node}"))
        for n in rig.names:
            rig.wait_seq(n, rig.last_seq(n) + 4)
    rig.wait_stored(timeout_s=120)
    _check(rig.account("random_mix", [f"seed {seed}"] + done), rig)


@LONG_ONLY  # (make test: the shared group through a broker kill -9, above)
def test_a_shared_group_member_gone_for_good_is_retired_and_nothing_is_lost(rig):
    import subprocess
    import sys
    a = rig.gateway("gwa", shared_group="edge").start()
    b = rig.gateway("gwb", shared_group="edge").start()
    rig.start_nodes()
    for n in rig.names:
        rig.wait_seq(n, 12)
    b.kill9()  # its disk died with it: it never comes back, its session still takes a share
    for n in rig.names:
        rig.wait_seq(n, rig.last_seq(n) + 8)
    gone = f"gwb-{rig.tag}"

    def retire():
        return subprocess.run([sys.executable, "-m", "edgemon.cli", "gateway", "retire", "--config", str(a.config), gone],
                              env=a.env, capture_output=True, text=True, timeout=60)

    r = retire()
    assert r.returncode == 0 and f"{gone}: broker session dropped; 3 retained claim(s) cleared" in r.stdout, (r.stdout, r.stderr)
    again = retire()
    assert "broker session was not there; 0 retained claim(s) cleared" in again.stdout, again.stdout
    own = subprocess.run([sys.executable, "-m", "edgemon.cli", "gateway", "retire", "--config", str(a.config),
                          f"gwa-{rig.tag}"], env=a.env, capture_output=True, text=True, timeout=60)
    assert own.returncode == 1 and "this config's own gateway id" in own.stderr, own.stderr
    # What the dead member's session held was never confirmed: the nodes send it again (after 30 s
    # without progress) and the remaining member stores it.
    rig.wait_stored(timeout_s=150)
    row = rig.account("shared_group_member_gone_for_good_retired",
                      ["2 gateways ($share)", "gateway B kill -9, never back", "edgemon gateway retire B"])
    _check(row, rig)
