"""The gateway command: a missing alarms module and an unreachable broker are clear errors."""

import pytest
from click.testing import CliRunner

from edgemon.gateway_cli import gateway as gateway_cli


def test_alarms_section_without_the_module_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    from edgemon.gateway_cli import build_alarm_observer

    monkeypatch.setitem(sys.modules, "edgemon.alarms", None)  # as if the package were not installed
    with pytest.raises(Exception, match=r"\[alarms\] config = .* alarms module \(edgemon.alarms\) is not installed"):
        build_alarm_observer(tmp_path / "alarms.toml", tmp_path, lambda lines: None)


def test_run_reports_an_unreachable_broker(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(gateway_cli, [
        "run", "--mqtt-port", str(port), "--influx-url", f"http://127.0.0.1:{port}", "--state-dir", str(tmp_path),
    ])
    assert result.exit_code == 1
    assert f"cannot reach the MQTT broker at 127.0.0.1:{port}" in result.output
