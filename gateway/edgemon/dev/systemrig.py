"""The whole system under faults (tests/integration/test_system_faults.py, `make test-faults`): a
private Mosquitto and InfluxDB 1.x, virtual nodes (the real firmware on the MicroPython unix port,
each with its flash queue, its own simulated RS-485 line with a COD analyzer whose faults and value
the scenario sets, and its own cuttable network link, netcut.py), the gateway as its own process
(`edgemon gateway run`), so any of them can be killed by PID, and optionally COD limits with SMS
through a simulated GSM modem (alarms=True).

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
from .bussim import BusSimulator
from .modemsim import ModemSimulator
from .netcut import NetLink
from .nodeproc import FIRMWARE_DIR, FirmwareProcess, profile_analyzer, profile_node_config
from .stack import LocalStack, ensure_installed

SITE = "faults"
DUTY_PHONE = "+8613800000009"

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
                 confirm: bool = True, heapsize: str = "64k", alarms: bool = False):
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
        # Each node: its own RS-485 line (Modbus RTU over TCP) with one COD analyzer at unit 1, a
        # value under the COD limit (the fault scenarios set faults and values on it), and its own
        # network link to the broker (cut() for an outage).
        self.buses: dict[str, BusSimulator] = {}
        self.links: dict[str, NetLink] = {}
        self.nodes: dict[str, FirmwareProcess] = {}
        self.gateways: dict[str, GatewayProcess] = {}
        for name in self.names:
            bus = BusSimulator(framing="rtu")
            bus.add(1, "cod_generic")
            bus.set_value(1, "w01018", 30.0)
            self.buses[name] = bus.start()
            self.links[name] = NetLink(self.stack.mosquitto.port)
            user, password = self.stack.add_node(SITE, name)
            cfg = profile_node_config(SITE, name, mqtt_port=self.links[name].port, mqtt_user=user,
                                      mqtt_password=password, state_dir=self.dir / "nodes", poll_s=poll_s,
                                      analyzers=[profile_analyzer("cod", "cod_generic", 1, bus.port, timeout_ms=300)])
            cfg["key"] = self.keys[name].hex()
            cfg["mqtt"].update(keepalive=5, timeout_ms=2000)
            self.nodes[name] = FirmwareProcess(cfg, self.dir / f"{name}.json", heapsize=heapsize,
                                               log_path=self.dir / f"{name}.log")
        self.modem: ModemSimulator | None = None
        self.alarms_extra = ""
        if alarms:  # COD limits (GB 18918 class 1A: 50 mg/L), SMS to one person through a GSM modem
            (self.dir / "dev").mkdir(exist_ok=True)
            self.modem = ModemSimulator(self.dir / "dev").start()
            (self.dir / "alarms.toml").write_text("\n".join([
                "[sms]", f'port = "{self.modem.path}"', "send_timeout_s = 10", "",
                "[people.duty]", 'name = "值班员"', f'phone = "{DUTY_PHONE}"', "",
                f"[sites.{SITE}]", 'name = "故障演练"', 'profile = "gb18918-1a"', 'roles = { duty = ["duty"] }',
                'notify = ["duty"]', f"[sites.{SITE}.rules.instant]", "raise_n = 2", "clear_n = 2", ""]),
                encoding="utf-8")
            self.alarms_extra = f'[alarms]\nconfig = "{self.dir / "alarms.toml"}"\n'

    # ---- parts

    def gateway(self, gid: str = "gw", shared_group: str | None = None) -> GatewayProcess:
        gw = self.gateways.get(gid)
        if gw is None:
            extra = f'[trust]\nkeys_file = "{self.keys_file}"\n' + self.alarms_extra
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

    def power_cut_during_write(self, name: str, after_writes: int = 4, torn: bytes = b"\x1f\x8c\x02") -> int:
        """Cut the node's power at the entry of a flash-queue write: it is started again under strace,
        which SIGKILLs it as it enters its `after_writes`-th write to the open segment (the record
        being written is not on flash, nothing of it was published); then the torn bytes a write
        interrupted half way leaves are added to the segment. Returns the seq that record would
        have had. Start the node again to see it recover (it cuts the torn bytes, keeps the rest)."""
        fw = self.nodes[name]
        fw.kill()
        qdir = self.dir / "nodes" / SITE / name
        seg = max(qdir.glob("*.q"), key=lambda p: int(p.stem, 16))
        strace = ensure_installed(("strace",))["strace"]
        fw.wrap = [strace, "-f", "-qq", "-o", os.devnull, "-P", str(seg), "-e", "trace=write",
                   "-e", f"inject=write:signal=KILL:when={after_writes}"]
        try:
            fw.start()
            deadline = time.monotonic() + 60
            while fw.proc.poll() is None:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} made no {after_writes} writes to {seg.name} in 60 s")
                time.sleep(0.05)
        finally:
            fw.wrap = []
        if fw.proc.returncode != -9 and fw.proc.returncode != 137:
            raise AssertionError(f"{name} under strace exited {fw.proc.returncode}, not by the injected SIGKILL")
        with open(seg, "ab") as f:
            f.write(torn)
        return self.last_seq(name) + 1

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

    def values_missing(self, name: str) -> int:
        """Stored records of the node that carry no COD value (taken while its analyzer failed)."""
        r = requests.get(self.stack.influx.url + "/query", timeout=10, params={
            "db": self.db, "q": f"SELECT flag, value FROM reading WHERE site = '{SITE}' AND node = '{name}' "
                                f"AND param = 'w01018'"})
        r.raise_for_status()
        n = 0
        for res in r.json()["results"]:
            for series in res.get("series", []) or []:
                n += sum(1 for v in series["values"] if v[2] is None)
        return n

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
        for bus in self.buses.values():
            bus.stop()
        for link in self.links.values():
            link.close()
        if self.modem is not None:
            self.modem.stop()
        self.stack.stop()
