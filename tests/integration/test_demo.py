"""`make demo` as the README says it: from the root of a fresh copy of the tree, default (relative) run
folder, output piped. Three sites reach InfluxDB, the staged exceedance raises an alarm and sends its
Chinese SMS, the clear follows, SIGINT stops it with exit 0 and a summary.json, and no process is left.
And the demo fails loudly: a gateway killed under it is reported and ends it with exit code 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgemon.dev.demo import SITES

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLEAR_SMS = "【告警解除】"


def _fresh_copy(dest: Path) -> Path:
    """The tree as a clone would have it (tracked and new, not ignored, files): no .venv, no build/, no run/."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True).stdout.split(b"\0")
    for rel in filter(None, files):
        src = REPO / os.fsdecode(rel)
        if src.is_file():
            target = dest / os.fsdecode(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())
            target.chmod(src.stat().st_mode)
    return dest


class Output:
    """A child's piped output, read line by line on a thread; wait_for() a line that contains a text."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc):
        for line in proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, text: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not any(text in ln for ln in self.lines):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)


def _wait_json(path: Path, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.5)
    raise AssertionError(f"{path} did not appear within {timeout_s} s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not running either.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _stop(proc: subprocess.Popen):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_make_demo_from_a_fresh_copy_as_the_readme_says(tmp_path):
    root = _fresh_copy(tmp_path / "clone")
    assert not (root / ".venv").exists() and not (root / "run").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    proc = subprocess.Popen(["make", "demo"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, start_new_session=True)
    out = Output(proc)
    try:
        # Default timing: the exceedance 20 s after start for 20 s; the clear two clean readings later.
        assert out.wait_for(f"SMS to +8613800000001: {CLEAR_SMS}", 300), out.text()[-3000:]
        processes = _wait_json(root / "run" / "demo" / "processes.json", 10)
        os.kill(processes["demo"], signal.SIGINT)  # what Ctrl-C sends the demo
        assert proc.wait(timeout=60) == 0, out.text()[-3000:]
    finally:
        _stop(proc)
    text = out.text()
    assert "no terminal: progress as plain lines" in text
    assert "(Beijing time, UTC+8)" in text
    assert f"Grafana provisioning: {root.resolve() / 'server' / 'grafana' / 'provisioning'} (dashboards built into" in text

    summary = json.loads((root / "run" / "demo" / "summary.json").read_text())
    assert summary["failure"] is None and summary["stopped_by"] == "SIGINT"
    expected = {(s.site, n.node, p) for s in SITES for n in s.nodes for a in n.analyzers for p in a.params()}
    got = {(r["site"], r["node"], r["param"]) for r in summary["rows"]}
    assert expected <= got, f"missing in InfluxDB: {expected - got}"
    assert {r["site"] for r in summary["rows"]} == {s.site for s in SITES}

    staged = next(s for s in SITES if s.staged_breach)
    _node, _unit, param, value = staged.staged_breach
    states = [(a["site"], a["param"], a["state"]) for a in summary["alarms"] if a["site"] == staged.site]
    assert states[:2] == [(staged.site, param, "raised"), (staged.site, param, "cleared")], summary["alarms"]
    texts = [t for _num, t in summary["sms"]]
    assert any(t.startswith(f"【超标预警】{staged.name_zh}化学需氧量监测值{value}mg/L，超过限值40mg/L") for t in texts), texts
    assert any(t.startswith(f"{CLEAR_SMS}{staged.name_zh}化学需氧量") for t in texts), texts

    # The nodes ran in the board's heap: every peak is real and within it.
    # the bureau's platform (simulator) got real-time data from every site, nothing refused
    assert set(summary["platform"]) == {s.site for s in SITES}, summary["platform"]
    assert all(cns.get("2011", 0) >= 1 for cns in summary["platform"].values()), summary["platform"]
    assert summary["platform_rejected"] == 0
    assert "HJ 212 platform received from" in text
    pdfs = [p for p in summary.get("reports", []) if p.endswith(".pdf")]
    assert "report_error" not in summary, summary["report_error"]
    assert len(pdfs) == len(SITES) and all(Path(p).stat().st_size > 10_000 for p in pdfs), summary
    assert "daily compliance report: " in text
    assert summary["heap_limit"] == 64 * 1024
    assert len(summary["heap_peak"]) == sum(len(s.nodes) for s in SITES)
    assert all(0 < peak <= summary["heap_limit"] for peak in summary["heap_peak"].values()), summary["heap_peak"]

    # The operator's commands find the demo's state from its gateway.toml, from the repository root.
    listed = subprocess.run([str(root / ".venv" / "bin" / "edgemon"), "alarms", "list", "--config",
                             "run/demo/gateway.toml"], cwd=root, capture_output=True, text=True, env=env)
    assert listed.returncode == 0, listed.stderr
    events = [ln for ln in listed.stdout.splitlines() if f"{staged.site}/" in ln and param in ln]
    assert [e.split()[1] for e in events[:2]] == ["raised", "cleared"], listed.stdout

    # Relative paths were resolved: the gateway found its files, the firmware its config.
    assert "not found" not in (root / "run" / "demo" / "gateway.log").read_text()
    pids = set(summary["pids"]) | {processes["gateway"], processes["mosquitto"], processes["influxd"],
                                   *processes["nodes"].values(), processes["demo"]}
    assert len(summary["pids"]) == sum(len(s.nodes) for s in SITES) + 3
    assert [p for p in pids if _alive(p)] == []


def test_demo_reports_a_killed_gateway_and_exits_non_zero(tmp_path):
    run_dir = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "edgemon.cli", "demo", "--run-dir", str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out = Output(proc)
    try:
        assert out.wait_for("parameters from 3 sites in InfluxDB", 120), out.text()[-3000:]
        processes = _wait_json(run_dir / "processes.json", 10)
        os.kill(processes["gateway"], signal.SIGKILL)
        assert proc.wait(timeout=60) == 1, out.text()[-3000:]
    finally:
        _stop(proc)
    text = out.text()
    assert "FAILED: gateway killed by signal 9" in text, text[-2000:]
    assert "demo failed: gateway killed by signal 9" in text
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["failure"].startswith("gateway killed by signal 9") and summary["stopped_by"] == "failure"
    assert [p for p in summary["pids"] if _alive(p)] == []


def test_demo_reports_a_firmware_that_cannot_start_with_its_log_line(tmp_path, monkeypatch):
    """A node whose config the firmware refuses dies at once: the demo names it and the refusal."""
    from rich.console import Console
    import io

    from edgemon.dev import demo as demo_mod, nodeproc

    real = nodeproc.profile_node_config

    def broken(site, node, **kw):
        cfg = real(site, node, **kw)
        if site == "river_sec_03":
            cfg["poll_s"] = -1
        return cfg

    monkeypatch.setattr(demo_mod, "profile_node_config", broken)
    out = io.StringIO()
    summary = demo_mod.run_demo(tmp_path / "demo", duration_s=60, console=Console(file=out, width=200))
    assert summary["failure"].startswith("firmware river_sec_03/node01 exited with code"), summary["failure"]
    assert "poll_s" in summary["failure"] and "config error" in summary["failure"], summary["failure"]
    assert "FAILED: firmware river_sec_03/node01" in out.getvalue()
    assert [p for p in summary["pids"] if _alive(p)] == []
