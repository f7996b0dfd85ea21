"""The uplink's part of gateway.toml: the bureau's platforms (endpoints) and, per site, what identifies
it to them. Checked with the rest of the file (config.py), every problem named with its fix.

    [uplink.platforms.<name>]   host, port, version ("2017" | "2025"), crc, over_time_s, re_count,
                                reconnect_s, heartbeat_s (2025), sm4_key_env + sm4_padding (2025)
    [uplink.sites.<site>]       mn, pw, st, platforms = ["<name>", ...], rtd_interval_s, min_interval_min,
                                send = ["rtd", "minute", "hour", "day"]
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..configschema import REQUIRED, Field, Problems, read, unknown_fix
from ..hj212.crc import VARIANTS

VERSIONS = ("2017", "2025")
SENDS = ("rtd", "minute", "hour", "day")
PADDINGS = ("zero", "pkcs7", "none")
MN_2025 = re.compile(r"[0-9A-Fa-f]{24}")

PLATFORM = {
    "host": Field(str, REQUIRED, "the platform's address (it is the TCP server; the gateway connects)",
                  example="10.1.2.3"),
    "port": Field(int, REQUIRED, ge=1, le=65535, example=9001),
    "version": Field(str, "2017", "HJ 212-2017, or HJ 212-2025 (what of 2025 is covered: README)", enum=VERSIONS,
                     expect='"2017" or "2025"'),
    "crc": Field(str, "standard", "the packets' CRC: the standard's (Appendix A), or the Modbus CRC some "
                 "platforms compute", enum=tuple(VARIANTS), expect=" or ".join(f'"{v}"' for v in VARIANTS)),
    "over_time_s": Field(float, 10.0, "wait this long for the 9014 reply before sending again (OverTime)", gt=0,
                         le=99, expect="1-99 seconds"),
    "re_count": Field(int, 3, "send again this many times, then the link is down (ReCount)", ge=1, le=99),
    "reconnect_s": Field(float, 10.0, "pause before connecting again after the link went down", gt=0),
    "heartbeat_s": Field(float, 0.0, "2025: send a 9015 heartbeat when idle this long (0: never)", ge=0),
    "sm4_key_env": Field(str, None, "2025: the environment variable holding the SM4 key (32 hex digits): "
                         "the CP of data packets is encrypted", example="EDGEMON_SM4_KEY"),
    "sm4_padding": Field(str, "zero", "2025: how the CP is padded to 16 bytes before SM4 (the standard's text "
                         "is not available: ask the platform)", enum=PADDINGS,
                         expect='"zero", "pkcs7" or "none"'),
}
SITE = {
    "mn": Field(str, REQUIRED, "the site's MN (2017: up to 24 characters; 2025: the 24 hex digits the "
                "platform assigned)", pattern=r"[0-9A-Za-z]{1,24}", expect="1-24 letters and digits",
                example="010000A8900016F000169DC0"),
    "pw": Field(str, REQUIRED, "the access password the platform gave (PW, up to 9 characters)",
                pattern=r"[0-9A-Za-z]{1,9}", expect="1-9 letters and digits", example="123456"),
    "st": Field(str, "32", "the system code: 32 waste water, 31 flue gas, 44 power use (2025)",
                pattern=r"[0-9]{2}", expect="two digits", example="32"),
    "platforms": Field(list, REQUIRED, "the platforms this site reports to", example=["province"],
                       items=Field(str, pattern=r"[A-Za-z0-9_-]{1,64}", expect="a platform name")),
    "rtd_interval_s": Field(int, 60, "real-time data (2011) every this many seconds (RtdInterval; the "
                            "platform may change it)", ge=30, le=3600, expect="30-3600 seconds"),
    "min_interval_min": Field(int, 1, "minute data (2051) over this many minutes (MinInterval)", ge=1, le=60,
                              check=lambda v: 60 % v == 0, expect="a divisor of 60: 1, 2, 5, 10, 15, 30 or 60"),
    "send": Field(list, list(SENDS), "what goes up: rtd (2011), minute (2051), hour (2061), day (2031)",
                  items=Field(str, enum=SENDS, expect=", ".join(SENDS))),
}


@dataclass(frozen=True)
class PlatformSettings:
    name: str
    host: str
    port: int
    version: str = "2017"
    crc: str = "standard"
    over_time_s: float = 10.0
    re_count: int = 3
    reconnect_s: float = 10.0
    heartbeat_s: float = 0.0
    sm4_key: bytes | None = None
    sm4_padding: str = "zero"


@dataclass(frozen=True)
class SiteSettings:
    site: str
    mn: str
    pw: str
    st: str = "32"
    platforms: tuple[str, ...] = ()
    rtd_interval_s: int = 60
    min_interval_min: int = 1
    send: tuple[str, ...] = SENDS


@dataclass
class UplinkSettings:
    platforms: dict[str, PlatformSettings] = field(default_factory=dict)
    sites: dict[str, SiteSettings] = field(default_factory=dict)


def _table(doc, where: str, problems: Problems, example: str) -> dict:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        problems.add(where, f"expected tables [{where}.<name>]", f"write [{where}.{example}] and its fields")
        return {}
    return doc


def read_uplink(doc, known_sites: set[str], problems: Problems) -> UplinkSettings | None:
    """[uplink] of gateway.toml (None when absent); problems are added, all of them."""
    if doc is None:
        return None
    out = UplinkSettings()
    if not isinstance(doc, dict):
        problems.add("uplink", "expected a table [uplink]", "write [uplink.platforms.<name>] and [uplink.sites.<site>]")
        return out
    for key in doc:
        if key not in ("platforms", "sites"):
            problems.add(f"uplink.{key}", "unknown field", unknown_fix(key, ["platforms", "sites"]))
    for name, table in _table(doc.get("platforms"), "uplink.platforms", problems, "province").items():
        where = f"uplink.platforms.{name}"
        if not isinstance(table, dict):
            problems.add(where, "expected a table", f"write [{where}] then host and port")
            continue
        v = read(table, PLATFORM, problems, where)
        key = None
        if v.get("sm4_key_env"):
            if v["version"] != "2025":
                problems.add(f"{where}.sm4_key_env", "SM4 encryption is HJ 212-2025's",
                             'write version = "2025", or remove sm4_key_env')
            text = os.environ.get(v["sm4_key_env"])
            if text is None:
                problems.add(f"{where}.sm4_key_env", f"environment variable {v['sm4_key_env']} is not set",
                             f"export {v['sm4_key_env']}=<32 hex digits> in the gateway's environment")
            elif not re.fullmatch(r"[0-9A-Fa-f]{32}", text):
                problems.add(f"{where}.sm4_key_env", f"{v['sm4_key_env']} is not 32 hex digits (a 16-byte SM4 key)",
                             "set it to the key the platform issued, as 32 hex digits")
            else:
                key = bytes.fromhex(text)
        if v.get("heartbeat_s") and v["version"] != "2025":
            problems.add(f"{where}.heartbeat_s", "the 9015 heartbeat is HJ 212-2025's",
                         'write version = "2025", or heartbeat_s = 0')
        if not v.bad:
            out.platforms[name] = PlatformSettings(name, v["host"], v["port"], v["version"], v["crc"],
                                                   v["over_time_s"], v["re_count"], v["reconnect_s"],
                                                   v["heartbeat_s"], key, v["sm4_padding"])
    for site, table in _table(doc.get("sites"), "uplink.sites", problems, "qd-plant").items():
        where = f"uplink.sites.{site}"
        if not isinstance(table, dict):
            problems.add(where, "expected a table", f"write [{where}] then mn, pw and platforms")
            continue
        if site not in known_sites:
            problems.add(where, f"site {site!r} is not under [sites]",
                         f"add [sites.{site}] with its nodes, or correct the name (known: "
                         f"{', '.join(sorted(known_sites)) or 'none'})")
        v = read(table, SITE, problems, where)
        if v.get("platforms") == [] and "platforms" not in v.bad:
            problems.add(f"{where}.platforms", "empty: the site reports to no platform",
                         'name one, e.g. platforms = ["province"], or remove this [uplink.sites] table')
            v.bad.add("platforms")
        for k, name in enumerate(v.get("platforms") or ()):
            if name not in (doc.get("platforms") or {}):
                problems.add(f"{where}.platforms[{k}]", f"no platform {name!r}",
                             f"add [uplink.platforms.{name}] with host and port, or correct the name")
        for name in v.get("platforms") or ():
            p = (doc.get("platforms") or {}).get(name)
            if isinstance(p, dict) and p.get("version") == "2025" and v.get("mn") and not MN_2025.fullmatch(v["mn"]):
                problems.add(f"{where}.mn", f"platform {name!r} speaks HJ 212-2025, whose MN is the 24 hex "
                             "digits it assigned", "write the MN the platform issued for this site")
        if not v.bad:
            out.sites[site] = SiteSettings(site, v["mn"], v["pw"], v["st"], tuple(v["platforms"]),
                                           v["rtd_interval_s"], v["min_interval_min"], tuple(v["send"]))
    return out
