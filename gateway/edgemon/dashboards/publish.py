"""`edgemon dashboards publish`: the datasource and the dashboards into a running Grafana over its
HTTP API (grafana-client). What its API wants, and what is easy to get wrong:

- an InfluxQL datasource needs the database twice: `database` (what the datasource settings page
  and older Grafanas read) and `jsonData.dbName` (what newer ones read), with
  `jsonData.version = "InfluxQL"`; the password goes in `secureJsonData`, never in `jsonData`;
- the datasource keeps the fixed uid the dashboards refer to (influxql.DATASOURCE_UID), so it is
  updated by uid when it exists and created otherwise;
- a dashboard saved again must carry `overwrite: true` (else Grafana answers 412, "version
  mismatch" / "a dashboard with the same uid already exists"), its `folderUid` (else an update
  moves it to General), and no numeric `id` (ids are per Grafana instance; the uid identifies it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .influxql import DATASOURCE_NAME, DATASOURCE_UID

FOLDER_UID = "edgemon"
FOLDER_TITLE = "排口在线监测"


class PublishError(Exception):
    """One line: what failed and what to do."""


@dataclass
class Published:
    datasource: str  # "created" / "updated"
    folder: str  # "created" / "exists"
    dashboards: list[str] = field(default_factory=list)  # the URLs Grafana answered


def datasource_payload(url: str, database: str, user: str | None, password: str | None) -> dict:
    ds = {"name": DATASOURCE_NAME, "uid": DATASOURCE_UID, "type": "influxdb", "access": "proxy", "url": url,
          "database": database, "basicAuth": False, "isDefault": False,
          "jsonData": {"dbName": database, "version": "InfluxQL", "httpMode": "POST"}}
    if user:
        ds["user"] = user
    if password:
        ds["secureJsonData"] = {"password": password}
    return ds


def dashboard_payload(model: dict, folder_uid: str = FOLDER_UID) -> dict:
    dash = {k: v for k, v in model.items() if k != "id"}
    dash["id"] = None
    return {"dashboard": dash, "folderUid": folder_uid, "overwrite": True,
            "message": "edgemon dashboards publish (built from the gateway's config)"}


def _api(grafana_url: str, token: str | None, user: str | None, password: str | None, timeout: float):
    from grafana_client import GrafanaApi
    credential = token if token else ((user, password) if user else None)
    return GrafanaApi.from_url(grafana_url, credential=credential, timeout=timeout)


def _explain(exc: Exception, grafana_url: str, step: str) -> PublishError:
    import requests
    from grafana_client.client import GrafanaBadInputError, GrafanaClientError, GrafanaServerError, \
        GrafanaUnauthorizedError
    if isinstance(exc, GrafanaUnauthorizedError):
        return PublishError(f"{grafana_url}: {step}: 401 unauthorized: the token (or user/password) is not accepted; "
                            "fix: export GRAFANA_TOKEN=<a service account token with the Editor or Admin role> "
                            "(Administration > Service accounts)")
    if isinstance(exc, GrafanaClientError) and exc.status_code == 403:
        return PublishError(f"{grafana_url}: {step}: 403 forbidden: the account may not do this; "
                            "fix: give the service account the Admin role (datasources need it) or Editor for dashboards")
    if isinstance(exc, GrafanaBadInputError):
        return PublishError(f"{grafana_url}: {step}: Grafana refused the payload: {exc.message}")
    if isinstance(exc, (GrafanaClientError, GrafanaServerError)):
        return PublishError(f"{grafana_url}: {step}: HTTP {exc.status_code}: {exc.message}")
    if isinstance(exc, requests.exceptions.RequestException):
        return PublishError(f"{grafana_url}: {step}: Grafana unreachable ({type(exc).__name__}); "
                            "fix: start Grafana or pass --grafana-url http://host:3000 (its address as the browser uses it)")
    return PublishError(f"{grafana_url}: {step}: {type(exc).__name__}: {exc}")


def publish(models: dict[str, dict], grafana_url: str, *, influx_url: str, database: str,
            influx_user: str | None = None, influx_password: str | None = None, token: str | None = None,
            user: str | None = None, password: str | None = None, folder_uid: str = FOLDER_UID,
            folder_title: str = FOLDER_TITLE, timeout: float = 10.0) -> Published:
    """Datasource, folder, then every dashboard; raises PublishError (one line) at the first failure."""
    from grafana_client.client import GrafanaClientError

    api = _api(grafana_url, token, user, password, timeout)
    step = "GET /api/health"
    try:
        api.health.check()
        step = "GET /api/datasources/uid/" + DATASOURCE_UID
        ds = datasource_payload(influx_url, database, influx_user, influx_password)
        try:
            api.datasource.get_datasource_by_uid(DATASOURCE_UID)
            exists = True
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            exists = False
        step = "PUT /api/datasources/uid/" + DATASOURCE_UID if exists else "POST /api/datasources"
        if exists:
            api.datasource.update_datasource_by_uid(DATASOURCE_UID, ds)
        else:
            api.datasource.create_datasource(ds)
        step = "GET /api/folders/" + folder_uid
        try:
            api.folder.get_folder(folder_uid)
            folder = "exists"
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            step = "POST /api/folders"
            api.folder.create_folder(folder_title, uid=folder_uid)
            folder = "created"
        out = Published("updated" if exists else "created", folder)
        for model in models.values():
            step = f"POST /api/dashboards/db ({model.get('uid')})"
            answer = api.dashboard.update_dashboard(dashboard_payload(model, folder_uid))
            out.dashboards.append(grafana_url.rstrip("/") + str((answer or {}).get("url", "/d/" + model["uid"])))
        return out
    except PublishError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line naming the step
        raise _explain(exc, grafana_url, step) from None


def secret_from_env(name: str | None) -> str | None:
    return os.environ.get(name) if name else None
