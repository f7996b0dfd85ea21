"""The forwarder for a loaded gateway.toml: its state under `<state_dir>/uplink/`, the history the
platform asks for read from InfluxDB's `aggregate` points (api v1; with v2 history requests are
answered "no data", logged), fed by the gateway's records and by the aggregates' observer."""

from __future__ import annotations

import logging

from ..aggregates.stats import Value
from .forwarder import Forwarder

log = logging.getLogger(__name__)


def influx_history(cfg):
    """history(site, period, begin_ms, end_ms) -> [(start, {param: Value})] from `aggregate`."""
    if cfg.influx_api != "v1":
        def none(site, period, begin, end):
            log.warning("uplink: history requests need InfluxDB api v1 (InfluxQL); answered with no data")
            return []
        return none

    def history(site: str, period: str, begin: int, end: int):
        from ..influx import InfluxV1Writer
        q = ("SELECT avg, \"min\", \"max\", cou, flag, valid, n, count, weighted, parts FROM aggregate "
             f"WHERE site = '{site}' AND period = '{period}' AND time >= {begin}ms AND time <= {end}ms GROUP BY param")
        with InfluxV1Writer(cfg.influx_url, cfg.influx_db, username=cfg.influx_user,
                            password=cfg.influx_password) as influx:
            rows = influx.query_rows(q)
        out: dict[int, dict[str, Value]] = {}
        for r in rows:
            start = _ms(r["time"])
            out.setdefault(start, {}).setdefault(r["param"], Value(
                r.get("avg"), r.get("min"), r.get("max"), r.get("cou"), r.get("flag") or "N", bool(r.get("valid")),
                int(r.get("n") or 0), int(r.get("count") or 0), bool(r.get("weighted")), int(r.get("parts") or 0)))
        return sorted(out.items())
    return history


def _ms(t) -> int:
    if isinstance(t, (int, float)):
        return int(t)
    from datetime import datetime
    return int(datetime.fromisoformat(str(t).replace("Z", "+00:00")).timestamp() * 1000)


def build_forwarder(loaded) -> Forwarder | None:
    if loaded.uplink is None or not loaded.uplink.sites:
        return None
    tz = loaded.aggregates.get("timezone", "Asia/Shanghai")
    return Forwarder(loaded.uplink, loaded.gateway.state_dir / "uplink", tz=tz,
                     history=influx_history(loaded.gateway),
                     medium=lambda site: loaded.sites.get(site, {}).get("medium", "water"))
