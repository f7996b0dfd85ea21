"""Pure Modbus TCP framing: the 7-byte MBAP header (transaction id, protocol 0, length, unit)
in front of the same PDUs as RTU; TCP itself replaces the CRC."""
import struct
from modbus_rtu import FrameError

MBAP_LEN = 7


def mbap_frame(tid, unit, pdu):
    buf = bytearray(MBAP_LEN + len(pdu))
    struct.pack_into(">HHHB", buf, 0, tid & 0xFFFF, 0, len(pdu) + 1, unit)
    buf[MBAP_LEN:] = pdu
    return bytes(buf)


def parse_mbap_header(header, tid, unit):
    """Check an answer's header against our request; return how many PDU bytes follow.
    A wrong transaction id is most often the late answer to a request that timed out."""
    rtid, proto, length, runit = struct.unpack(">HHHB", header)
    if rtid != (tid & 0xFFFF):
        raise FrameError("transaction id %d (expected %d)" % (rtid, tid & 0xFFFF))
    if proto != 0:
        raise FrameError("protocol id %d (expected 0)" % proto)
    if not 3 <= length <= 254:
        raise FrameError("MBAP length %d" % length)
    if runit != unit:
        raise FrameError("wrong unit %d (expected %d)" % (runit, unit))
    return length - 1
