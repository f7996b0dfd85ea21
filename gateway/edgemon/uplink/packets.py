"""The packets the site sends (pure): data uploads from records and aggregates, the replies of a
request (9011 QnRtn, 9012 ExeRtn), the 2025 heartbeat. Times in CP (DataTime, SystemTime) are local
times of the bureau's zone; values are written with up to 4 decimals (HJ 212's N14.x)."""

from __future__ import annotations

import threading
from datetime import datetime

from ..aggregates.periods import local_text, zone
from ..aggregates.stats import Value
from ..contract import Reading
from ..hj212.cp import CP
from ..hj212.packet import FLAG_REPLY, FLAG_SPLIT, MAX_DATA, Packet, qn_at
from .settings import SiteSettings

VERSION_BITS = {"2017": 1, "2025": 2}  # Flag = V << 2 | D << 1 | A: 2017 -> 4/5, 2025 -> 8/9
CN_OF_PERIOD = {"minute": "2051", "hour": "2061", "day": "2031"}
PERIOD_OF_CN = {cn: p for p, cn in CN_OF_PERIOD.items()}
ST_INTERACTION = "91"
QN_RTN_READY, QN_RTN_REJECTED, QN_RTN_PW, QN_RTN_MN, QN_RTN_CN = "1", "2", "3", "4", "8"
EXE_OK, EXE_FAILED, EXE_CONDITION, EXE_NO_DATA = "1", "2", "3", "100"


def flag(version: str, reply: bool) -> int:
    return VERSION_BITS[version] << 2 | (FLAG_REPLY if reply else 0)


def number(v: float) -> str:
    text = f"{v:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


class QNs:
    """Request numbers: the local time in ms, strictly increasing (two packets in the same ms differ)."""

    def __init__(self, tz: str):
        self.tz = tz
        self._last = 0
        self._lock = threading.Lock()

    def next(self, now_ms: int) -> str:
        with self._lock:
            self._last = max(now_ms, self._last + 1)
            ms = self._last
        return qn_at(datetime.fromtimestamp(ms / 1000, zone(self.tz)))


def _size(p: Packet) -> int:
    return len(p.data_segment().encode("utf-8"))


def split(packet: Packet, next_qn=None, size=_size) -> list[Packet]:
    """The packet itself when its data segment fits the standard's 1,024 bytes, else its parts:
    the Flag's D bit, PNUM (how many) and PNO (which, from 1), each part with the CP's top-level
    fields (DataTime) and as many whole pollutant groups as fit. next_qn: a QN for each part after
    the first (uploads: each part is answered 9014 on its own QN); None: every part keeps the
    packet's QN (history answered to one request). size: the data segment's bytes as sent (an
    encrypted CP is longer). ValueError when one pollutant alone does not fit."""
    if size(packet) <= MAX_DATA:
        return [packet]
    top = [g for g in packet.cp.groups if not any("-" in k for k, _ in g)]
    items = [g for g in packet.cp.groups if any("-" in k for k, _ in g)]
    flag = (packet.flag or 0) | FLAG_SPLIT

    def part(groups, pnum=9999, pno=9999):  # the widest PNUM/PNO while measuring
        return Packet(st=packet.st, cn=packet.cn, mn=packet.mn, pw=packet.pw, qn=packet.qn, flag=flag,
                      pnum=pnum, pno=pno, cp=CP(top + groups), extra=list(packet.extra))

    chunks: list[list] = []
    for g in items:
        if chunks and size(part(chunks[-1] + [g])) <= MAX_DATA:
            chunks[-1].append(g)
            continue
        if size(part([g])) > MAX_DATA:
            raise ValueError(f"CN={packet.cn}: the item {g[0][0]} alone is over {MAX_DATA} bytes with the header")
        chunks.append([g])
    parts = []
    for i, groups in enumerate(chunks, 1):
        p = part(groups, len(chunks), i)
        if i > 1 and next_qn is not None:
            p.qn = next_qn()
        parts.append(p)
    return parts


def _packet(site: SiteSettings, version: str, cn: str, qn: str, cp: CP, reply: bool, st: str | None = None) -> Packet:
    return Packet(st=st or site.st, cn=cn, mn=site.mn, pw=site.pw, qn=qn, flag=flag(version, reply), cp=cp)


def rtd_packet(site: SiteSettings, version: str, qn: str, ts_ms: int, readings: dict[str, Reading], tz: str) -> Packet:
    """2011 real-time data: each parameter's value and flag at the sample time."""
    pollutants: dict[str, dict[str, str]] = {}
    for code, r in sorted(readings.items()):
        values = {} if r.value is None else {"Rtd": number(r.value)}
        values["Flag"] = r.flag
        pollutants[code] = values
    return _packet(site, version, "2011", qn, CP.build({"DataTime": local_text(ts_ms, tz)}, pollutants), True)


def period_packet(site: SiteSettings, version: str, qn: str, period: str, start_ms: int, values: dict[str, Value],
                  tz: str, reply: bool = True) -> Packet:
    """2051 / 2061 / 2031: Min, Avg, Max, Cou (where flow is measured) and the period's flag."""
    pollutants: dict[str, dict[str, str]] = {}
    for code, v in sorted(values.items()):
        item = {}
        for name, x in (("Min", v.lo), ("Avg", v.avg), ("Max", v.hi), ("Cou", v.cou)):
            if x is not None:
                item[name] = number(x)
        item["Flag"] = v.flag
        pollutants[code] = item
    return _packet(site, version, CN_OF_PERIOD[period], qn, CP.build({"DataTime": local_text(start_ms, tz)},
                                                                     pollutants), reply)


def qn_rtn(site: SiteSettings, version: str, request: Packet, code: str) -> Packet:
    """9011: the request is taken (1) or refused (QnRtn code); same QN as the request."""
    return _packet(site, version, "9011", request.qn, CP.build({"QnRtn": code}), False, ST_INTERACTION)


def exe_rtn(site: SiteSettings, version: str, request: Packet, code: str) -> Packet:
    """9012: how the request ended (ExeRtn code)."""
    return _packet(site, version, "9012", request.qn, CP.build({"ExeRtn": code}), False, ST_INTERACTION)


def notify_reply(site: SiteSettings, version: str, request: Packet) -> Packet:
    """9013: a notify (2012 stop real-time data) was received."""
    return _packet(site, version, "9013", request.qn, CP(), False, ST_INTERACTION)


def answer(site: SiteSettings, version: str, request: Packet, fields: dict[str, str]) -> Packet:
    """The data of a request (1011 SystemTime, 1061 RtdInterval, ...): same CN and QN, no reply wanted."""
    return _packet(site, version, request.cn, request.qn, CP.build(fields), False)


def heartbeat(site: SiteSettings, version: str, qn: str) -> Packet:
    """2025: 9015, answered by a 9014 (per the implementers' reading, README)."""
    return _packet(site, version, "9015", qn, CP(), True)
