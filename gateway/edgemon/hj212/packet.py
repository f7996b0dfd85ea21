"""HJ 212 packets: encode, and parse what platforms and loggers really send (pure).

Layout (HJ 212-2017 6.3): `##` + data-segment length (4 decimal digits, the segment's UTF-8 byte
count) + data segment + CRC (4 hex digits, crc.py) + `\\r\\n`. Data segment: `QN=...;ST=..;CN=....;
PW=...;MN=...;Flag=.;[PNUM=.;PNO=.;]CP=&&...&&` (QN 17 digits YYYYMMDDhhmmsszzz, Flag bits V5..V0 D A:
A = reply wanted, D = split packet with PNUM/PNO, V = 0 HJ/T 212-2005, 1 HJ 212-2017, 2 HJ 212-2025).

parse() is lenient where the field is known to differ from the standard and says so: a lowercase
CRC, fields in another order, a 2005-style packet without QN/Flag, an unknown field, a missing
trailer, a segment over 1,024 bytes - each is a deviation in the result, the packet is accepted.
A wrong length, a wrong CRC or a broken syntax is rejected (PacketError), naming which and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from .cp import CP, CPError, OpaqueCP
from .crc import VARIANTS, crc_hex

HEX = re.compile(r"[0-9A-Fa-f]+")
ORDER = ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO", "CP")
MAX_DATA = 1024
VERSIONS = {0: "HJ/T 212-2005", 1: "HJ 212-2017", 2: "HJ 212-2025"}
FLAG_REPLY = 1
FLAG_SPLIT = 2


class PacketError(ValueError):
    """A packet refused: kind is "syntax", "length" or "crc"; str() is the reason."""

    def __init__(self, kind: str, reason: str):
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


@dataclass
class Packet:
    st: str
    cn: str
    mn: str
    pw: str | None = None
    qn: str | None = None
    flag: int | None = None
    pnum: int | None = None
    pno: int | None = None
    cp: CP = field(default_factory=CP)
    extra: list[tuple[str, str]] = field(default_factory=list)  # fields the standard does not define

    @property
    def version(self) -> str:
        if self.flag is None:
            return VERSIONS[0]
        return VERSIONS.get(self.flag >> 2, f"unknown version bits {self.flag >> 2}")

    @property
    def wants_reply(self) -> bool:
        return bool(self.flag is not None and self.flag & FLAG_REPLY)

    def data_segment(self) -> str:
        parts = []
        for name, value in (("QN", self.qn), ("ST", self.st), ("CN", self.cn), ("PW", self.pw), ("MN", self.mn),
                            ("Flag", self.flag), ("PNUM", self.pnum), ("PNO", self.pno)):
            if value is not None:
                parts.append(f"{name}={value}")
        parts += [f"{k}={v}" for k, v in self.extra]
        parts.append(f"CP=&&{self.cp.encode()}&&")
        return ";".join(parts)

    def encode(self, crc_variant: str = "standard") -> bytes:
        data = self.data_segment().encode("utf-8")
        if len(data) > MAX_DATA:
            raise ValueError(f"data segment is {len(data)} bytes, over the standard's {MAX_DATA}: "
                             "split it into packets with PNUM/PNO")
        return b"##%04d" % len(data) + data + crc_hex(data, crc_variant).encode() + b"\r\n"


@dataclass
class Parsed:
    packet: Packet
    deviations: list[str]
    raw: bytes


def qn_at(t: datetime) -> str:
    """The QN of an exchange started at t (its own time zone; the bureau's is Asia/Shanghai)."""
    return t.strftime("%Y%m%d%H%M%S") + f"{t.microsecond // 1000:03d}"


def _int(name: str, value: str, lo: int, hi: int) -> int:
    if not value.isdigit() or not lo <= int(value) <= hi:
        raise PacketError("syntax", f"{name}={value!r}: an integer {lo}-{hi} expected")
    return int(value)


def parse(raw: bytes | str, crc_variant: str = "standard") -> Parsed:
    if crc_variant not in VARIANTS:
        raise ValueError(f"CRC variant must be one of {', '.join(VARIANTS)}, not {crc_variant!r}")
    b = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    dev: list[str] = []
    if b.endswith(b"\r\n"):
        body = b[:-2]
    elif b.endswith(b"\n"):
        body = b[:-1]
        dev.append("trailer: \\n without \\r")
    else:
        body = b
        dev.append("trailer: no \\r\\n at the end")
    if not body.startswith(b"##"):
        raise PacketError("syntax", "a packet starts with ##")
    head = body[2:6]
    if len(head) < 4 or not head.isdigit():
        raise PacketError("syntax", f"4 decimal digits of length expected after ##, got {head.decode('utf-8', 'replace')!r}")
    data, crc_text = body[6:-4], body[-4:]
    if len(body) < 10 or not all(c in b"0123456789abcdefABCDEF" for c in crc_text):
        raise PacketError("syntax", f"4 hex digits of CRC expected before the trailer, got {crc_text.decode('utf-8', 'replace')!r}")
    declared = int(head)
    if declared != len(data):
        try:
            chars = len(data.decode("utf-8"))
        except UnicodeDecodeError:
            chars = -1
        hint = (" (it is the character count: the sender counted characters, not UTF-8 bytes)"
                if chars == declared else "")
        raise PacketError("length", f"the header says {declared:04d}, the data segment is {len(data)} bytes{hint}")
    want = crc_hex(data, crc_variant)
    got = crc_text.decode()
    if got.upper() != want:
        others = [v for v in VARIANTS if v != crc_variant and crc_hex(data, v) == got.upper()]
        hint = f"; it is the {others[0]} CRC (set the endpoint's crc to {others[0]!r} if the platform uses it)" if others else ""
        raise PacketError("crc", f"the packet says {got}, the {crc_variant} CRC of its data segment is {want}{hint}")
    if got != want:
        dev.append(f"crc: lowercase hex {got}")
    if len(data) > MAX_DATA:
        dev.append(f"length: data segment {len(data)} bytes, over the standard's {MAX_DATA}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PacketError("syntax", f"data segment is not UTF-8 (byte {exc.start})") from None
    return Parsed(_fields(text, dev), dev, b)


def _fields(text: str, dev: list[str]) -> Packet:
    at = text.find("CP=&&")
    if at < 0:
        raise PacketError("syntax", "no CP=&&...&& in the data segment")
    if not text.endswith("&&") or len(text) < at + 7:
        raise PacketError("syntax", "CP=&& is not closed by && at the end of the data segment")
    cp_text = text[at + 5:-2]
    head = text[:at]
    if head and not head.endswith(";"):
        raise PacketError("syntax", "';' expected before CP=")
    seen: dict[str, str] = {}
    order: list[str] = []
    extra: list[tuple[str, str]] = []
    for part in head[:-1].split(";") if head else []:
        name, eq, value = part.partition("=")
        if not eq or not name:
            raise PacketError("syntax", f"field {part!r}: NAME=value expected")
        if name in seen:
            raise PacketError("syntax", f"field {name} given twice")
        seen[name] = value
        if name in ORDER:
            order.append(name)
        else:
            extra.append((name, value))
            dev.append(f"field: {name} is not a field of the standard")
    order.append("CP")
    for need in ("ST", "CN", "MN"):
        if need not in seen:
            raise PacketError("syntax", f"no {need} field")
    if "PW" not in seen:
        dev.append("field: no PW")
    if order != [f for f in ORDER if f in order]:
        dev.append("order: fields as " + ";".join(order) + " (the standard's order: " + ";".join(f for f in ORDER if f in order) + ")")
    if "QN" not in seen and "Flag" not in seen:
        dev.append("version: no QN and no Flag (an HJ/T 212-2005 packet)")
    elif "QN" not in seen:
        dev.append("field: no QN")
    elif "Flag" not in seen:
        dev.append("field: no Flag")
    qn = seen.get("QN")
    if qn is not None and not (len(qn) == 17 and qn.isdigit()):
        dev.append(f"QN={qn}: 17 digits YYYYMMDDhhmmsszzz expected")
    flag = _int("Flag", seen["Flag"], 0, 255) if "Flag" in seen else None
    if flag is not None and flag >> 2 not in VERSIONS:
        dev.append(f"Flag={flag}: version bits {flag >> 2} are no known version")
    pnum = _int("PNUM", seen["PNUM"], 1, 9999) if "PNUM" in seen else None
    pno = _int("PNO", seen["PNO"], 1, 9999) if "PNO" in seen else None
    if flag is not None and flag & FLAG_SPLIT and (pnum is None or pno is None):
        raise PacketError("syntax", f"Flag={flag} says split (D bit) but PNUM/PNO are missing")
    if pnum is not None and pno is not None and pno > pnum:
        raise PacketError("syntax", f"PNO={pno} is beyond PNUM={pnum}")
    if (pnum is not None or pno is not None) and not (flag is not None and flag & FLAG_SPLIT):
        dev.append("field: PNUM/PNO without the Flag's D bit")
    try:
        cp = CP.parse(cp_text)
    except CPError as exc:
        if not (flag is not None and flag >> 2 == 2 and len(cp_text) % 32 == 0 and HEX.fullmatch(cp_text)):
            raise PacketError("syntax", str(exc)) from None
        cp = OpaqueCP(cp_text)
        dev.append("CP: hex, not name=value: taken as HJ 212-2025 SM4-encrypted (decrypt with the site's key)")
    return Packet(st=seen["ST"], cn=seen["CN"], mn=seen["MN"], pw=seen.get("PW"), qn=qn, flag=flag, pnum=pnum,
                  pno=pno, cp=cp, extra=extra)
