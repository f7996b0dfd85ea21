"""Each of the gateway's own threads (journal, writer, observer) failing once with an unexpected
exception is restarted and loses nothing: every reading published before, during and after the
failure reaches InfluxDB and the observers. Against the real Mosquitto and InfluxDB."""

from __future__ import annotations

import json
import threading

import pytest

from edgemon.ingest import Gateway

from .test_ingest_against_servers import TS, record, run, wait_for  # noqa: F401 - `run` is a fixture

pytestmark = pytest.mark.integration


class Seen:
    def __init__(self):
        self.seqs: list[int] = []
        self.lock = threading.Lock()

    def on_records(self, site, node, records, receive_ms):
        with self.lock:
            self.seqs += [r.seq for r in records]

    def on_status(self, site, node, status, receive_ms):
        pass

    def on_tick(self, now_ms):
        pass


def fail_once(target, name: str, failed: list[str]):
    def wrapper(*args, **kwargs):
        if name not in failed:
            failed.append(name)
            raise RuntimeError(f"injected failure in the {name} thread")
        return target(*args, **kwargs)
    return wrapper


@pytest.mark.parametrize("thread", ["journal", "writer", "observer"])
def test_a_failing_thread_is_restarted_and_loses_nothing(run, thread):
    gw = Gateway(run.config(tick_interval_s=0.2))
    run.gateways.append(gw)
    seen = Seen()
    gw.add_observer(seen)
    failed: list[str] = []
    armed = threading.Event()
    if thread == "journal":
        commit = gw._journal.commit
        gw._journal.commit = lambda group, extra: (fail_once(commit, "journal", failed) if armed.is_set() and group
                                                   else commit)(group, extra)
    elif thread == "writer":
        write = gw._writer.write_with_retry
        gw._writer.write_with_retry = lambda lines: (fail_once(write, "writer", failed) if armed.is_set()
                                                     else write)(lines)
    gw.start()
    if thread == "observer":  # the queue exists once started; its get() is the loop's own step
        get = gw._obs_queue.get
        gw._obs_queue.get = lambda *a, **k: (fail_once(get, "observer", failed) if armed.is_set() else get)(*a, **k)

    topic = run.topic("n1", "data")
    for seq in range(1, 6):
        run.publish(topic, json.dumps(record(seq, TS + seq * 60_000, w01018=(30 + seq, "N"))))
    wait_for(lambda: len(run.readings()) == 5, "the first 5 readings")
    armed.set()
    for seq in range(6, 21):
        run.publish(topic, json.dumps(record(seq, TS + seq * 60_000, w01018=(30 + seq, "N"))))

    wait_for(lambda: failed == [thread], f"the injected failure in the {thread} thread")
    stats = wait_for(lambda: gw.stats.get(f"thread_restarts_{thread}") == 1 and gw.stats, "the restart")
    assert stats["thread_restarts"] == 1
    assert gw._threads[thread].is_alive()
    wait_for(lambda: len(run.readings()) == 20, "all 20 readings in InfluxDB", timeout=30)
    assert [r[3] for r in run.readings()] == [30.0 + s for s in range(1, 21)]
    wait_for(lambda: sorted(set(seen.seqs)) == list(range(1, 21)), "all 20 records at the observer")
    # and the gateway goes on after the restart
    run.publish(topic, json.dumps(record(21, TS + 21 * 60_000, w01018=(51, "N"))))
    wait_for(lambda: len(run.readings()) == 21, "a reading published after the restart")
