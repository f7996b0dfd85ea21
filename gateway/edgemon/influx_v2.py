"""InfluxDB writer over the v2 HTTP API (`/api/v2/write` with a token, org and bucket) through
influxdb-client: InfluxDB 2.x, 3.x and Cloud (and anything else that takes that API, such as
VictoriaMetrics). Same interface and errors as influx.InfluxV1Writer; blocking, one worker thread.
Retries and backoff are the gateway's (ingest), which keeps unwritten data in its store."""

from __future__ import annotations

from collections.abc import Sequence

import urllib3
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from .influx import MAX_LINES_PER_REQUEST, InfluxWriteError


class InfluxV2Writer:
    def __init__(self, url: str, bucket: str, org: str, token: str | None, timeout_s: float = 10):
        self.url = url.rstrip("/")
        self.bucket = bucket
        self.database = bucket  # what log lines and errors call it
        self.org = org
        self._client = InfluxDBClient(url=self.url, token=token or "", org=org, timeout=int(timeout_s * 1000))
        self._write = self._client.write_api(write_options=SYNCHRONOUS)

    def close(self) -> None:
        self._write.close()
        self._client.close()

    def ensure_database(self) -> None:
        """Buckets are created by the operator (with retention) in v2: nothing to do here; a missing
        bucket shows up as HTTP 404 on the first write, with the fix named in the gateway's log."""

    def write(self, lines: Sequence[str]) -> None:
        for start in range(0, len(lines), MAX_LINES_PER_REQUEST):
            body = "\n".join(lines[start : start + MAX_LINES_PER_REQUEST])
            try:
                self._write.write(bucket=self.bucket, org=self.org, record=body, write_precision=WritePrecision.MS)
            except ApiException as exc:
                raise InfluxWriteError(exc.status, str(exc.body or exc.reason)) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise InfluxWriteError(None, f"{self.url}: {exc}") from exc
