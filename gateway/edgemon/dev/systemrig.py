"""The whole system under faults (tests/integration/test_system_faults.py, `make test-faults`): a
private Mosquitto and InfluxDB 1.x, virtual nodes (the real firmware on the MicroPython unix port,
each with its flash queue and its own simulated COD analyzer) and the gateway as its own process
(`edgemon gateway run`), so any of them can be killed by PID.

The account at the end of a scenario (SystemRig.account), per node, after the nodes are stopped:
produced = the node's last seq (its flash queue); stored = its records in InfluxDB (one `reading`
point per record, at the record's own sample time, so distinct times are distinct records);
pending = records still on the node's flash and not in InfluxDB (not lost: they go at its next
boot); lost = produced - stored - pending; duplicated = points no record accounts for (a record
stored twice with different content would show as one more point).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

from ..bench.loadgen import GatewayProcess, gateway_toml
from .nodeproc import FIRMWARE_DIR, FirmwareProcess, cod_node_config
from .simulator import AnalyzerSimulator, cod_profile
from .stack import LocalStack

SITE = "faults"

# Run under CPython with the firmware's own FlashQueue: what a node holds on flash.
_READ_QUEUE = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/host"]
from flashqueue import FlashQueue
q = FlashQueue(sys.argv[2])
print(json.dumps({"last_seq": q.last_seq, "acked": q.acked, "dropped": q.dropped,
                  "pending_ts": [r[1] for r in q.peek(10 ** 7)]}))
"""


def node_queue(state_dir: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", _READ_QUEUE, str(FIRMWARE_DIR), str(state_dir)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"cannot read the flash queue in {state_dir}: {r.stderr[-400:]}")
    return json.loads(r.stdout)


class SystemRig:
    def __init__(self, run_dir: Path, nodes: int = 3, poll_s: float = 0.5, autosave_s: int = 5,
                 confirm: bool = True, heapsize: str = "64k"):
        self.dir = Path(run_dir)
        self.tag = uuid.uuid4().hex[:6]
        self.stack = LocalStack(self.dir / "stack")
        self.stack.mosquitto.autosave_s = autosave_s
        self.stack.start()
        self.db = f"faults_{self.tag}"
        self.stack.influx.create_database(self.db)
        self.names = [f"n{i + 1}" for i in range(nodes)]
        self.keys = {name: os.urandom(32) for name in self.names}
        kf = self.dir / "keys.toml"
        kf.write_text("[keys]\n" + "".join(f'"{SITE}/{n}" = "{k.hex()}"\n' for n, k in self.keys.items()))
        os.chmod(kf, 0o600)
        self.keys_file = kf
        self.confirm = confirm
        self.sims: list[AnalyzerSimulator] = []
        self.nodes: dict[str, FirmwareProcess] = {}
        self.gateways: dict[str, GatewayProcess] = {}
        for name in self.names:
            sim = AnalyzerSimulator(cod_profile()).start()
            self.sims.append(sim)
            user, password = self.stack.add_node(SITE, name)
            cfg = cod_node_config(SITE, name, mqtt_port=self.stack.mosquitto.port, mqtt_user=user,
                                  mqtt_password=password, analyzer_port=sim.port, state_dir=self.dir / "nodes",
                                  poll_s=poll_s, timeout_ms=300)
            cfg["key"] = self.keys[name].hex()
            cfg["mqtt"].update(keepalive=5, timeout_ms=2000)
            self.nodes[name] = FirmwareProcess(cfg, self.dir / f"{name}.json", heapsize=heapsize,
                                               log_path=self.dir / f"{name}.log")

    # ---- parts

    def gateway(self, gid: str = "gw", shared_group: str | None = None) -> GatewayProcess:
        gw = self.gateways.get(gid)
        if gw is None:
            extra = (f'[trust]\nkeys_file = "{self.keys_file}"\n')
            cfg = gateway_toml(self.dir / f"{gid}.toml", gateway_id=f"{gid}-{self.tag}", state_dir=self.dir / f"state-{gid}",
                               mqtt_port=self.stack.mosquitto.port, mqtt_user=self.stack.gateway_user,
                               influx_url=self.stack.influx.url, database=self.db, shared_group=shared_group,
                               health_interval_s=2.0, extra=extra)
            if not self.confirm:
                text = cfg.read_text().replace("[gateway]\n", "[gateway]\nconfirm = false\n", 1)
                cfg.write_text(text)
            gw = self.gateways[gid] = GatewayProcess(cfg, self.dir / f"{gid}.log", self.stack.gateway_password)
        return gw

    def start_nodes(self) -> None:
        for fw in self.nodes.values():
            fw.start()

    def broker_kill9(self) -> None:
        self.stack.mosquitto.kill9()

    def broker_start(self) -> None:
        self.stack.mosquitto.start()  # the same port, config and persistence folder

    def last_seq(self, name: str) -> int:
        seqs = [int(ln.split()[1][4:]) for ln in list(self.nodes[name].lines) if ln.startswith("cycle seq=")]
        return max(seqs, default=0)

    def wait_seq(self, name: str, seq: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.last_seq(name) < seq:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} did not reach seq {seq} in {timeout_s} s: "
                                     + "\n".join(list(self.nodes[name].lines)[-10:]))
            time.sleep(0.1)

    def stored_times(self, name: str) -> list[int]:
        r = requests.get(self.stack.influx.url + "/query", timeout=10, params={
            "db": self.db, "epoch": "ms",
            "q": f"SELECT flag FROM reading WHERE site = '{SITE}' AND node = '{name}' AND param = 'w01018'"})
        r.raise_for_status()
        out: list[int] = []
        for res in r.json()["results"]:
            for series in res.get("series", []) or []:
                out.extend(v[0] for v in series["values"])
        return out

    def wait_stored(self, timeout_s: float = 120.0, behind: int = 3) -> None:
        """Until InfluxDB holds every node's records but the last `behind` (the ones in flight)."""
        deadline = time.monotonic() + timeout_s
        while True:
            late = {n: (len(self.stored_times(n)), self.last_seq(n)) for n in self.names}
            if all(s >= last - behind for s, last in late.values()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not stored within {timeout_s} s: (stored, produced) {late}")
            time.sleep(0.5)

    # ---- the end

    def account(self, scenario: str, faults: list[str]) -> dict:
        """Stop the nodes, let the gateway store what is in flight, and compare (module docstring)."""
        for fw in self.nodes.values():
            fw.stop()
        time.sleep(3.0)  # what the last PUBACKs covered reaches InfluxDB (the writer batches)
        produced = stored = pending = lost = duplicated = 0
        per_node = {}
        for name in self.names:
            q = node_queue(self.dir / "nodes" / SITE / name)
            times = set(self.stored_times(name))
            waiting = [ts for ts in q["pending_ts"] if ts not in times]
            n_lost = q["last_seq"] - len(times) - len(waiting)
            per_node[name] = {"produced": q["last_seq"], "stored": len(times), "pending": len(waiting),
                              "confirmed": q["acked"], "dropped": q["dropped"]}
            produced += q["last_seq"]
            stored += len(times)
            pending += len(waiting)
            lost += max(n_lost, 0)
            duplicated += max(-n_lost, 0)
        return {"scenario": scenario, "faults": faults, "produced": produced, "stored": stored,
                "lost": lost, "duplicated": duplicated, "pending_on_nodes": pending, "nodes": per_node}

    def stop(self) -> None:
        for fw in self.nodes.values():
            fw.stop()
        for gw in self.gateways.values():
            if gw.proc is not None and gw.proc.poll() is None:
                gw.kill9()
        for sim in self.sims:
            sim.stop()
        self.stack.stop()
