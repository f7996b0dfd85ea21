"""`edgemon dashboards publish` against a stand-in for Grafana's HTTP API: a local http.server on
127.0.0.1 that answers like Grafana does for the calls used (health, datasources by uid, folders,
dashboards/db) and records every request. It is NOT a real Grafana (none can run here): it shows what
the command sends (the datasource's database twice, the secret in secureJsonData, folderUid,
overwrite, no numeric id, the token) and how it reports failures, not that Grafana accepts it."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from edgemon.cli import main
from edgemon.dashboards import FILES, build_all, demo_setup
from edgemon.dashboards.influxql import DATASOURCE_UID
from edgemon.dashboards.publish import PublishError, publish


class FakeGrafana:
    def __init__(self, token="glsa_test"):
        self.token, self.requests, self.datasources, self.folders, self.dashboards = token, [], {}, {}, {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _answer(self, code, doc):
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                fake.requests.append((method, self.path, body, self.headers.get("Authorization")))
                if self.path == "/api/health":
                    return self._answer(200, {"database": "ok", "version": "11.6.0"})
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self._answer(401, {"message": "Invalid API key"})
                if self.path.startswith("/api/datasources/uid/"):
                    uid = self.path.rsplit("/", 1)[1]
                    if method == "GET":
                        return self._answer(200, fake.datasources[uid]) if uid in fake.datasources else \
                            self._answer(404, {"message": "Data source not found"})
                    fake.datasources[uid] = body
                    return self._answer(200, {"message": "Datasource updated"})
                if self.path == "/api/datasources" and method == "POST":
                    fake.datasources[body["uid"]] = body
                    return self._answer(200, {"message": "Datasource added", "id": 1})
                if self.path.startswith("/api/folders/"):
                    uid = self.path.rsplit("/", 1)[1]
                    return self._answer(200, fake.folders[uid]) if uid in fake.folders else \
                        self._answer(404, {"message": "folder not found"})
                if self.path == "/api/folders":
                    fake.folders[body["uid"]] = body
                    return self._answer(200, body)
                if self.path == "/api/dashboards/db":
                    uid = body["dashboard"]["uid"]
                    if uid in fake.dashboards and not body.get("overwrite"):
                        return self._answer(412, {"message": "A dashboard with the same uid already exists",
                                                  "status": "name-exists"})
                    fake.dashboards[uid] = body
                    return self._answer(200, {"status": "success", "uid": uid, "url": f"/d/{uid}/x"})
                return self._answer(404, {"message": "not found"})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PUT(self):
                self._handle("PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def models():
    return build_all(demo_setup())


def test_publish_creates_then_updates_the_datasource_folder_and_dashboards(models):
    with FakeGrafana() as g:
        done = publish(models, g.url, influx_url="http://influxdb:8086", database="edge", influx_user="grafana",
                       influx_password="s3cret", token=g.token)
        assert (done.datasource, done.folder) == ("created", "created") and len(done.dashboards) == 5
        ds = g.datasources[DATASOURCE_UID]
        assert ds["type"] == "influxdb" and ds["url"] == "http://influxdb:8086"
        assert ds["database"] == "edge" and ds["jsonData"]["dbName"] == "edge" and ds["jsonData"]["version"] == "InfluxQL"
        assert ds["secureJsonData"] == {"password": "s3cret"} and "s3cret" not in json.dumps(ds["jsonData"])
        posted = [b for m, p, b, _ in g.requests if p == "/api/dashboards/db"]
        assert [b["dashboard"]["uid"] for b in posted] == [m["uid"] for m in models.values()]
        for b in posted:
            assert b["folderUid"] == "edgemon" and b["overwrite"] is True and b["dashboard"]["id"] is None
        assert all(a == f"Bearer {g.token}" for m, p, b, a in g.requests if p != "/api/health")
        g.requests.clear()
        done = publish(models, g.url, influx_url="http://influxdb:8086", database="edge2", token=g.token)
        assert (done.datasource, done.folder) == ("updated", "exists")
        assert ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}") in [(m, p) for m, p, b, a in g.requests]
        assert g.datasources[DATASOURCE_UID]["jsonData"]["dbName"] == "edge2"
        assert not any(p == "/api/folders" for m, p, b, a in g.requests)


def test_a_bad_token_and_an_unreachable_grafana_say_what_to_do(models):
    with FakeGrafana() as g:
        with pytest.raises(PublishError) as exc:
            publish(models, g.url, influx_url="http://i:8086", database="edge", token="wrong")
        assert "401" in str(exc.value) and "GRAFANA_TOKEN" in str(exc.value)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PublishError) as exc:
        publish(models, f"http://127.0.0.1:{port}", influx_url="http://i:8086", database="edge", token="t", timeout=2)
    assert "unreachable" in str(exc.value) and "--grafana-url" in str(exc.value)


def test_the_cli_reads_credentials_from_the_environment_and_prints_the_urls(tmp_path):
    runner = CliRunner()
    with FakeGrafana() as g:
        r = runner.invoke(main, ["dashboards", "publish", "--demo", "--grafana-url", g.url,
                                 "--influx-url", "http://127.0.0.1:8086"], env={"GRAFANA_TOKEN": g.token})
        assert r.exit_code == 0, r.output
        assert "datasource created; folder edgemon created" in r.output
        assert sum(f"{g.url}/d/" in line for line in r.output.splitlines()) == len(FILES)
        r = runner.invoke(main, ["dashboards", "publish", "--demo", "--grafana-url", g.url],
                          env={"GRAFANA_TOKEN": "", "GRAFANA_USER": ""})
        assert r.exit_code == 1 and "GRAFANA_TOKEN" in r.output
        r = runner.invoke(main, ["dashboards", "publish", "--demo", "--grafana-url", g.url],
                          env={"GRAFANA_TOKEN": "nope"})
        assert r.exit_code == 1 and "401" in r.output
