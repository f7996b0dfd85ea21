"""The CRC of an HJ 212 packet, and the variants field platforms use instead.

HJ 212-2017 Appendix A: the register starts at 0xFFFF; for each byte it becomes (reg >> 8) ^ byte,
then 8 shifts right, each xor 0xA001 when the bit shifted out was 1. Written as 4 hex digits, high
byte first, over the data segment's UTF-8 bytes. Unlike the Modbus CRC-16 (same polynomial and
start, but reg ^= byte) it drops the register's low byte at every step, so it takes only 256
values: a weak check, never a substitute for TCP/TLS integrity.

Variants (a per-endpoint setting): "standard" (Appendix A), "modbus" (the Modbus CRC-16, written
high byte first), "modbus-swapped" (the same, low byte first, as Modbus sends it on the wire).
"""

from __future__ import annotations

VARIANTS = ("standard", "modbus", "modbus-swapped")


def _shift8(reg: int) -> int:
    for _ in range(8):
        reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


def crc_standard(data: bytes) -> int:
    reg = 0xFFFF
    for b in data:
        reg = _shift8((reg >> 8) ^ b)
    return reg


def crc_modbus(data: bytes) -> int:
    reg = 0xFFFF
    for b in data:
        reg = _shift8(reg ^ b)
    return reg


def crc(data: bytes, variant: str = "standard") -> int:
    if variant == "standard":
        return crc_standard(data)
    if variant == "modbus":
        return crc_modbus(data)
    if variant == "modbus-swapped":
        v = crc_modbus(data)
        return ((v & 0xFF) << 8) | (v >> 8)
    raise ValueError(f"CRC variant must be one of {', '.join(VARIANTS)}, not {variant!r}")


def crc_hex(data: bytes, variant: str = "standard") -> str:
    """The 4 uppercase hex digits a packet carries."""
    return f"{crc(data, variant):04X}"
