"""Load and process helpers shared by the gateway's fault tests and its bench: a QoS 1 publisher
that plays many sites (5 readings per record, seq per node), a gateway.toml writer and a gateway
running as its own process (`edgemon gateway run --config`), stopped by its PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..dev.procutil import child_kwargs

PARAMS = ("w01018", "w21003", "w21011", "w21001", "w01001")


def record_payload(seq: int, ts: int, value: float) -> bytes:
    readings = ",".join(f'"{p}":{{"v":{value + i:.3f},"f":"N"}}' for i, p in enumerate(PARAMS))
    return f'{{"ts":{ts},"seq":{seq},"clk":"ntp","readings":{{{readings}}}}}'.encode()


class Publisher:
    """A paho client (its own network thread) publishing QoS 1 records for many sites/nodes.
    Persistent session, so messages in flight survive a broker restart."""

    def __init__(self, host: str, port: int, user: str, password: str, client_id: str):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311, clean_session=False)
        self.client.username_pw_set(user, password)
        # paho's own in-flight window can stall when publish() races its network thread; the
        # window is kept here instead (publish waits while `window` messages are unacknowledged).
        self.client.max_inflight_messages_set(0)
        self.window = 1000
        self.client.reconnect_delay_set(0.2, 2)
        self._acked = 0
        self._lock = threading.Lock()
        self.client.on_publish = self._on_publish
        self.client.connect(host, port)
        self.client.loop_start()
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self._acked += 1

    @property
    def acked(self) -> int:
        with self._lock:
            return self._acked

    def publish(self, topic: str, payload: bytes) -> None:
        while len(self.infos) - self.acked >= self.window:
            time.sleep(0.0005)
        self.infos.append(self.client.publish(topic, payload, qos=1))

    def wait_all(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.acked < len(self.infos):
            if time.monotonic() > deadline:
                raise TimeoutError(f"broker acknowledged {self.acked} of {len(self.infos)} publishes")
            time.sleep(0.02)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def gateway_toml(path: Path, *, gateway_id: str, state_dir: Path, mqtt_port: int, mqtt_user: str,
                 influx_url: str, database: str, shared_group: str | None = None, api: str = "v1",
                 health_interval_s: float = 10.0, extra: str = "") -> Path:
    lines = [
        "[gateway]", f'id = "{gateway_id}"', f'state_dir = "{state_dir}"', 'log_format = "kv"',
        f"health_interval_s = {health_interval_s}", "stop_timeout_s = 5",
        "[mqtt]", 'host = "127.0.0.1"', f"port = {mqtt_port}", f'username = "{mqtt_user}"',
        'password_env = "EDGEMON_MQTT_PASSWORD"',
    ]
    if shared_group:
        lines.append(f'shared_group = "{shared_group}"')
    lines += ["[influx]", f'api = "{api}"', f'url = "{influx_url}"']
    lines.append(f'database = "{database}"' if api == "v1" else f'bucket = "{database}"\norg = "edge"\ntoken = "t"')
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


class GatewayProcess:
    """`edgemon gateway run --config <toml>` as a child process; stderr (the log) to a file."""

    def __init__(self, config: Path, log_path: Path, mqtt_password: str):
        self.config = config
        self.log_path = log_path
        self.env = dict(os.environ, EDGEMON_MQTT_PASSWORD=mqtt_password)
        self.proc: subprocess.Popen | None = None
        self.stats: dict | None = None

    def start(self, wait_s: float = 20.0) -> GatewayProcess:
        log = open(self.log_path, "ab")
        offset = log.tell()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgemon.cli", "gateway", "run", "--config", str(self.config)],
            stdout=subprocess.PIPE, stderr=log, env=self.env, **child_kwargs())
        deadline = time.monotonic() + wait_s
        while b"gateway up" not in self.log_path.read_bytes()[offset:]:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited {self.proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway not up within {wait_s} s: {self.log_tail()}")
            time.sleep(0.05)
        return self

    def log_tail(self, n: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout: float = 30.0) -> dict | None:
        """SIGTERM (graceful) and the stats it prints."""
        if self.proc is None or self.proc.poll() is not None:
            return self.stats
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout)
        try:
            self.stats = json.loads(out)
        except ValueError:
            self.stats = None
        return self.stats

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid
