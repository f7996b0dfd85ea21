"""The analyzer's side of Modbus RTU (responses and exception responses) and the read-only request
helpers of firmware 0.1, on top of modbus_rtu. For test fakes and simulators: the node never loads
it (each module the node imports costs heap on the device)."""
import struct
from modbus_rtu import build_request, parse_rtu_response, rtu_frame


# ---- the read-only helpers of firmware 0.1 ----

def build_read_request(unit, fc, addr, count):
    """8-byte FC03/FC04 request: unit, fc, addr hi/lo, count hi/lo, CRC lo/hi."""
    if fc != 3 and fc != 4:
        raise ValueError("fc must be 3 or 4")
    return build_request(unit, fc, addr, count)


def response_length(header, count):
    if len(header) < 3:
        raise ValueError("need 3 header bytes")
    return 5 if header[1] & 0x80 else 5 + 2 * count


def parse_read_response(unit, fc, count, frame):
    return parse_rtu_response(unit, fc, 0, count, frame)


def build_read_response(unit, fc, regs):
    """FC03/FC04 response as an analyzer sends it."""
    pdu = bytearray(2 + 2 * len(regs))
    pdu[0] = fc
    pdu[1] = 2 * len(regs)
    for i in range(len(regs)):
        struct.pack_into(">H", pdu, 2 + 2 * i, regs[i])
    return rtu_frame(unit, pdu)


def build_exception_response(unit, fc, code):
    return rtu_frame(unit, bytes((fc | 0x80, code)))
