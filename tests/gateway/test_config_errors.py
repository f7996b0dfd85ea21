"""Config files are checked whole: every problem of gateway.toml, alarms.toml, a limit profile and
keys.toml is reported at once, one line each, `FILE: field.path: what is wrong; fix: what to write`;
the commands print them all and exit 1 without a traceback."""

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgemon.alarms.config import load as load_alarms, load_profile, schema as alarms_schema
from edgemon.cli import main
from edgemon.config import load, schema as gateway_schema
from edgemon.configschema import ConfigError
from edgemon.keys import KeysError, load_keys

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"(?P<file>[^:]+): (?P<field>[^:]+): (?P<reason>.+); fix: (?P<fix>.+)")

BAD_ALARMS = """
[sms]
baud = 0
[people.duty]
phone = "12"
[sites.s]
profile = "gb18918-1a"
notfy = ["duty"]
[sites.s.overrides.w01018]
max = "fifty"
[sites.s.rules.daily]
kind = "mean"
window = "2w"
[sites.s.rules.rate]
"""

BAD_PROFILE = """
basis = "weekly"
[limits.w01018]
max = -1
min = 5
[limits.cod]
max = 1
"""

GATEWAY = """
[gateway]
id = "gw1"
state_dir = "state"
[mqtt]
host = "127.0.0.1"
[influx]
url = "http://127.0.0.1:8086"
"""


def problems(exc: ConfigError) -> dict[tuple[str, str], re.Match]:
    """(file, field) -> the parsed line; every line has file, field, reason and fix."""
    out = {}
    for line in str(exc).splitlines():
        m = LINE.fullmatch(line)
        assert m, f"not FILE: field: reason; fix: ...: {line!r}"
        out[(m["file"], m["field"])] = m
    assert len(out) == len(exc.problems)
    return out


def test_alarms_toml_reports_every_error_with_file_field_and_fix(tmp_path):
    path = tmp_path / "alarms.toml"
    path.write_text(BAD_ALARMS, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_alarms(path)
    found = problems(info.value)
    f = str(path)
    assert set(found) == {(f, "sms.baud"), (f, "people.duty.phone"), (f, "sites.s.notfy"),
                          (f, "sites.s.overrides.w01018.max"), (f, "sites.s.rules.daily.window"),
                          (f, "sites.s.rules.rate.max_per_min")}, str(info.value)
    assert found[(f, "sms.baud")]["fix"] == "write an integer > 0, e.g. baud = 115200"
    assert "did you mean notify?" in found[(f, "sites.s.notfy")]["fix"]
    assert found[(f, "sites.s.rules.daily.window")]["reason"] == "expected one of \"1h\", \"1d\", got '2w'"
    assert found[(f, "sites.s.rules.rate.max_per_min")]["reason"] == "missing (required)"


def test_limit_profile_reports_every_error_in_its_own_file(tmp_path):
    profile = tmp_path / "mine.toml"
    profile.write_text(BAD_PROFILE, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_profile(profile)
    p = str(profile)
    found = problems(info.value)
    assert set(found) == {(p, "title"), (p, "basis"), (p, "limits.w01018.min"), (p, "limits.cod")}, str(info.value)
    assert found[(p, "limits.w01018.min")]["reason"] == "min 5.0 must be below max -1.0"
    # Named from alarms.toml beside other errors there: both files' problems come together.
    alarms = tmp_path / "alarms.toml"
    alarms.write_text('[sites.s]\nprofile = "mine.toml"\ncolour = "red"\n[sites.t]\nprofile = "mine.toml"\n')
    with pytest.raises(ConfigError) as info:
        load_alarms(alarms)
    assert set(problems(info.value)) == set(found) | {(str(alarms), "sites.s.colour")}  # the profile's once


def test_gateway_toml_reports_every_error_with_those_of_its_keys_and_alarms_files(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEMON_NOT_SET", raising=False)
    keys = tmp_path / "keys.toml"
    keys.write_text('[keys]\n"s1" = "' + "ab" * 32 + '"\n"s1/n2" = "abcd"\n"s1/n3" = "zz"\n')
    os.chmod(keys, 0o600)
    (tmp_path / "alarms.toml").write_text(BAD_ALARMS, encoding="utf-8")
    path = tmp_path / "gateway.toml"
    path.write_text(GATEWAY.replace('id = "gw1"', 'id = "gw 1"').replace('host = "127.0.0.1"', "port = 0\n"
                    'password_env = "EDGEMON_NOT_SET"\nshared_grup = "x"')
                    + '[liveness]\nsilent_periods = 0.5\n[trust]\nkeys_file = "keys.toml"\n'
                    + '[alarms]\nconfig = "alarms.toml"\n[sites.s1]\nnodes = []\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    found = problems(info.value)
    g, k, a = str(path), str(keys), str(tmp_path / "alarms.toml")
    expected = {(g, "gateway.id"), (g, "mqtt.port"), (g, "mqtt.shared_grup"), (g, "mqtt.password_env"),
                (g, "liveness.silent_periods"), (g, "sites.s1.nodes"),
                (k, 'keys."s1"'), (k, 'keys."s1/n2"'), (k, 'keys."s1/n3"')}
    assert expected <= set(found), str(info.value)
    assert {f for f in found if f[0] == a} == {(a, "sms.baud"), (a, "people.duty.phone"), (a, "sites.s.notfy"),
                                               (a, "sites.s.overrides.w01018.max"), (a, "sites.s.rules.daily.window"),
                                               (a, "sites.s.rules.rate.max_per_min")}
    assert len(found) == len(expected) + 6, str(info.value)
    assert found[(g, "mqtt.port")]["fix"] == "write an integer 1-65535, e.g. port = 1883"
    assert found[(g, "mqtt.shared_grup")]["fix"].startswith("did you mean shared_group?")
    assert "EDGEMON_NOT_SET" in found[(g, "mqtt.password_env")]["fix"]


def test_keys_file_reports_every_error(tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text('[keys]\n"s1/n1" = 5\n"s1/n2" = "abcd"\n"a/b/c" = "' + "ab" * 32 + '"\n')
    os.chmod(keys, 0o644)
    with pytest.raises(KeysError) as info:
        load_keys(keys)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{keys}: mode 0644 lets group/others read it; node keys must be private; fix: chmod 600 {keys}"
    assert set(problems(ConfigError(info.value.problems[1:]))) == {
        (str(keys), 'keys."s1/n1"'), (str(keys), 'keys."s1/n2"'), (str(keys), 'keys."a/b/c"')}
    assert isinstance(info.value, ConfigError)  # one error class for every config file


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "gateway")}
    return subprocess.run([sys.executable, "-m", "edgemon.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_commands_print_every_error_and_exit_1_without_a_traceback(tmp_path):
    (tmp_path / "alarms.toml").write_text(BAD_ALARMS, encoding="utf-8")
    gw = tmp_path / "gateway.toml"
    gw.write_text(GATEWAY.replace('host = "127.0.0.1"', "port = 0") + '[alarms]\nconfig = "alarms.toml"\n')
    for args, n in ((["gateway", "check-config", str(gw)], 7), (["gateway", "run", "--config", str(gw)], 7),
                    (["alarms", "check-config", str(tmp_path / "alarms.toml")], 6)):
        r = _run(*args, cwd=tmp_path)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr + r.stdout, r.stderr
        assert f"Error: {n} config errors:" in r.stderr, r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ": " in ln and "; fix: " in ln]
        assert len(lines) == n, r.stderr
        assert any(ln.startswith(f"{tmp_path / 'alarms.toml'}: sites.s.rules.daily.window: ") for ln in lines)
    assert not (tmp_path / "state").exists()  # run refused before anything started


# --- JSON Schema: the same declarations, for editors ----------------------------------------

def conforms(value, schema: dict, path: str = "") -> list[str]:
    """The few JSON Schema keywords the generated schemas use (no validator is installed)."""
    kinds = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict}
    errs = []
    t = schema.get("type")
    if t and (not isinstance(value, kinds[t]) or (t in ("integer", "number") and isinstance(value, bool))):
        return [f"{path}: not {t}"]
    if "const" in schema and value != schema["const"]:
        errs.append(f"{path}: not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{path}: not in enum")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        errs.append(f"{path}: pattern")
    for key, ok in (("minimum", lambda v, b: v >= b), ("exclusiveMinimum", lambda v, b: v > b),
                    ("maximum", lambda v, b: v <= b), ("exclusiveMaximum", lambda v, b: v < b)):
        if key in schema and not ok(value, schema[key]):
            errs.append(f"{path}: {key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errs += conforms(item, schema["items"], f"{path}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errs += [f"{path}.{k}: required" for k in schema.get("required", []) if k not in value]
        for k, v in value.items():
            if k in props:
                errs += conforms(v, props[k], f"{path}.{k}")
            elif schema.get("additionalProperties") is False:
                errs.append(f"{path}.{k}: not allowed")
            elif isinstance(schema.get("additionalProperties"), dict):
                errs += conforms(v, schema["additionalProperties"], f"{path}.{k}")
            if "propertyNames" in schema and not re.search(schema["propertyNames"]["pattern"], k):
                errs.append(f"{path}.{k}: name")
        for branch in schema.get("allOf", []):
            if not conforms(value, branch["if"]):
                errs += conforms(value, branch["then"], path)
    return errs


def test_json_schemas_accept_the_shipped_configs_and_refuse_bad_ones(tmp_path):
    gw = tomllib.loads((ROOT / "server" / "gateway.example.toml").read_text("utf-8"))
    alarms = tomllib.loads((ROOT / "server" / "alarms.example.toml").read_text("utf-8"))
    assert conforms(gw, gateway_schema()) == []
    assert conforms(alarms, alarms_schema()) == []
    for profile in (ROOT / "gateway" / "edgemon" / "data" / "limits").glob("*.toml"):
        assert conforms(tomllib.loads(profile.read_text("utf-8")), alarms_schema("profile")) == [], profile
    assert conforms(tomllib.loads(GATEWAY.replace("[mqtt]", "[mqtt]\nport = 0")), gateway_schema()) == [
        ".mqtt.port: minimum"]
    bad = tomllib.loads(BAD_ALARMS)
    assert set(conforms(bad, alarms_schema())) >= {".sms.baud: exclusiveMinimum", ".sites.s.notfy: not allowed",
                                                   ".sites.s.rules.daily.window: not in enum"}
    r = CliRunner().invoke(main, ["config", "schema", "alarms"])
    assert r.exit_code == 0 and json.loads(r.output) == alarms_schema()


def test_uplink_and_aggregates_problems_all_at_once(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_SM4_KEY", raising=False)
    path = tmp_path / "gateway.toml"
    path.write_text("""
[gateway]
state_dir = "s"
[mqtt]
[influx]
url = "http://127.0.0.1:8086"
[aggregates]
timezone = "Asia/Shanghia"
[sites.a]
nodes = ["n1"]
medium = "air"
[uplink.platforms.prov]
host = "127.0.0.1"
port = 70000
sm4_key_env = "NO_SUCH_SM4_KEY"
[uplink.platforms.p25]
host = "127.0.0.1"
port = 9001
version = "2025"
[uplink.sites.a]
mn = "12345"
pw = "123456"
platforms = ["prov", "p25", "city"]
send = ["rtd", "week"]
[uplink.sites.b]
mn = "1"
pw = "1"
platforms = ["prov"]
""")
    with pytest.raises(ConfigError) as err:
        load(path)
    fields = [p.field for p in err.value.problems]
    assert fields == ["aggregates.timezone", "sites.a.medium", "uplink.platforms.prov.port",
                      "uplink.platforms.prov.sm4_key_env", "uplink.platforms.prov.sm4_key_env",
                      "uplink.sites.a.send[1]", "uplink.sites.a.platforms[2]", "uplink.sites.a.mn",
                      "uplink.sites.b"], fields
    text = "\n".join(str(p) for p in err.value.problems)
    assert "no platform 'city'" in text and "24 hex digits" in text and "NO_SUCH_SM4_KEY is not set" in text
    assert "site 'b' is not under [sites]" in text
