"""The independent PDU decoder (PyPI smspdudecoder) that checks every PDU the gateway writes.

smspdudecoder 2.2.0 needs `bitstring.BitStream`, which bitstring 5 removed: the lock pins bitstring 4.x."""

from __future__ import annotations

from io import StringIO

from smspdudecoder.fields import SMSSubmit


def decode(pdu_hex: str) -> dict:
    """recipient, text and (ref, parts, part) of the concatenation UDH (None when single)."""
    sms = SMSSubmit.decode(StringIO(pdu_hex))
    number = sms["recipient"]["number"]
    if sms["recipient"]["toa"]["ton"] == "international":
        number = "+" + number
    concat = None
    header = sms["user_data"].get("header")
    if header:
        for el in header.get("elements", []):
            if el["iei"] in (0x00, 0x08):
                d = el["data"]
                concat = (d["reference"], d["parts_count"], d["part_number"])
    return {"number": number, "text": sms["user_data"]["data"], "concat": concat,
            "encoding": sms["dcs"]["encoding"], "udhi": sms["header"]["udhi"]}


def join_messages(pdus: list[str]) -> list[tuple[str, str]]:
    """(number, text) per complete message, parts joined in UDH order."""
    out, pending = [], {}
    for pdu in pdus:
        d = decode(pdu)
        if d["concat"] is None:
            out.append((d["number"], d["text"]))
            continue
        ref, total, seq = d["concat"]
        parts = pending.setdefault((d["number"], ref, total), {})
        parts[seq] = d["text"]
        if len(parts) == total:
            out.append((d["number"], "".join(parts[i] for i in range(1, total + 1))))
            del pending[(d["number"], ref, total)]
    return out
