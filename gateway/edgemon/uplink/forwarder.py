"""The HJ 212 forwarder: the gateway's link to the bureau's platforms (observer thread for what goes
in; one Link thread per platform for what goes out). Real-time data (2011) from the records the
gateway accepted, at most one per site per RtdInterval; minute (2051, over MinInterval minutes),
hour (2061) and day (2031) data from the aggregates as they are computed (and again when a late
record recomputed them). Each packet is encoded per platform (its version's Flag, its CRC, SM4 for
2025 when keyed) and queued durably before the aggregates leave their outbox. The platform's
requests are answered by requests.py; history from InfluxDB's `aggregate` points."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from ..aggregates.engine import Point
from ..aggregates.periods import DEFAULT_TZ, start_of
from ..aggregates.stats import Acc, Value, rollup
from ..contract import Record, Status
from ..hj212.packet import Packet
from ..sms import store
from . import packets as P
from . import requests
from .link import Link
from .queue import UplinkQueue
from .settings import PlatformSettings, SiteSettings, UplinkSettings
from .sm4 import EncryptedCP, encrypt_cp, encrypted

log = logging.getLogger(__name__)
STATE_FILE = "settings.json"  # what the platforms changed: RtdInterval, MinInterval, OverTime, ReCount


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Forwarder:
    def __init__(self, settings: UplinkSettings, state_dir: Path, *, tz: str = DEFAULT_TZ,
                 history: requests.History | None = None, clock_ms: Callable[[], int] = _now_ms,
                 medium: Callable[[str], str] = lambda site: "water"):
        self.settings, self.tz, self.clock_ms, self.medium = settings, tz, clock_ms, medium
        self.history = history or (lambda period, begin, end: [])
        self.state_dir = Path(state_dir)
        self.queue = UplinkQueue(self.state_dir)
        self.qns = P.QNs(tz)
        self.state: dict = store.read_json(self.state_dir / STATE_FILE, {})
        self._last_rtd: dict[str, int] = {}
        self._minutes: dict[tuple[str, str, int], dict[str, list]] = {}  # (site, node, block) -> param -> [(acc, value)]
        self.links = {name: Link(p, self.queue, self._requests_of(p), self._heartbeat_of(p), self._link_settings(p))
                      for name, p in settings.platforms.items()}

    def start(self) -> Forwarder:
        for link in self.links.values():
            link.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.queue.count() and time.monotonic() < deadline and any(k.up for k in self.links.values()):
            time.sleep(0.05)
        for link in self.links.values():
            link.stop()
        self.queue.close()

    # --- settings the platform may change -----------------------------------------------------

    def current(self, site: SiteSettings, platform: PlatformSettings) -> dict[str, int]:
        s = self.state.get(site.site, {})
        p = self.state.get("platform:" + platform.name, {})
        return {"rtd_interval_s": s.get("rtd_interval_s", site.rtd_interval_s),
                "min_interval_min": s.get("min_interval_min", site.min_interval_min),
                "rtd_on": s.get("rtd_on", 1),
                "over_time_s": p.get("over_time_s", platform.over_time_s),
                "re_count": p.get("re_count", platform.re_count)}

    def _link_settings(self, platform: PlatformSettings):
        def get() -> tuple[float, int]:
            p = self.state.get("platform:" + platform.name, {})
            return float(p.get("over_time_s", platform.over_time_s)), int(p.get("re_count", platform.re_count))
        return get

    # --- what goes in (observer thread) ---------------------------------------------------------

    def on_records(self, site: str, node: str, records: list[Record], receive_ms: int) -> None:
        s = self.settings.sites.get(site)
        if s is None or "rtd" not in s.send:
            return
        for rec in sorted(records, key=lambda r: r.ts):
            first = self.settings.platforms[s.platforms[0]]
            cur = self.current(s, first)
            if not cur["rtd_on"] or rec.ts - self._last_rtd.get(site, -10**15) < cur["rtd_interval_s"] * 1000:
                continue
            self._last_rtd[site] = rec.ts
            self._enqueue(s, lambda version, qn: P.rtd_packet(s, version, qn, rec.ts, rec.readings, self.tz))

    def on_status(self, site: str, node: str, status: Status, receive_ms: int) -> None:
        pass

    def on_tick(self, now_ms: int) -> None:
        pass

    def on_aggregates(self, points: list[Point]) -> None:
        """The aggregates' listener: queue one packet per site, period and start (every node's values)."""
        groups: dict[tuple[str, str, int], dict[str, Value]] = {}
        for p in points:
            s = self.settings.sites.get(p.site)
            if s is None or p.period not in s.send:
                continue
            groups.setdefault((p.site, p.period, p.start), {})[p.param] = p.value
            if p.period == "minute":
                self._note_minute(s, p)
        for (site, period, start), values in sorted(groups.items(), key=lambda kv: kv[0][2]):
            s = self.settings.sites[site]
            if period == "minute" and self._min_interval(s) > 1:
                continue  # sent per MinInterval block below
            self._enqueue(s, lambda version, qn, period=period, start=start, values=values:
                          P.period_packet(s, version, qn, period, start, values, self.tz))
        self._send_blocks()

    def _min_interval(self, s: SiteSettings) -> int:
        return self.current(s, self.settings.platforms[s.platforms[0]])["min_interval_min"]

    def _note_minute(self, s: SiteSettings, p: Point) -> None:
        n = self._min_interval(s)
        if n <= 1:
            return
        block = start_of("minute", p.start) // (n * 60_000) * (n * 60_000)
        acc = Acc(count=p.value.count, n=p.value.n)
        if p.value.avg is not None:
            acc.total, acc.lo, acc.hi = p.value.avg * p.value.n, p.value.lo, p.value.hi
        self._minutes.setdefault((s.site, p.node, block), {}).setdefault(p.param, []).append((acc, p.value))

    def _send_blocks(self) -> None:
        """MinInterval > 1: a block's values from its minutes once the block is over."""
        now = self.clock_ms()
        for key in sorted(self._minutes, key=lambda k: k[2]):
            site, node, block = key
            s = self.settings.sites[site]
            n = self._min_interval(s)
            if block + n * 60_000 > now:
                continue
            values = {param: rollup(parts, "hour", self.medium(site))[0]
                      for param, parts in self._minutes.pop(key).items()}
            self._enqueue(s, lambda version, qn, block=block, values=values:
                          P.period_packet(s, version, qn, "minute", block, values, self.tz))

    def _encode(self, platform: PlatformSettings, packet: Packet) -> bytes:
        return self._as_sent(platform, packet).encode(platform.crc)

    def _enqueue(self, s: SiteSettings, make: Callable[[str, str], Packet]) -> None:
        items = []
        now = self.clock_ms()
        for name in s.platforms:
            platform = self.settings.platforms[name]
            packet = make(platform.version, self.qns.next(now))
            try:  # over 1,024 bytes as sent: PNUM/PNO parts, each its own QN and 9014
                parts = P.split(packet, lambda: self.qns.next(now), self._size_as_sent(platform))
                items += [(name, p.cn, p.qn, p.wants_reply, self._encode(platform, p)) for p in parts]
            except ValueError as exc:  # one item alone over 1,024 bytes: not sendable
                log.error("uplink: %s CN=%s for %s not sent: %s", s.site, packet.cn, name, exc)
        self.queue.put(items)

    # --- what comes back (link threads) ---------------------------------------------------------

    def _requests_of(self, platform: PlatformSettings):
        by_mn = {s.mn: s for s in self.settings.sites.values() if platform.name in s.platforms}

        def answer(request: Packet) -> list[Packet]:
            site = by_mn.get(request.mn)
            if site is None:
                log.warning("uplink %s: request CN=%s for unknown MN %s", platform.name, request.cn, request.mn)
                return []
            out = requests.handle(request, site, platform.version, self.current(site, platform), self.clock_ms(),
                                  self.tz, lambda period, b, e: self.history(site.site, period, b, e))
            for line in out.log:
                log.info("uplink %s: %s: %s", platform.name, site.site, line)
            if out.changes:
                for key, v in out.changes.items():
                    where = "platform:" + platform.name if key in ("over_time_s", "re_count") else site.site
                    self.state.setdefault(where, {})[key] = v
                store.write_json(self.state_dir / STATE_FILE, self.state)
            size = self._size_as_sent(platform)
            sent = []
            for pk in out.packets:  # a history packet over 1,024 bytes as sent: PNUM/PNO parts, the request's QN
                try:
                    sent += [self._as_sent(platform, part) for part in P.split(pk, None, size)]
                except ValueError as exc:
                    log.error("uplink %s: %s CN=%s not sent: %s", platform.name, site.site, pk.cn, exc)
            return sent
        return answer

    def _as_sent(self, platform: PlatformSettings, packet: Packet) -> Packet:
        """The packet as this platform takes it: 2025 with a key: the CP of data commands SM4-encrypted."""
        if platform.version == "2025" and platform.sm4_key and encrypted(packet.cn):
            return dataclasses.replace(packet, cp=EncryptedCP(encrypt_cp(packet.cp.encode(), platform.sm4_key,
                                                                          platform.sm4_padding)))
        return packet

    def _size_as_sent(self, platform: PlatformSettings):
        return lambda p: len(self._as_sent(platform, p).data_segment().encode("utf-8"))

    def _heartbeat_of(self, platform: PlatformSettings):
        sites = [s for s in self.settings.sites.values() if platform.name in s.platforms]
        if platform.version != "2025" or not sites:
            return None
        return lambda: P.heartbeat(sites[0], platform.version, self.qns.next(self.clock_ms())).encode(platform.crc)
