"""`edgemon report daily` refuses clearly: bad usage (exit 2), and a config error, an unknown site, a
day in the future, InfluxDB unreachable or no CJK font (exit 1), each saying what to do."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from edgemon.cli import main


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gateway_toml(tmp_path):
    def write(extra: str = "", url: str | None = None):
        path = tmp_path / "gateway.toml"
        path.write_text(
            '[gateway]\nid = "gw"\nstate_dir = "state"\n[mqtt]\nhost = "127.0.0.1"\n'
            f'[influx]\nurl = "{url or f"http://127.0.0.1:{closed_port()}"}"\ndatabase = "edge"\n'
            '[sites.plant-a]\npoll_s = 60\nnodes = ["node01"]\n[sites.river-b]\npoll_s = 10\nnodes = ["node01"]\n'
            + extra, encoding="utf-8")
        return str(path)
    return write


def run(*args):
    return CliRunner().invoke(main, ["report", "daily", *args])


@pytest.fixture
def any_font(monkeypatch, tmp_path):
    monkeypatch.setattr("edgemon.report.fonts.find_cjk_font", lambda: tmp_path / "font.ttc")


def test_usage_errors_exit_2(gateway_toml):
    cfg = gateway_toml()
    r = run("--config", cfg, "--date", "2025-11-25")
    assert r.exit_code == 2 and "--site SITE" in r.output and "--all" in r.output
    assert run("--config", cfg, "--site", "plant-a", "--all", "--date", "2025-11-25").exit_code == 2
    r = run("--config", cfg, "--site", "plant-a", "--date", "25.11.2025")
    assert r.exit_code == 2 and "YYYY-MM-DD" in r.output
    r = run("--config", cfg, "--site", "plant-a", "--date", "2025-11-25", "--tz", "Beijing")
    assert r.exit_code == 2 and "unknown time zone" in r.output


def test_an_unknown_site_names_the_known_ones(gateway_toml, any_font):
    r = run("--config", gateway_toml(), "--site", "plant-x", "--date", "2025-11-25")
    assert r.exit_code == 1
    assert "unknown site plant-x" in r.output and "plant-a, river-b" in r.output


def test_a_config_error_names_the_file_field_and_fix(gateway_toml, any_font):
    cfg = gateway_toml('[alarms]\nconfig = "missing-alarms.toml"\n')
    r = run("--config", cfg, "--all", "--date", "2025-11-25")
    assert r.exit_code == 1 and "gateway.toml: alarms.config:" in r.output and "fix:" in r.output


def test_a_day_in_the_future_is_refused(gateway_toml, any_font):
    r = run("--config", gateway_toml(), "--all", "--date", "2099-01-01")
    assert r.exit_code == 1 and "in the future" in r.output


def test_influxdb_unreachable_says_the_url(gateway_toml, any_font, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    r = run("--config", gateway_toml(url=url), "--site", "plant-a", "--date", "2025-11-25",
            "--out", str(tmp_path / "out"))
    assert r.exit_code == 1 and f"InfluxDB at {url}" in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_no_cjk_font_names_the_debian_package(monkeypatch):
    from edgemon.report import ReportError, fonts
    monkeypatch.setattr(fonts, "KNOWN", ())
    monkeypatch.setattr(fonts.shutil, "which", lambda name: None)
    with pytest.raises(ReportError, match="fonts-wqy-microhei"):
        fonts.find_cjk_font()


def test_the_day_is_in_the_aggregates_time_zone_and_another_tz_is_refused(gateway_toml, any_font):
    r = run("--config", gateway_toml(), "--all", "--date", "2025-11-25", "--tz", "UTC")
    assert r.exit_code == 1 and "[aggregates] timezone is Asia/Shanghai" in r.output, r.output

    from edgemon.config import load
    from edgemon.report.daily import report_zone
    assert report_zone(load(gateway_toml()), None) == "Asia/Shanghai"
    utc = load(gateway_toml('[aggregates]\ntimezone = "UTC"\n'))
    assert report_zone(utc, None) == "UTC" and report_zone(utc, "UTC") == "UTC"
    assert report_zone(load(gateway_toml('[aggregates]\nenabled = false\n')), "Europe/Berlin") == "Europe/Berlin"
