"""What the site answers to the platform's requests (pure): a request in, the packets to send back
and the settings it changed out. Request flow (HJ 212-2017 6.5): 9011 (QnRtn: taken or why not),
the data if any, 9012 (ExeRtn); a notify (2012 stop real-time data) gets a 9013.

    1000        OverTime / ReCount of this link          1011 / 1012  get / set the site's time
    1061 / 1062 get / set RtdInterval (s)                1063 / 1064  get / set MinInterval (min)
    2011        real-time data on; 2012 off (notify)     2031 / 2051 / 2061  history for BeginTime-EndTime

A time set (1012) is logged and not applied: the gateway's clock is kept by NTP and the nodes'
clocks by the gateway; the platform reads the site's clock with 1011. The history comes from
`history(period, begin_ms, end_ms)`, the aggregates stored in InfluxDB."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..aggregates.periods import local_text, parse_local
from ..aggregates.stats import Value
from ..hj212.packet import Packet
from . import packets as P
from .settings import SiteSettings

History = Callable[[str, int, int], list[tuple[int, dict[str, Value]]]]
LIMITS = {"OverTime": (1, 99), "ReCount": (1, 99), "RtdInterval": (30, 3600), "MinInterval": (1, 60)}


@dataclass
class Outcome:
    packets: list[Packet] = field(default_factory=list)
    changes: dict[str, int] = field(default_factory=dict)  # over_time_s, re_count, rtd_interval_s, min_interval_min, rtd_on
    log: list[str] = field(default_factory=list)


def _ints(request: Packet, names: tuple[str, ...]) -> dict[str, int] | str:
    out = {}
    for name in names:
        text = request.cp.get(name)
        lo, hi = LIMITS[name]
        if text is None or not text.isdigit() or not lo <= int(text) <= hi:
            return f"{name}={text!r}: an integer {lo}-{hi} expected"
        out[name] = int(text)
    return out


def handle(request: Packet, site: SiteSettings, version: str, current: dict[str, int], now_ms: int, tz: str,
           history: History) -> Outcome:
    """current: the settings in force (over_time_s, re_count, rtd_interval_s, min_interval_min)."""
    out = Outcome()
    send = out.packets.append
    cn = request.cn

    def taken() -> None:
        send(P.qn_rtn(site, version, request, P.QN_RTN_READY))

    def done(code: str = P.EXE_OK) -> None:
        send(P.exe_rtn(site, version, request, code))

    if request.pw is not None and request.pw != site.pw:
        out.log.append(f"request {cn} QN={request.qn} refused: wrong PW")
        send(P.qn_rtn(site, version, request, P.QN_RTN_PW))
        return out
    if cn == "2012":  # stop real-time data: a notify
        out.changes["rtd_on"] = 0
        send(P.notify_reply(site, version, request))
        return out
    if cn == "1011":
        taken()
        send(P.answer(site, version, request, {"SystemTime": local_text(now_ms, tz)}))
        done()
    elif cn == "1012":
        text = request.cp.get("SystemTime")
        taken()
        try:
            asked = parse_local(text or "", tz)
        except ValueError:
            out.log.append(f"time set refused: SystemTime={text!r} is not YYYYMMDDhhmmss")
            done(P.EXE_CONDITION)
            return out
        out.log.append(f"platform asked to set the site's time to {text} ({(asked - now_ms) / 1000:+.0f} s from "
                       "the gateway's clock): logged, not applied (the clock is kept by NTP)")
        done()
    elif cn in ("1061", "1063"):
        taken()
        if cn == "1061":
            send(P.answer(site, version, request, {"RtdInterval": str(current["rtd_interval_s"])}))
        else:
            send(P.answer(site, version, request, {"MinInterval": str(current["min_interval_min"])}))
        done()
    elif cn in ("1000", "1062", "1064"):
        names = {"1000": ("OverTime", "ReCount"), "1062": ("RtdInterval",), "1064": ("MinInterval",)}[cn]
        taken()
        values = _ints(request, names)
        if isinstance(values, str):
            out.log.append(f"request {cn} refused: {values}")
            done(P.EXE_CONDITION)
            return out
        if cn == "1064" and 60 % values["MinInterval"]:
            out.log.append(f"request 1064 refused: MinInterval={values['MinInterval']} does not divide an hour")
            done(P.EXE_CONDITION)
            return out
        keys = {"OverTime": "over_time_s", "ReCount": "re_count", "RtdInterval": "rtd_interval_s",
                "MinInterval": "min_interval_min"}
        for name, v in values.items():
            out.changes[keys[name]] = v
        out.log.append(f"platform set {', '.join(f'{k}={v}' for k, v in values.items())}")
        done()
    elif cn == "2011":
        out.changes["rtd_on"] = 1
        taken()
        done()
    elif cn in P.PERIOD_OF_CN:
        taken()
        try:
            begin = parse_local(request.cp.get("BeginTime") or "", tz)
            end = parse_local(request.cp.get("EndTime") or "", tz)
        except ValueError:
            out.log.append(f"history {cn} refused: BeginTime/EndTime not YYYYMMDDhhmmss")
            done(P.EXE_CONDITION)
            return out
        if end < begin:
            done(P.EXE_CONDITION)
            return out
        rows = history(P.PERIOD_OF_CN[cn], begin, end)
        for start, values in rows:
            send(P.period_packet(site, version, request.qn, P.PERIOD_OF_CN[cn], start, values, tz, reply=False))
        out.log.append(f"history {cn} {request.cp.get('BeginTime')}-{request.cp.get('EndTime')}: {len(rows)} packets")
        done(P.EXE_OK if rows else P.EXE_NO_DATA)
    else:
        out.log.append(f"request CN={cn} QN={request.qn} not supported: refused with QnRtn=8")
        send(P.qn_rtn(site, version, request, P.QN_RTN_CN))
    return out
