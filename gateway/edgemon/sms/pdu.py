"""SMS-SUBMIT PDUs (3GPP TS 23.040) for AT+CMGF=0: UCS2 text, split into concatenated parts with an
8-bit-reference UDH when longer than one SMS. Pure: text and number in, hex strings out."""

from __future__ import annotations

import re
from dataclasses import dataclass

SINGLE_UNITS = 70  # UCS2 code units in one SMS (140 octets)
PART_UNITS = 67  # per part of a concatenated SMS (140 - 6 octets of UDH)
MAX_PARTS = 255

NUMBER_RE = re.compile(r"\+?[0-9]{3,20}")

_FIRST_OCTET = 0x11  # TP-MTI submit, TP-VPF relative
_UDHI = 0x40
_DCS_UCS2 = 0x08
_VP_24H = 0xA7


class PduError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Pdu:
    hex: str  # the whole PDU, SMSC octet ("00": the SIM's SMSC) included
    tpdu_len: int  # the number AT+CMGS wants: octets after the SMSC part


def _address(number: str) -> str:
    if not NUMBER_RE.fullmatch(number):
        raise PduError(f"recipient {number!r} is not a phone number (digits, optional leading +)")
    international = number.startswith("+")
    digits = number.lstrip("+")
    toa = 0x91 if international else 0x81
    padded = digits + ("F" if len(digits) % 2 else "")
    swapped = "".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))
    return f"{len(digits):02X}{toa:02X}{swapped}"


def split_units(text: str) -> list[str]:
    """The text as the parts it is sent in (one part when it fits one SMS). A surrogate pair is
    never split across parts."""
    units = len(text.encode("utf-16-be")) // 2
    if units <= SINGLE_UNITS:
        return [text]
    parts, current, used = [], [], 0
    for ch in text:
        n = 2 if ord(ch) > 0xFFFF else 1
        if used + n > PART_UNITS:
            parts.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += n
    if current:
        parts.append("".join(current))
    if len(parts) > MAX_PARTS:
        raise PduError(f"text needs {len(parts)} parts; at most {MAX_PARTS}")
    return parts


def encode_submit(number: str, text: str, ref: int = 0) -> list[Pdu]:
    """One PDU per part. `ref` (0-255) ties the parts of one concatenated message together; the
    caller keeps it stable when it resends, so a phone never shows a half message twice."""
    if not text:
        raise PduError("empty message")
    if not 0 <= ref <= 255:
        raise PduError(f"concatenation reference {ref} is not in 0..255")
    da = _address(number)
    parts = split_units(text)
    out = []
    for i, part in enumerate(parts, start=1):
        body = part.encode("utf-16-be")
        if len(parts) == 1:
            first, udh = _FIRST_OCTET, b""
        else:
            first, udh = _FIRST_OCTET | _UDHI, bytes([5, 0x00, 3, ref, len(parts), i])
        ud = udh + body
        tpdu = f"{first:02X}00{da}00{_DCS_UCS2:02X}{_VP_24H:02X}{len(ud):02X}{ud.hex().upper()}"
        out.append(Pdu(hex="00" + tpdu, tpdu_len=len(tpdu) // 2))
    return out


def decode_submit(pdu_hex: str) -> dict:
    """The inverse of encode_submit, for what this module writes (used by the modem simulator to
    show texts; the tests check encode_submit with an independent decoder)."""
    b = bytes.fromhex(pdu_hex)
    i = 1 + b[0]  # skip SMSC
    first = b[i]
    i += 2  # first octet, TP-MR
    ndigits, toa = b[i], b[i + 1]
    nbytes = (ndigits + 1) // 2
    raw = b[i + 2 : i + 2 + nbytes].hex().upper()
    digits = "".join(raw[j + 1] + raw[j] for j in range(0, len(raw), 2))[:ndigits]
    number = ("+" if toa == 0x91 else "") + digits
    i += 2 + nbytes
    dcs = b[i + 1]
    i += 2
    if (first >> 3) & 3 == 2:
        i += 1
    udl = b[i]
    ud = b[i + 1 : i + 1 + udl]
    concat = None
    if first & _UDHI:
        hl = ud[0]
        udh, ud = ud[1 : 1 + hl], ud[1 + hl :]
        if udh[0] == 0 and udh[1] == 3:
            concat = (udh[2], udh[3], udh[4])
    if dcs != _DCS_UCS2:
        raise PduError(f"data coding scheme {dcs:#04x} not decoded here")
    return {"number": number, "text": ud.decode("utf-16-be"), "concat": concat}
