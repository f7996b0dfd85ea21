"""The running gateway imports only runtime modules: nothing from `edgemon.dev` (local stack, simulators,
firmware runner, demo) or `edgemon.bench`. Checked on the real service start-up, `edgemon gateway run
--config gateway.toml` (what the systemd unit runs), against the real Mosquitto and InfluxDB: the process
writes the names in its `sys.modules` when it exits after SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration


def test_gateway_service_imports_nothing_from_dev_or_bench(stack, tmp_path):
    db = stack.new_database()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[gateway]\nid = "rooms-{os.getpid()}"\nstate_dir = "state"\n'
        f'[mqtt]\nhost = "{stack.mqtt_host}"\nport = {stack.mqtt_port}\nusername = "{stack.mqtt_user}"\n'
        f'password_env = "ROOMS_MQTT_PASSWORD"\n'
        f'[influx]\nurl = "{stack.influx_url}"\ndatabase = "{db}"\n')
    env = dict(os.environ, ROOMS_MQTT_PASSWORD=stack.mqtt_password, PYTHONUNBUFFERED="1")
    modules = tmp_path / "modules.json"
    entry = ("import atexit, json, sys\n"
             f"atexit.register(lambda: open({str(modules)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
             f"sys.argv = ['edgemon', 'gateway', 'run', '--config', {str(config)!r}]\n"
             "from edgemon.cli import main\nmain()\n")
    proc = subprocess.Popen([sys.executable, "-c", entry], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "gateway up:" in line:
                break
        else:
            pytest.fail("the gateway did not connect within 30 s:\n" + "".join(lines[-20:]))
        proc.send_signal(signal.SIGTERM)
        lines.append(proc.communicate(timeout=30)[1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines)
    assert "gateway up:" in text, text[-3000:]
    assert proc.returncode == 0, text[-3000:]
    ours = [m for m in json.loads(modules.read_text()) if m.startswith("edgemon")]
    # the listing itself works: the runtime modules are in it
    assert {"edgemon.ingest", "edgemon.config", "edgemon.store", "edgemon.gateway_cli"} <= set(ours), " ".join(ours)
    outside = [m for m in ours if m.startswith(("edgemon.dev", "edgemon.bench"))]
    assert outside == [], f"the gateway service imported development or benchmark modules: {outside}"
