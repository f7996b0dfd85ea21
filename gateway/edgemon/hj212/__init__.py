"""HJ 212 (污染物在线监控(监测)系统数据传输标准): the packet codec (packet.py, cp.py, crc.py), pure.
Facts and the standard's rules: docs/ARCHITECTURE.md and ../shared/domain/README.md."""

from .cp import CP, CPError
from .crc import VARIANTS, crc, crc_hex
from .packet import Packet, PacketError, Parsed, parse, qn_at

__all__ = ["CP", "CPError", "VARIANTS", "crc", "crc_hex", "Packet", "PacketError", "Parsed", "parse", "qn_at"]
