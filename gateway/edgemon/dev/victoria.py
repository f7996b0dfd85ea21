"""A VictoriaMetrics server of our own on 127.0.0.1, for the InfluxDB v2 API's tests (it takes line
protocol on /api/v2/write): installed from Debian when missing, stopped by its PID, as stack.py does
for Mosquitto and InfluxDB."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import requests

from .procutil import child_kwargs
from .stack import _require_free, _stop_process, _wait_until, ensure_installed, free_port

log = logging.getLogger("edgemon.dev.stack")


@dataclass
class VictoriaMetrics:
    """One VictoriaMetrics single-node server on 127.0.0.1: takes InfluxDB line protocol on
    /write and /api/v2/write, answers /api/v1/export and Prometheus queries."""

    run_dir: Path
    port: int = 0
    basic_auth: tuple[str, str] | None = None  # require HTTP basic auth (to test refused credentials)
    proc: subprocess.Popen | None = None

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)
        self.dir = self.run_dir / "victoria-metrics"
        self.log_path = self.dir / "victoria-metrics.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0):
        cmds = ensure_installed(("victoria-metrics",))
        if not self.port:
            self.port = free_port()
        _require_free(self.port, "victoria-metrics")
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [cmds["victoria-metrics"], f"-storageDataPath={self.dir / 'data'}",
             f"-httpListenAddr=127.0.0.1:{self.port}", "-retentionPeriod=100y",
             "-search.disableCache", "-loggerLevel=WARN",
             *([f"-httpAuth.username={self.basic_auth[0]}", f"-httpAuth.password={self.basic_auth[1]}"]
               if self.basic_auth else [])],
            stdout=logf, stderr=logf, **child_kwargs())

        def answers():
            return requests.get(self.url + "/health", timeout=0.5, auth=self.basic_auth).status_code == 200

        _wait_until(answers, timeout_s, "victoria-metrics", self.proc, self.log_path)
        log.info("victoria-metrics pid %d on %s", self.proc.pid, self.url)
        return self

    def stop(self):
        _stop_process(self.proc)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
