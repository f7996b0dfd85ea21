"""Pure Modbus framing: PDUs for function codes 01-06 and 16, RTU frames with CRC-16, RTU timing.
No I/O here, so it is tested byte-for-byte under both interpreters."""
import struct

READ_FCS = (1, 2, 3, 4)
FCS = (1, 2, 3, 4, 5, 6, 16)


class ModbusException(Exception):
    """The slave answered with an exception response (function code | 0x80)."""

    @property
    def code(self):
        return self.args[0]

    def __str__(self):
        return "modbus exception code %d" % self.args[0]


class FrameError(Exception):
    """The bytes received are not a valid answer to our request (CRC, unit, fc or length)."""

    @property
    def reason(self):
        return self.args[0]

    def __str__(self):
        return "bad frame: %s" % self.args[0]


def _crc_table():
    # Table-driven CRC: 8x faster than bitwise, 512 bytes of RAM (array of uint16).
    try:
        from array import array
        t = array("H", [0] * 256)
    except ImportError:
        t = [0] * 256
    for i in range(256):
        c = i
        for _ in range(8):
            if c & 1:
                c = (c >> 1) ^ 0xA001
            else:
                c >>= 1
        t[i] = c
    return t


_TABLE = _crc_table()


def crc16(data, start=0, end=None):
    """Modbus CRC-16 (init 0xFFFF, reflected poly 0xA001) over data[start:end]; sent low byte first."""
    if end is None:
        end = len(data)
    crc = 0xFFFF
    t = _TABLE
    for i in range(start, end):
        crc = (crc >> 8) ^ t[(crc ^ data[i]) & 0xFF]
    return crc


# ---- timing (RTU on a serial line) ----

def char_us(baud, bits=11):
    """Time on the wire of one character (start + 8 data + parity or 2nd stop + stop = 11 bits)."""
    return (bits * 1000000 + baud - 1) // baud


def silent_us(baud, bits=11):
    """The 3.5-character silence that ends a frame; the spec fixes 1750 us above 19200 baud."""
    return 1750 if baud > 19200 else (7 * char_us(baud, bits) + 1) // 2


def gap_us(baud, bits=11):
    """The 1.5-character limit between bytes of one frame; 750 us above 19200 baud."""
    return 750 if baud > 19200 else (3 * char_us(baud, bits) + 1) // 2


def frame_ms(nbytes, baud, bits=11):
    """Whole milliseconds (rounded up) a frame of nbytes takes on the wire, plus the silence after it."""
    return (nbytes * char_us(baud, bits) + silent_us(baud, bits) + 999) // 1000


# ---- PDUs ----

def _check(fc, addr, arg):
    if fc not in FCS:
        raise ValueError("fc must be one of 1 2 3 4 5 6 16")
    if not (type(addr) is int and 0 <= addr <= 65535):
        raise ValueError("addr must be 0-65535")
    if fc <= 4:
        top = 2000 if fc <= 2 else 125
        if not (type(arg) is int and 1 <= arg <= top):
            raise ValueError("count must be 1-%d" % top)
        n = arg
    elif fc == 5:
        n = 1
    elif fc == 6:
        if not (type(arg) is int and 0 <= arg <= 65535):
            raise ValueError("value must be 0-65535")
        n = 1
    else:
        n = len(arg)
        if not 1 <= n <= 123:
            raise ValueError("1-123 registers per write")
        for v in arg:
            if not (type(v) is int and 0 <= v <= 65535):
                raise ValueError("register values must be 0-65535")
    if addr + n > 65536:
        raise ValueError("addr+count beyond 65535")


def request_pdu(fc, addr, arg):
    """Request PDU. arg: count for fc 1-4, bool for 5, value for 6, list of values for 16."""
    _check(fc, addr, arg)
    if fc == 16:
        n = len(arg)
        buf = bytearray(6 + 2 * n)
        struct.pack_into(">BHHB", buf, 0, fc, addr, n, 2 * n)
        for i in range(n):
            struct.pack_into(">H", buf, 6 + 2 * i, arg[i])
        return buf
    if fc == 5:
        arg = 0xFF00 if arg else 0
    buf = bytearray(5)
    struct.pack_into(">BHH", buf, 0, fc, addr, arg)
    return buf


def response_pdu_length(fc, arg):
    """Length of the normal response PDU to our request (an exception PDU is always 2)."""
    if fc <= 2:
        return 2 + (arg + 7) // 8
    if fc <= 4:
        return 2 + 2 * arg
    return 5  # writes echo address and value/quantity


def parse_pdu(fc, addr, arg, b, i, n):
    """Check the response PDU b[i:n] against our request; return registers (fc 3/4), bits (fc 1/2)
    or True (writes). Raises ModbusException for exception responses, FrameError otherwise."""
    rfc = b[i]
    if rfc == (fc | 0x80):
        if n - i != 2:
            raise FrameError("exception frame length %d" % (n - i))
        raise ModbusException(b[i + 1])
    if rfc != fc:
        raise FrameError("wrong function code %d (expected %d)" % (rfc, fc))
    want = response_pdu_length(fc, arg)
    if n - i != want:
        raise FrameError("length %d (expected %d)" % (n - i, want))
    if fc <= 4:
        if b[i + 1] != want - 2:
            raise FrameError("byte count %d (expected %d)" % (b[i + 1], want - 2))
        if fc <= 2:
            return [(b[i + 2 + k // 8] >> (k % 8)) & 1 for k in range(arg)]
        regs = [0] * arg
        for k in range(arg):
            regs[k] = (b[i + 2 + 2 * k] << 8) | b[i + 3 + 2 * k]
        return regs
    echo = (b[i + 3] << 8) | b[i + 4]
    if fc == 5:
        val = 0xFF00 if arg else 0
    elif fc == 6:
        val = arg
    else:
        val = len(arg)
    if ((b[i + 1] << 8) | b[i + 2]) != addr or echo != val:
        raise FrameError("write echo does not match the request")
    return True


# ---- RTU frames: unit + PDU + CRC (low byte first) ----

def rtu_frame(unit, pdu):
    buf = bytearray(len(pdu) + 3)
    buf[0] = unit
    buf[1:1 + len(pdu)] = pdu
    crc = crc16(buf, 0, len(buf) - 2)
    buf[-2] = crc & 0xFF
    buf[-1] = crc >> 8
    return bytes(buf)


def build_request(unit, fc, addr, arg):
    if not (type(unit) is int and 1 <= unit <= 247):
        raise ValueError("unit must be 1-247")
    return rtu_frame(unit, request_pdu(fc, addr, arg))


def rtu_response_length(header, fc, arg):
    """Whole frame length implied by its first 3 bytes. We trust our request, not the byte-count
    byte, so a lying slave cannot make us wait for 255 bytes."""
    if len(header) < 3:
        raise ValueError("need 3 header bytes")
    if header[1] == (fc | 0x80):
        return 5
    if header[1] != fc:
        raise FrameError("wrong function code %d (expected %d)" % (header[1], fc))
    return 3 + response_pdu_length(fc, arg)


def parse_rtu_response(unit, fc, addr, arg, frame):
    """Validate a complete RTU response (CRC first: a corrupted frame's other bytes mean nothing)."""
    n = len(frame)
    if n < 5:
        raise FrameError("short frame (%d bytes)" % n)
    crc = crc16(frame, 0, n - 2)
    if frame[n - 2] != (crc & 0xFF) or frame[n - 1] != (crc >> 8):
        raise FrameError("bad CRC")
    if frame[0] != unit:
        raise FrameError("wrong unit %d (expected %d)" % (frame[0], unit))
    return parse_pdu(fc, addr, arg, frame, 1, n - 2)


# ---- the original read-only API, kept for callers and tests ----

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
    """Slave-side FC03/FC04 response; used by tests and fakes, not on the node's hot path."""
    pdu = bytearray(2 + 2 * len(regs))
    pdu[0] = fc
    pdu[1] = 2 * len(regs)
    for i in range(len(regs)):
        struct.pack_into(">H", pdu, 2 + 2 * i, regs[i])
    return rtu_frame(unit, pdu)


def build_exception_response(unit, fc, code):
    return rtu_frame(unit, bytes((fc | 0x80, code)))
