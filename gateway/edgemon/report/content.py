"""What a site's daily report says, built from plain data (pure): each parameter's daily value
against its limit, its hours, completeness per node, the day's alarms and the signature check.

Inputs are what source.py reads: `aggregate` points as dicts (site, node, param, period, avg, min,
max, cou, flag, valid, n, count, weighted; time = the period's start, ms), `alarm` points, the
record times per node and compact quarantine rows (refusal_row)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ..alarms.rules.base import Limit
from .coverage import NodeCoverage, node_coverage
from .days import hour_starts

PASS, EXCEED, INVALID, NOT_JUDGED = "达标", "超标", "无效", "—"
NO_LIMIT = "无限值"
FLOW = "w00000"  # its `cou` is a volume (m³); a concentration's is a load (kg)


@dataclass(frozen=True)
class ParamInfo:
    name: str
    short: str = ""
    unit: str = ""


@dataclass(frozen=True)
class HourCell:
    start_ms: int
    avg: float | None
    flag: str | None
    valid: bool
    state: str  # "ok", "flagged" (flag != N), "invalid" (valid false or no avg), "missing" (no point)


@dataclass(frozen=True)
class ParamRow:
    param: str
    node: str
    info: ParamInfo
    value: float | None  # the day aggregate's avg
    flag: str | None
    cou: float | None
    lo: float | None  # the limits in force (hi: the cold-water max when it applies)
    hi: float | None
    limit_text: str
    verdict: str
    note: str
    hours: tuple[HourCell, ...]

    @property
    def cou_unit(self) -> str:
        return "m³" if self.param == FLOW else "kg"


@dataclass(frozen=True)
class AlarmLine:
    time_ms: int
    node: str
    param: str
    param_name: str
    rule: str
    state: str  # 触发 / 解除
    value: float | None
    limit: float | None
    message: str


@dataclass(frozen=True)
class Signatures:
    required: bool
    basis: str  # why (or why not) signatures are required for this site
    keyed_nodes: tuple[str, ...]
    accepted: int  # records stored that day (signed and verified when required)
    refused_missing: int  # records refused: no signature
    refused_bad: int  # records refused: a signature that does not verify (wrong key, forged, no key held)
    refused_payloads: int  # data payloads those records came in
    refused_other: int  # status/event/ack payloads refused for their signature
    quarantined_other: int  # payloads quarantined for other reasons (the contract)

    @property
    def refused(self) -> int:
        return self.refused_missing + self.refused_bad


@dataclass(frozen=True)
class DailyReport:
    site: str
    site_name: str
    day: date
    tz: str
    start_ms: int
    end_ms: int
    profile: str  # the limit profile's title (or why there is none)
    basis: str
    rows: tuple[ParamRow, ...]
    coverage: tuple[NodeCoverage, ...]
    alarms: tuple[AlarmLine, ...]
    signatures: Signatures
    until_ms: int | None  # the day is not over: data up to this instant
    generated_ms: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def count(self, verdict: str) -> int:
        return sum(r.verdict == verdict for r in self.rows)


@dataclass
class SiteData:
    """Everything a site's report is built from, as plain data."""
    site: str
    site_name: str
    day: date
    tz: str
    start_ms: int
    end_ms: int
    now_ms: int
    poll_s: float
    nodes: list[str]  # configured in gateway.toml
    limits: dict[str, Limit]
    profile: str = ""
    basis: str = "sample"
    cold_param: str | None = None
    cold_at_or_below: float | None = None
    series: list[tuple[str, str]] = field(default_factory=list)  # (param, node) the site measures
    day_points: list[dict] = field(default_factory=list)
    hour_points: list[dict] = field(default_factory=list)
    record_times: dict[str, list[int]] = field(default_factory=dict)  # node -> sample times (ms)
    alarms: list[dict] = field(default_factory=list)
    refusals: list[dict] = field(default_factory=list)  # refusal_row() of the site's quarantine entries
    keyed_nodes: list[str] = field(default_factory=list)
    require_all: bool = False
    notes: list[str] = field(default_factory=list)


def number(v: float | None) -> str:
    """A value as shown: 35.2, 0.05, 1234."""
    if v is None:
        return "—"
    a = abs(v)
    text = f"{v:.0f}" if a >= 1000 else f"{v:.1f}" if a >= 100 else f"{v:.2f}" if a >= 0.1 else f"{v:.3g}"
    if "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def unit_text(unit: str) -> str:
    return unit or "无量纲"


def limit_in_force(limit: Limit | None, temperature: float | None, cold_at_or_below: float | None
                   ) -> tuple[float | None, float | None, str]:
    """(min, max, text) of a limit, the cold-water max when the day's water temperature is at or
    below the threshold (no temperature known: the stricter warm max)."""
    if limit is None:
        return None, None, NO_LIMIT
    hi = limit.max
    cold = (limit.cold_max is not None and temperature is not None and cold_at_or_below is not None
            and temperature <= cold_at_or_below)
    if cold:
        hi = limit.cold_max
    lo = limit.min
    if lo is not None and hi is not None:
        text = f"{number(lo)}～{number(hi)}"
    elif hi is not None:
        text = f"≤{number(hi)}"
    else:
        text = f"≥{number(lo)}"
    if cold:
        text += f"（水温≤{number(cold_at_or_below)}℃）"
    return lo, hi, text


def judge(point: dict | None, lo: float | None, hi: float | None, has_limit: bool) -> tuple[str, str]:
    """(verdict, note) of a day aggregate point against the limits in force. Not valid: no day
    point, `valid` false, or no avg. A value equal to the limit passes."""
    if point is None:
        return INVALID, "当日无日均值"
    avg = point.get("avg")
    if point.get("valid") is False:
        return INVALID, f"日均值无效（{_n_text(point)}）"
    if avg is None:
        return INVALID, "无有效值"
    if not has_limit:
        return NOT_JUDGED, ""
    if hi is not None and avg > hi:
        return EXCEED, f"超过上限{number(hi)}"
    if lo is not None and avg < lo:
        return EXCEED, f"低于下限{number(lo)}"
    return PASS, ""


def _n_text(point: dict) -> str:
    n, count = point.get("n"), point.get("count")
    if n is None:
        return "有效值个数未知"
    return f"有效值{int(n)}个/共{int(count)}个" if count is not None else f"有效值{int(n)}个"


def hour_cells(points: list[dict], start_ms: int, end_ms: int) -> tuple[HourCell, ...]:
    by_start = {int(p["time"]): p for p in points}
    cells = []
    for t in hour_starts(start_ms, end_ms):
        p = by_start.get(t)
        if p is None:
            cells.append(HourCell(t, None, None, False, "missing"))
            continue
        avg, flag, valid = p.get("avg"), p.get("flag"), p.get("valid") is not False
        state = "invalid" if not valid or avg is None else "flagged" if flag not in (None, "N") else "ok"
        cells.append(HourCell(t, avg, flag, valid and avg is not None, state))
    return tuple(cells)


def _temperature(data: SiteData) -> float | None:
    """The day's mean water temperature (for cold-water limits), from any node that measures it."""
    for p in data.day_points:
        if p.get("param") == data.cold_param and p.get("valid") is not False and p.get("avg") is not None:
            return float(p["avg"])
    return None


def param_rows(data: SiteData, params: dict[str, ParamInfo]) -> list[ParamRow]:
    day = {(p["param"], p["node"]): p for p in data.day_points}
    hours: dict[tuple[str, str], list[dict]] = {}
    for p in data.hour_points:
        hours.setdefault((p["param"], p["node"]), []).append(p)
    keys = set(data.series) | set(day) | set(hours)
    order = {code: i for i, code in enumerate(params)}
    temperature = _temperature(data)
    rows = []
    for param, node in sorted(keys, key=lambda k: (k[0] not in data.limits, order.get(k[0], len(order)), k)):
        limit = data.limits.get(param)
        lo, hi, text = limit_in_force(limit, temperature, data.cold_at_or_below)
        point = day.get((param, node))
        verdict, note = judge(point, lo, hi, limit is not None)
        if point is not None and point.get("flag") not in (None, "N") and verdict != INVALID:
            note = (note + "；" if note else "") + f"标记{point['flag']}"
        rows.append(ParamRow(
            param=param, node=node, info=params.get(param, ParamInfo(param)),
            value=None if point is None else point.get("avg"), flag=None if point is None else point.get("flag"),
            cou=None if point is None else point.get("cou"), lo=lo, hi=hi, limit_text=text, verdict=verdict,
            note=note, hours=hour_cells(hours.get((param, node), []), data.start_ms, data.end_ms)))
    return rows


STATES = {"raised": "触发", "cleared": "解除"}


def alarm_lines(points: list[dict], params: dict[str, ParamInfo]) -> list[AlarmLine]:
    out = []
    for p in sorted(points, key=lambda p: (p["time"], p.get("node") or "", p.get("param") or "")):
        param = p.get("param") or ""
        out.append(AlarmLine(
            time_ms=int(p["time"]), node=p.get("node") or "", param=param,
            param_name=params[param].name if param in params else param, rule=p.get("rule") or "",
            state=STATES.get(p.get("state"), p.get("state") or "?"), value=p.get("value"), limit=p.get("limit"),
            message=p.get("message") or ""))
    return out


def refusal_row(entry: dict[str, Any]) -> dict[str, Any]:
    """A quarantine entry (quarantine.py) made compact: site, kind (the topic's last part: data,
    status, ...), reason, received_ms and the sample times of the records it carried (a batch
    carries several; a payload that is not JSON counts as one record at its receive time)."""
    topic = entry.get("topic") or ""
    parts = topic.split("/")
    kind = "/".join(parts[4:]) if len(parts) > 4 else "?"
    received = int(entry.get("received_ms") or 0)
    times: list[int] = []
    if kind == "data":
        try:
            obj = json.loads(entry.get("payload") or "")
        except ValueError:
            obj = None
        items = obj.get("batch") if isinstance(obj, dict) and isinstance(obj.get("batch"), list) else [obj]
        for item in items:
            ts = item.get("ts") if isinstance(item, dict) else None
            times.append(ts if isinstance(ts, int) and not isinstance(ts, bool) else received)
    return {"site": entry.get("site"), "node": entry.get("node"), "kind": kind,
            "reason": entry.get("reason") or "", "received_ms": received, "times": times}


def signatures(data: SiteData, accepted: int) -> Signatures:
    """Records accepted that day (by sample time) and refused for their signature (by sample
    time too; other payloads by receive time)."""
    missing = bad = payloads = other = contract = 0
    lo, hi = data.start_ms, data.end_ms
    for row in data.refusals:
        if row.get("site") != data.site:
            continue
        is_sig = row["reason"].startswith("sig:")
        if row["kind"] == "data" and is_sig:
            n = sum(lo <= t < hi for t in row["times"])
            if n:
                payloads += 1
                if row["reason"].startswith("sig: missing"):
                    missing += n
                else:
                    bad += n
        elif lo <= row["received_ms"] < hi:
            if is_sig:
                other += 1
            else:
                contract += 1
    keyed = tuple(sorted(data.keyed_nodes))
    if data.require_all:
        required, basis = True, "require_signatures = true：所有节点必须签名"
    elif keyed:
        required, basis = True, f"站点在密钥文件中有密钥（{'、'.join(keyed)}）：所有节点必须签名"
    else:
        required, basis = False, "站点无密钥且未要求签名：接收的记录未经签名校验"
    return Signatures(required=required, basis=basis, keyed_nodes=keyed, accepted=accepted, refused_missing=missing,
                      refused_bad=bad, refused_payloads=payloads, refused_other=other, quarantined_other=contract)


def build_report(data: SiteData, params: dict[str, ParamInfo]) -> DailyReport:
    until = data.now_ms if data.start_ms <= data.now_ms < data.end_ms else None
    nodes = list(data.nodes) + sorted(set(data.record_times) - set(data.nodes))
    coverage = tuple(node_coverage(n, data.record_times.get(n, ()), data.start_ms, data.end_ms, data.poll_s,
                                   until_ms=until, configured=n in data.nodes) for n in nodes)
    return DailyReport(
        site=data.site, site_name=data.site_name, day=data.day, tz=data.tz, start_ms=data.start_ms,
        end_ms=data.end_ms, profile=data.profile, basis=data.basis, rows=tuple(param_rows(data, params)),
        coverage=coverage, alarms=tuple(alarm_lines(data.alarms, params)),
        signatures=signatures(data, sum(c.received for c in coverage)), until_ms=until,
        generated_ms=data.now_ms, notes=tuple(data.notes))
