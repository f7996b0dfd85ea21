"""A local Grafana for `make demo`: the dashboards built from the demo's own gateway.toml into the run
folder, the repository's provisioning (server/grafana/provisioning) pointed at them and at the demo's
InfluxDB through the environment variables the provisioning files read, and, only when a
`grafana-server` or `grafana` binary is on PATH, Grafana itself on 127.0.0.1 (anonymous viewers).
Without one, the demo says so and prints what a Grafana would need."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

PROVISIONING = Path(__file__).resolve().parents[3] / "server" / "grafana" / "provisioning"


@dataclass
class LocalGrafana:
    provisioning: Path
    dashboards: Path
    env: dict[str, str]
    url: str | None = None
    proc: subprocess.Popen | None = None
    log: Path | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        env = " ".join(f"{k}={v or '(empty)'}" for k, v in self.env.items())
        out = [f"Grafana provisioning: {self.provisioning} (dashboards built into {self.dashboards}; {env})"]
        if self.proc is not None:
            out.append(f"Grafana on {self.url} (pid {self.proc.pid}, log {self.log}): 排口在线监测 folder")
        else:
            out.append("Grafana is not installed here (no grafana-server or grafana on PATH): dashboards not "
                       "served; dashboards/README.md says how to start one with this provisioning")
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def prepare(run_dir: Path, gateway_toml: Path, influx_url: str, database: str) -> LocalGrafana:
    from . import load_setup, write_dashboards
    out = run_dir / "grafana" / "dashboards"
    write_dashboards(load_setup(gateway_toml), out)
    env = {"EDGEMON_INFLUX_URL": influx_url, "EDGEMON_INFLUX_DB": database, "EDGEMON_INFLUX_USER": "",
           "EDGEMON_INFLUX_PASSWORD": "", "EDGEMON_DASHBOARDS_DIR": str(out)}
    return LocalGrafana(PROVISIONING, out, env)


def start_if_installed(g: LocalGrafana, run_dir: Path) -> LocalGrafana:
    """Start Grafana on a free loopback port when a binary is on PATH (never tested here: none is)."""
    binary = shutil.which("grafana-server") or shutil.which("grafana")
    if binary is None:
        return g
    from ..dev.procutil import child_kwargs
    from ..dev.stack import free_port
    port = free_port()
    home = run_dir / "grafana"
    env = dict(os.environ, **g.env, GF_PATHS_PROVISIONING=str(g.provisioning), GF_PATHS_DATA=str(home / "data"),
               GF_PATHS_LOGS=str(home / "logs"), GF_SERVER_HTTP_ADDR="127.0.0.1", GF_SERVER_HTTP_PORT=str(port),
               GF_AUTH_ANONYMOUS_ENABLED="true", GF_AUTH_ANONYMOUS_ORG_ROLE="Viewer",
               GF_SECURITY_ADMIN_PASSWORD=secrets.token_hex(12), GF_ANALYTICS_REPORTING_ENABLED="false")
    args = [binary] + (["server"] if Path(binary).name == "grafana" else [])
    for homepath in ("/usr/share/grafana", "/usr/local/share/grafana"):
        if Path(homepath, "conf", "defaults.ini").exists():
            args += ["--homepath", homepath]
            break
    g.log = home / "grafana.log"
    g.log.parent.mkdir(parents=True, exist_ok=True)
    with open(g.log, "ab") as log:
        g.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, **child_kwargs())
    g.url = f"http://127.0.0.1:{port}"
    return g
