"""Shared fixtures: the real Mosquitto and InfluxDB, started once per test session on free loopback ports."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgemon.dev.stack import LocalStack


@dataclass
class StackHandle:
    """What a test needs to reach the servers the session started."""

    local: LocalStack
    mqtt_host: str
    mqtt_port: int
    mqtt_user: str
    mqtt_password: str
    influx_url: str
    influx_db: str

    def new_database(self, name: str | None = None) -> str:
        """A fresh InfluxDB database, so tests never see each other's points."""
        name = name or f"t_{uuid.uuid4().hex[:10]}"
        self.local.influx.create_database(name)
        return name

    def add_mqtt_user(self, name: str, password: str | None = None) -> str:
        return self.local.mosquitto.add_user(name, password)


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> StackHandle:
    run_dir: Path = tmp_path_factory.mktemp("stack")
    local = LocalStack(run_dir)
    local.start()
    try:
        yield StackHandle(local=local, mqtt_host=local.mosquitto.host, mqtt_port=local.mosquitto.port,
                          mqtt_user=local.gateway_user, mqtt_password=local.gateway_password,
                          influx_url=local.influx.url, influx_db=local.influx.database)
    finally:
        local.stop()


def pytest_terminal_summary(terminalreporter):
    """The fault scenarios of this run as one table (also in results/faults.json)."""
    import sys
    faultlog = sys.modules.get("edgemon.dev.faultlog")
    if faultlog is not None and faultlog.THIS_RUN:
        terminalreporter.section("fault scenarios (results/faults.json)")
        terminalreporter.write_line(faultlog.table(faultlog.THIS_RUN))
