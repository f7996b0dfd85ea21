"""InfluxDB writer over the v1 HTTP API (`/write`, `/query`), which InfluxDB 1.x answers and
2.x/3.x answer through their v1 compatibility endpoints. Blocking; call it from a worker thread."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests

MAX_LINES_PER_REQUEST = 5000


class InfluxError(Exception):
    pass


class InfluxWriteError(InfluxError):
    """A write (or database creation) that InfluxDB refused or could not be reached for.
    `status` is the HTTP status, or None when no answer came back."""

    def __init__(self, status: int | None, body: str):
        self.status = status
        self.body = body
        if status is None:
            message = f"InfluxDB unreachable: {body}"
        else:
            message = f"InfluxDB answered HTTP {status}: {body.strip()[:500]}"
        super().__init__(message)

    @property
    def retryable(self) -> bool:
        """False only when InfluxDB read the points and refused them (bad data): sending the same
        lines again cannot succeed. Outages, overload, auth and a missing database can heal."""
        return self.status is None or self.status not in (400, 413)


class InfluxQueryError(InfluxError):
    pass


def _quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxV1Writer:
    def __init__(
        self,
        url: str,
        database: str,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10,
    ):
        self.url = url.rstrip("/")
        self.database = database
        self.timeout_s = timeout_s
        self._session = requests.Session()
        if username is not None:
            self._session.auth = (username, password or "")

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> InfluxV1Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.post(self.url + path, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise InfluxWriteError(None, f"{self.url}: {exc}") from exc

    def ensure_database(self) -> None:
        """CREATE DATABASE (a no-op when it exists)."""
        response = self._post("/query", data={"q": f"CREATE DATABASE {_quote_ident(self.database)}"})
        if response.status_code != 200:
            raise InfluxWriteError(response.status_code, response.text)
        error = _statement_error(response)
        if error:
            raise InfluxWriteError(response.status_code, error)

    def write(self, lines: Sequence[str]) -> None:
        """Write line-protocol points with ms timestamps, at most MAX_LINES_PER_REQUEST per request.
        On failure nothing later is sent; writing the same lines again is harmless (same points)."""
        for start in range(0, len(lines), MAX_LINES_PER_REQUEST):
            chunk = lines[start : start + MAX_LINES_PER_REQUEST]
            body = ("\n".join(chunk) + "\n").encode("utf-8")
            response = self._post(
                "/write", params={"db": self.database, "precision": "ms"}, data=body,
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
            if response.status_code != 204:
                raise InfluxWriteError(response.status_code, response.text)

    def query(self, q: str, database: str | None = None) -> list[dict[str, Any]]:
        """Run an InfluxQL read; returns every series of every statement, each a dict with `name`,
        `tags` (dict, possibly empty), `columns` and `values` (rows; times in ms)."""
        try:
            response = self._session.get(
                self.url + "/query",
                params={"db": database or self.database, "q": q, "epoch": "ms"},
                timeout=self.timeout_s,
            )
        except requests.RequestException as exc:
            raise InfluxQueryError(f"InfluxDB unreachable: {self.url}: {exc}") from exc
        if response.status_code != 200:
            raise InfluxQueryError(f"query {q!r}: HTTP {response.status_code}: {response.text.strip()[:500]}")
        error = _statement_error(response)
        if error:
            raise InfluxQueryError(f"query {q!r}: {error}")
        series: list[dict[str, Any]] = []
        for result in response.json().get("results", []):
            for s in result.get("series", []):
                series.append(
                    {"name": s.get("name"), "tags": s.get("tags") or {}, "columns": s["columns"], "values": s["values"]}
                )
        return series

    def query_rows(self, q: str, database: str | None = None) -> list[dict[str, Any]]:
        """Like query, flattened: one dict per row, column -> value, with the series' tags merged in."""
        rows = []
        for s in self.query(q, database):
            for values in s["values"]:
                row = dict(s["tags"])
                row.update(zip(s["columns"], values))
                rows.append(row)
        return rows


def _statement_error(response: requests.Response) -> str | None:
    try:
        doc = response.json()
    except ValueError:
        return None
    if doc.get("error"):
        return doc["error"]
    for result in doc.get("results", []):
        if result.get("error"):
            return result["error"]
    return None
