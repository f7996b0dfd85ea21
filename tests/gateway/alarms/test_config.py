"""Limit profiles and alarms.toml: the shipped data loads; bad input is refused naming file and field."""

import pytest
from click.testing import CliRunner

from edgemon.alarms.config import available_profiles, load, load_profile, PROFILE_DIR
from edgemon.configschema import ConfigError
from edgemon.cli import main

from .helpers import config

EXAMPLE = "server/alarms.example.toml"


def test_shipped_profiles_hold_the_standards_numbers():
    assert set(available_profiles()) >= {"gb18918-1a", "gb18918-1b", "laixi-plant", "gb3838-i", "gb3838-ii",
                                         "gb3838-iii", "gb3838-iv", "gb3838-v"}
    a = load_profile(PROFILE_DIR / "gb18918-1a.toml").limits
    assert (a["w01018"].max, a["w21003"].max, a["w21003"].cold_max, a["w01001"].min) == (50, 5, 8, 6)
    b = load_profile(PROFILE_DIR / "gb18918-1b.toml").limits
    assert (b["w01018"].max, b["w21003"].max, b["w21003"].cold_max) == (60, 8, 15)
    lx = load_profile(PROFILE_DIR / "laixi-plant.toml").limits
    assert (lx["w01018"].max, lx["w21003"].max) == (40, 2)
    v = load_profile(PROFILE_DIR / "gb3838-v.toml").limits
    i = load_profile(PROFILE_DIR / "gb3838-i.toml").limits
    assert (v["w01018"].max, v["w21003"].max, v["w21011"].max, v["w01009"].min) == (40, 2.0, 0.4, 2)
    assert (i["w01018"].max, i["w21003"].max, i["w21017"].max, i["w01009"].min) == (15, 0.15, 1.0, 7.5)


def test_example_config_loads():
    cfg = load(EXAMPLE)
    assert set(cfg.sites) == {"laixi_wwtp", "enterprise_a", "river_xiaogu"}
    assert cfg.sites["enterprise_a"].site.limits["w01018"].max == 50.0  # the override


def test_override_merges_with_profile_limit(tmp_path):
    cfg = config(tmp_path, '[sites.s]\nprofile = "gb18918-1a"\n[sites.s.overrides.w21003]\nmax = 4.0\n'
                           '[sites.s.overrides.w21011]\nmax = 1.0\n')
    lim = cfg.sites["s"].site.limits
    assert (lim["w21003"].max, lim["w21003"].cold_max, lim["w21011"].max) == (4.0, 8.0, 1.0)


@pytest.mark.parametrize("sites, field", [
    ('[sites.s]\nprofile = "gb9999"\n', "sites.s.profile"),
    ('[sites.s]\nprofile = "gb18918-1a"\n[sites.s.overrides.w01001]\nmin = 9.5\n', "sites.s.overrides.w01001.min"),
    ('[sites.s]\nprofile = "gb18918-1a"\n[sites.s.overrides.w01018]\nmax = "fifty"\n', "sites.s.overrides.w01018.max"),
    ('[sites.s]\nprofile = "gb18918-1a"\n[sites.s.overrides.cod]\nmax = 5\n', "sites.s.overrides.cod"),
    ('[sites.s]\nprofile = "gb18918-1a"\n[sites.s.rules.instant]\nraise_n = 0\n', "sites.s.rules.instant.raise_n"),
    ('[sites.s]\nprofile = "gb18918-1a"\n[sites.s.rules.instant]\nparams = ["w21017"]\n', "sites.s.rules.instant.params[0]"),
    ('[sites.s]\nprofile = "gb18918-1a"\n[sites.s.rules.daily]\nkind = "mean"\nwindow = "2w"\n', "sites.s.rules.daily.window"),
    ('[sites.s]\nprofile = "gb18918-1a"\n[sites.s.rules.bogus]\n', "sites.s.rules.bogus"),
    ('[sites.s]\nprofile = "gb18918-1a"\n[sites.s.rules.flag]\nflags = ["X"]\n', "sites.s.rules.flag.flags[0]"),
    ('[sites.s]\nprofile = "gb18918-1a"\nroles = { duty = ["nobody"] }\n', "sites.s.roles.duty[0]"),
    ('[sites.s]\nprofile = "gb18918-1a"\nnotify = ["boss"]\n', "sites.s.notify[0]"),
    ('[sites."bad site"]\nprofile = "gb18918-1a"\n', 'sites.bad site'),
    ('[sites.s]\nprofile = "gb18918-1a"\ncolour = "red"\n', "sites.s.colour"),
])
def test_bad_config_is_refused_with_file_and_field(tmp_path, sites, field):
    with pytest.raises(ConfigError) as e:
        config(tmp_path, sites)
    assert str(e.value).startswith(str(tmp_path / "alarms.toml") + ": " + field), str(e.value)


@pytest.mark.parametrize("body, field", [
    ('title = "x"\n[limits.w01018]\nmax = -1\nmin = 5\n', "limits.w01018.min"),
    ('title = "x"\n[limits.w21003]\nmax = 5\ncold_max = 8\n', "limits.w21003.cold_max"),
    ('title = "x"\nbasis = "weekly"\n[limits.w01018]\nmax = 5\n', "basis"),
    ('[limits.w01018]\nmax = 5\n', "title"),
    ('title = "x"\n[limits.w01018]\nmax = 5\nmean = 3\n', "limits.w01018.mean"),
])
def test_bad_profile_file_is_refused_with_file_and_field(tmp_path, body, field):
    (tmp_path / "mine.toml").write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        config(tmp_path, '[sites.s]\nprofile = "mine.toml"\n')
    assert str(e.value).startswith(f"{tmp_path / 'mine.toml'}: {field}"), str(e.value)


def test_check_config_command(tmp_path):
    r = CliRunner().invoke(main, ["alarms", "check-config", EXAMPLE])
    assert r.exit_code == 0 and "laixi_wwtp (莱西市污水处理厂): profile laixi-plant" in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[sites.s]\nprofile = "gb18918-1a"\n[sites.s.rules.instant]\nhysteresis = 2\n')
    r = CliRunner().invoke(main, ["alarms", "check-config", str(bad)])
    assert r.exit_code == 1 and f"{bad}: sites.s.rules.instant.hysteresis" in r.output
