"""Pure Modbus RTU framing: CRC-16, read requests (FC03/FC04) and parsing of their responses.
No I/O here, so it is tested byte-for-byte under both interpreters."""
import struct


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


def _check_args(unit, fc, addr, count):
    if not (type(unit) is int and 1 <= unit <= 247):
        raise ValueError("unit must be 1-247")
    if fc != 3 and fc != 4:
        raise ValueError("fc must be 3 or 4")
    if not (type(addr) is int and 0 <= addr <= 65535):
        raise ValueError("addr must be 0-65535")
    if not (type(count) is int and 1 <= count <= 125):
        raise ValueError("count must be 1-125")
    if addr + count > 65536:
        raise ValueError("addr+count beyond 65535")


def build_read_request(unit, fc, addr, count):
    """8-byte read request: unit, fc, addr hi/lo, count hi/lo, CRC lo/hi."""
    _check_args(unit, fc, addr, count)
    buf = bytearray(8)
    struct.pack_into(">BBHH", buf, 0, unit, fc, addr, count)
    crc = crc16(buf, 0, 6)
    buf[6] = crc & 0xFF
    buf[7] = crc >> 8
    return bytes(buf)


def response_length(header, count):
    """Total frame length implied by the first 3 bytes (unit, fc, byte count or exception code).
    Exception frames are always 5 bytes; normal ones 5 + 2*count (we trust our request, not the
    byte-count byte, so a lying slave cannot make us wait for 255 bytes)."""
    if len(header) < 3:
        raise ValueError("need 3 header bytes")
    if header[1] & 0x80:
        return 5
    return 5 + 2 * count


def parse_read_response(unit, fc, count, frame):
    """Validate a complete response frame and return its registers as a list of 16-bit ints.
    Raises ModbusException for exception responses, FrameError for anything malformed."""
    n = len(frame)
    if n < 5:
        raise FrameError("short frame (%d bytes)" % n)
    if frame[0] != unit:
        raise FrameError("wrong unit %d (expected %d)" % (frame[0], unit))
    rfc = frame[1]
    if rfc == (fc | 0x80):
        if n != 5:
            raise FrameError("exception frame length %d" % n)
        _check_crc(frame, n)
        raise ModbusException(frame[2])
    if rfc != fc:
        raise FrameError("wrong function code %d (expected %d)" % (rfc, fc))
    want = 5 + 2 * count
    if n != want:
        raise FrameError("length %d (expected %d)" % (n, want))
    if frame[2] != 2 * count:
        raise FrameError("byte count %d (expected %d)" % (frame[2], 2 * count))
    _check_crc(frame, n)
    regs = [0] * count
    for i in range(count):
        regs[i] = (frame[3 + 2 * i] << 8) | frame[4 + 2 * i]
    return regs


def _check_crc(frame, n):
    crc = crc16(frame, 0, n - 2)
    if frame[n - 2] != (crc & 0xFF) or frame[n - 1] != (crc >> 8):
        raise FrameError("bad CRC")


def build_read_response(unit, fc, regs):
    """Slave-side response frame; used by tests and the fake transport, not on the node's hot path."""
    count = len(regs)
    buf = bytearray(5 + 2 * count)
    buf[0] = unit
    buf[1] = fc
    buf[2] = 2 * count
    for i in range(count):
        buf[3 + 2 * i] = (regs[i] >> 8) & 0xFF
        buf[4 + 2 * i] = regs[i] & 0xFF
    crc = crc16(buf, 0, len(buf) - 2)
    buf[-2] = crc & 0xFF
    buf[-1] = crc >> 8
    return bytes(buf)


def build_exception_response(unit, fc, code):
    buf = bytearray(5)
    buf[0] = unit
    buf[1] = fc | 0x80
    buf[2] = code
    crc = crc16(buf, 0, 3)
    buf[3] = crc & 0xFF
    buf[4] = crc >> 8
    return bytes(buf)
