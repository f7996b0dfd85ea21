"""InfluxQL targets for the SDK's panel builders, and the pieces of the dashboards' queries.

grafana-foundation-sdk has no InfluxDB query type, so a target is a small Dataquery of our own
carrying raw InfluxQL (`rawQuery: true`), the form Grafana's InfluxDB datasource saves for a query
typed in its text editor. The dashboards' datasource is the one provisioned from
server/grafana/provisioning/datasources/edgemon.yaml, referred to by its fixed uid.
"""

from __future__ import annotations

from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.models import dashboard as dm

DATASOURCE_UID = "edgemon-influx"
DATASOURCE_NAME = "edgemon InfluxDB"
DATASOURCE = dm.DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)

# How Grafana's variables are written into the queries (tests/dashboards substitutes them the same way).
SITE_RE = '"site" =~ /^$site$/'
PARAM_RE = '"param" =~ /^$param$/'
OPEN_LOOKBACK = "366d"  # open alarms and last boots are looked for this far back, whatever the time range


class InfluxQLQuery(variants.Dataquery):
    """One raw InfluxQL target: `alias` names the series ($tag_<key>, $col), `result_format` is
    "time_series" or "table"."""

    def __init__(self, ref_id: str, query: str, alias: str | None = None, result_format: str = "time_series",
                 hide: bool = False):
        self.ref_id, self.query, self.alias, self.result_format, self.hide = ref_id, query, alias, result_format, hide

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"refId": self.ref_id, "datasource": DATASOURCE.to_json(), "query": self.query,
                                  "rawQuery": True, "resultFormat": self.result_format}
        if self.alias:
            out["alias"] = self.alias
        if self.hide:
            out["hide"] = True
        return out


class Target:
    """A builder of an InfluxQLQuery (the SDK's panels take builders for their targets)."""

    def __init__(self, ref_id: str, query: str, alias: str | None = None, table: bool = False):
        self.q = InfluxQLQuery(ref_id, query, alias, "table" if table else "time_series")

    def build(self) -> InfluxQLQuery:
        return self.q


class AnnotationTarget:
    """The target of an InfluxQL annotation query: the query and which columns are the text and tags
    (the SDK's AnnotationTarget models only the built-in Grafana datasource's fields)."""

    def __init__(self, query: str, text_column: str, tags_column: str):
        self.query, self.text_column, self.tags_column = query, text_column, tags_column

    def build(self) -> AnnotationTarget:
        return self

    def to_json(self) -> dict[str, object]:
        return {"refId": "Anno", "query": self.query, "rawQuery": True, "resultFormat": "table",
                "textColumn": self.text_column, "tagsColumn": self.tags_column}


def quote(value: str) -> str:
    """An InfluxQL string literal (tag values in WHERE)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '\\"') + '"'


def where(*conditions: str) -> str:
    return " AND ".join(c for c in conditions if c)


def site_is(site: str) -> str:
    return f'"site" = {quote(site)}'


def tag_values(measurement: str, key: str, *conditions: str) -> str:
    """A template variable's query: SHOW TAG VALUES (Grafana runs it as the variable's options)."""
    cond = where(*conditions)
    return f'SHOW TAG VALUES FROM {ident(measurement)} WITH KEY = {ident(key)}' + (f" WHERE {cond}" if cond else "")


def day_group(tz: str) -> str:
    """GROUP BY days of the [aggregates] time zone: the tz() clause goes last."""
    return f"tz({quote(tz)})"
