"""Local stack: our own Mosquitto and InfluxDB 1.x on free loopback ports, configs and data under a run folder.

Used by `make demo` and by the test fixtures alike. Servers are installed from Debian's packages when
missing, started as child processes, and stopped by the PIDs we hold (never by name).
"""

from __future__ import annotations

import getpass
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .procutil import child_kwargs

log = logging.getLogger("edgemon.dev.stack")

# Debian package that provides each command we need.
DEBIAN_PACKAGES = {
    "mosquitto": "mosquitto",
    "mosquitto_passwd": "mosquitto",
    "influxd": "influxdb",
    "victoria-metrics": "victoria-metrics",
    "strace": "strace",
    "mosquitto_sub": "mosquitto-clients",  # make bench: the broker's ceiling with a C client
    "mosquitto_pub": "mosquitto-clients",  # the fault suite cuts a node's power at the entry of a flash write
    "pdftotext": "poppler-utils",  # tests/gateway/report: the daily report's PDF text
}
# Debian package that provides each file we need that is not a command.
DEBIAN_FILES = {
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc": "fonts-wqy-microhei",  # the daily report's CJK font
}
SEARCH_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")


class StackError(RuntimeError):
    """A server could not be installed, configured or started; the message says which and why."""


def find_command(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in SEARCH_DIRS:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def ensure_installed(commands=None, files=None) -> dict[str, str]:
    """Return {command or file: path}; apt-get installs the Debian packages of any that are missing.
    With neither given: every command of DEBIAN_PACKAGES and every file of DEBIAN_FILES."""
    if commands is None and files is None:
        commands, files = tuple(DEBIAN_PACKAGES), tuple(DEBIAN_FILES)
    commands, files = tuple(commands or ()), tuple(files or ())
    missing = [c for c in commands if not find_command(c)] + [f for f in files if not Path(f).is_file()]
    if missing:
        packages = sorted({DEBIAN_PACKAGES.get(c) or DEBIAN_FILES[c] for c in missing})
        log.info("installing Debian packages %s (missing: %s)", " ".join(packages), " ".join(missing))
        prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (prefix + ["apt-get", "update", "-qq"],
                    prefix + ["apt-get", "install", "-y", "-qq", *packages]):
            res = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if res.returncode != 0:
                raise StackError(
                    f"`{' '.join(cmd)}` failed (exit {res.returncode}): {res.stderr.strip()[-800:]}\n"
                    f"Install them by hand: apt-get install {' '.join(packages)}")
    paths = {}
    for c in commands:
        p = find_command(c)
        if not p:
            raise StackError(f"command {c!r} still not found after installing {DEBIAN_PACKAGES[c]}")
        paths[c] = p
    for f in files:
        if not Path(f).is_file():
            raise StackError(f"file {f} still missing after installing {DEBIAN_FILES[f]}")
        paths[f] = f
    return paths


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Like the servers themselves: connections in TIME_WAIT (after a restart) do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _require_free(port: int, what: str):
    if not port_is_free(port):
        raise StackError(f"{what}: port 127.0.0.1:{port} is already in use; pick another or leave it 0 (a free one)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(check, timeout_s: float, what: str, proc: subprocess.Popen, log_path: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode} while starting; "
                             f"its log {log_path}:\n{_tail(log_path)}")
        try:
            if check():
                # Another server on the same port would answer too: make sure ours is the one still up.
                time.sleep(0.2)
                if proc.poll() is None:
                    return
                continue
        except (OSError, requests.RequestException):
            pass
        time.sleep(0.1)
    raise StackError(f"{what} did not answer within {timeout_s:.0f} s; its log {log_path}:\n{_tail(log_path)}")


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _stop_process(proc: subprocess.Popen | None, timeout_s: float = 10.0):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


from .tlslistener import TlsListener  # noqa: E402  (re-exported: tests build it from here)


@dataclass
class Mosquitto:
    """One Mosquitto broker with password authentication (never anonymous), bound to 127.0.0.1."""

    run_dir: Path
    port: int = 0
    users: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    acl_path: Path | None = None  # enforce this ACL file (as written by `edgemon node provision`)
    autosave_s: int = 5  # persistence: how often the broker saves what it holds (a kill -9 loses the rest)
    tls: TlsListener | None = None  # a TLS listener besides the plain one

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)
        self.dir = self.run_dir / "mosquitto"
        self.conf_path = self.dir / "mosquitto.conf"
        self.passwd_path = self.dir / "passwd"
        self.log_path = self.dir / "mosquitto.log"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def add_user(self, name: str, password: str | None = None) -> str:
        """Create or update a broker account; reloads a running broker. Returns the password."""
        password = password or secrets.token_urlsafe(12)
        cmds = ensure_installed(("mosquitto_passwd",))
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [cmds["mosquitto_passwd"], "-b"]
        if not self.passwd_path.exists():
            args.append("-c")
        res = subprocess.run(args + [str(self.passwd_path), name, password], capture_output=True, text=True)
        if res.returncode != 0:
            raise StackError(f"mosquitto_passwd failed for user {name!r}: {res.stderr.strip()}")
        os.chmod(self.passwd_path, 0o600)
        self.users[name] = password
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)  # Mosquitto re-reads the password file on SIGHUP
            time.sleep(0.2)
        return password

    def write_config(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "data").mkdir(exist_ok=True)
        if not self.users:
            raise StackError("Mosquitto needs at least one user: it never runs anonymous")
        self.conf_path.write_text("\n".join([
            "# generated by edgemon.dev.stack",
            f"user {getpass.getuser()}",  # stay the user we are: root would otherwise drop to 'mosquitto'
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {self.passwd_path}",
            *([f"acl_file {self.acl_path}"] if self.acl_path else []),
            f"listener {self.port} 127.0.0.1",
            *(self.tls.lines() if self.tls else []),
            "persistence true",
            f"persistence_location {self.dir / 'data'}/",
            f"autosave_interval {self.autosave_s}",
            # The gateway's persistent session keeps QoS 1 messages while it is down. Mosquitto's
            # default keeps only 100 and drops the rest. 1,000,000 is 2.7 h of 1,000 sites at one
            # record per 10 s; at ~0.5 KB per queued message (payload ~250 B + topic + bookkeeping)
            # that is ~500 MB of broker RAM at worst. See server/mosquitto.conf.
            "max_queued_messages 1000000",
            "max_queued_bytes 0",
            # Unacknowledged messages in flight per client: the gateway acknowledges in groups after
            # one fsync, so a deeper window keeps it busy (100 would cap it at 100 per disk flush).
            "max_inflight_messages 1000",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
            "",
        ]))

    def start(self, timeout_s: float = 15.0):
        cmds = ensure_installed(("mosquitto",))
        if not self.port:
            self.port = free_port()
        _require_free(self.port, "mosquitto")
        if self.tls is not None and not self.tls.port:
            self.tls.port = free_port()
        self.write_config()
        self.proc = subprocess.Popen([cmds["mosquitto"], "-c", str(self.conf_path)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.dir / "stderr.log", "ab"),
                                     **child_kwargs())

        def answers():
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True

        _wait_until(answers, timeout_s, "mosquitto", self.proc, self.log_path)
        log.info("mosquitto pid %d on %s:%d", self.proc.pid, self.host, self.port)

    def reload(self):
        """Re-read the password and ACL files (SIGHUP), as `systemctl reload mosquitto` does."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)

    def stop(self):
        _stop_process(self.proc)

    def kill9(self):
        """SIGKILL, by PID: what it held and had not saved yet (autosave_interval) is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self):
        self.stop()
        self.start()


@dataclass
class InfluxDB:
    """One InfluxDB 1.x server bound to 127.0.0.1 with its own meta/data/wal directories."""

    run_dir: Path
    port: int = 0
    database: str = "edge"
    proc: subprocess.Popen | None = None

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)
        self.dir = self.run_dir / "influxdb"
        self.conf_path = self.dir / "influxdb.conf"
        self.log_path = self.dir / "influxd.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self, rpc_port: int):
        for sub in ("meta", "data", "wal"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text("\n".join([
            "# generated by edgemon.dev.stack",
            "reporting-disabled = true",
            f'bind-address = "127.0.0.1:{rpc_port}"',
            "[meta]",
            f'  dir = "{self.dir / "meta"}"',
            "[data]",
            f'  dir = "{self.dir / "data"}"',
            f'  wal-dir = "{self.dir / "wal"}"',
            "  query-log-enabled = false",
            "[monitor]",
            "  store-enabled = false",
            "[http]",
            f'  bind-address = "127.0.0.1:{self.port}"',
            "  log-enabled = false",
            "  pprof-enabled = false",
            "[logging]",
            '  level = "warn"',
            "  suppress-logo = true",
            "",
        ]))

    def start(self, timeout_s: float = 30.0):
        cmds = ensure_installed(("influxd",))
        if not self.port:
            self.port = free_port()
        _require_free(self.port, "influxd")
        self.write_config(free_port())
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([cmds["influxd"], "run", "-config", str(self.conf_path)],
                                     stdout=logf, stderr=logf, **child_kwargs())

        def answers():
            return requests.get(self.url + "/ping", timeout=0.5).status_code == 204

        _wait_until(answers, timeout_s, "influxd", self.proc, self.log_path)
        self.create_database(self.database)
        log.info("influxd pid %d on %s (database %s)", self.proc.pid, self.url, self.database)

    def create_database(self, name: str):
        r = requests.post(self.url + "/query", params={"q": f'CREATE DATABASE "{name}"'}, timeout=10)
        if r.status_code != 200 or "error" in r.text:
            raise StackError(f"CREATE DATABASE {name} failed: {r.status_code} {r.text}")

    def stop(self):
        _stop_process(self.proc)


class LocalStack:
    """Mosquitto + InfluxDB under one run folder; a context manager that always stops what it started."""

    def __init__(self, run_dir: Path, database: str = "edge"):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.mosquitto = Mosquitto(self.run_dir)
        self.influx = InfluxDB(self.run_dir, database=database)
        self.gateway_user = "gateway"
        self.gateway_password = self.mosquitto.add_user(self.gateway_user)
        self.node_accounts: dict[str, tuple[str, str]] = {}  # "site/node" -> (user, password)

    def add_node(self, site: str, node: str, password: str | None = None) -> tuple[str, str]:
        """A broker account for one node (user `<site>.<node>`, as the demo names them), before or
        after start() (a running broker re-reads its password file). Returns (user, password): the
        node config's mqtt.user / mqtt.password."""
        from ..contract import ID_RE

        for what, ident in (("site", site), ("node", node)):
            if not ID_RE.fullmatch(ident):
                raise StackError(f"{what} {ident!r} is not an identifier ([A-Za-z0-9_-]{{1,64}}, as in the topic)")
        user = f"{site}.{node}"
        account = (user, self.mosquitto.add_user(user, password))
        self.node_accounts[f"{site}/{node}"] = account
        return account

    def start(self):
        ensure_installed()
        try:
            self.mosquitto.start()
            self.influx.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        self.mosquitto.stop()
        self.influx.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def describe(self) -> dict:
        out = {
            "mqtt": f"mqtt://{self.mosquitto.host}:{self.mosquitto.port}",
            "influxdb": self.influx.url,
            "database": self.influx.database,
            "run_dir": str(self.run_dir),
        }
        for name, (user, password) in sorted(self.node_accounts.items()):
            out[name] = f"user {user} password {password}"
        return out
