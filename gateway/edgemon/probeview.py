"""What `edgemon node probe` shows from a node's probe result: per value the raw registers it was
decoded from (hex), the value, flag, unit and the limit it will be checked against, and with
all_orders the same registers read as every type and word/byte order (how a wrong profile is
settled on site). Pure: the node's result in, rows out."""

from __future__ import annotations

import struct
from typing import Any

TYPES = {"int16": (1, ">h"), "uint16": (1, ">H"), "int32": (2, ">i"), "uint32": (2, ">I"),
         "float32": (2, ">f"), "float64": (4, ">d")}
ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
WIDTH = {"bit": 1, **{t: w for t, (w, _) in TYPES.items()}}


def _swap(regs: list[int], order: str) -> list[int]:
    """Registers as the firmware's decode reads them for an order: CDAB swaps words, BADC bytes,
    DCBA both (ABCD: as they came)."""
    words = list(reversed(regs)) if order in ("CDAB", "DCBA") else list(regs)
    if order in ("BADC", "DCBA"):
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return words


def decode(regs: list[int], typ: str, order: str) -> float | int:
    width, fmt = TYPES[typ]
    words = _swap(regs[:width], order) if width > 1 else _swap(regs[:1], "BADC" if order in ("BADC", "DCBA") else "ABCD")
    return struct.unpack(fmt, struct.pack(f">{width}H", *words))[0]


def all_orders(regs: list[int]) -> dict[str, float | int]:
    """Every type and order the registers can be read as ("float32 CDAB": value, ...)."""
    out: dict[str, float | int] = {}
    for typ, (width, _) in TYPES.items():
        if len(regs) < width:
            continue
        for order in ORDERS if width > 1 else ("ABCD", "BADC"):
            out[f"{typ} {order}"] = decode(regs, typ, order)
    return out


def rows(result: dict[str, Any], units: dict[str, str], limits: dict[str, str]) -> list[dict[str, Any]]:
    """One row per value: analyzer, param, raw (hex registers or bits), regs, value, flag, type,
    order, unit, limit."""
    out = []
    for name, an in result.items():
        located: dict[int, tuple[str, int, int]] = {}  # value index -> (block raw, offset, fc)
        for fc, start, raw, members in an["blocks"]:
            for k in range(0, len(members), 2):
                if members[k] >= 0:
                    located[members[k]] = (raw, members[k + 1], fc)
        for i, (param, (value, flag, typ, order)) in enumerate(an["values"].items()):
            raw, off, fc = located.get(i, ("", 0, 0))
            regs: list[int] = []
            shown = raw
            if raw.startswith("no answer"):
                pass
            elif fc in (1, 2):
                shown = raw[off:off + 1]
            else:
                n = WIDTH.get(typ, 1)
                regs = [int(raw[4 * (off + j):4 * (off + j) + 4], 16) for j in range(n) if 4 * (off + j) + 4 <= len(raw)]
                shown = " ".join(f"{r:04X}" for r in regs)
            out.append({"analyzer": name, "unit_id": an["unit"], "param": param, "raw": shown, "regs": regs,
                        "value": value, "flag": flag, "type": typ, "order": order, "unit": units.get(param, ""),
                        "limit": limits.get(param)})
    return out


def limit_text(limit) -> str:
    """An alarms Limit (min, max, cold_max) as a technician reads it: "<= 40", "6-9", ">= 2"."""
    if limit is None:
        return ""
    lo, hi = limit.min, limit.max
    text = f"{lo:g}-{hi:g}" if lo is not None and hi is not None else f"<= {hi:g}" if hi is not None else \
        f">= {lo:g}" if lo is not None else ""
    return text + (f" (cold: <= {limit.cold_max:g})" if limit.cold_max is not None else "")
