"""Pure Modbus framing: PDUs for function codes 01-06 and 16, RTU frames with CRC-16 (timing on a
serial line: rtu_timing.py; the analyzer's side, for tests and simulators: host/modbus_slave.py).
No I/O here, so it is tested byte-for-byte under both interpreters."""
import struct

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


# CRC-16 table (reflected poly 0xA001), entry i = _TABLE[2*i] | _TABLE[2*i+1] << 8. A bytes constant:
# it stays in the .mpy (ROMFS: in flash), not 512 bytes of heap; tests/firmware checks it bitwise.
_TABLE = (
    b"\x00\x00\xc1\xc0\x81\xc1\x40\x01\x01\xc3\xc0\x03\x80\x02\x41\xc2\x01\xc6\xc0\x06\x80\x07\x41\xc7\x00\x05\xc1\xc5\x81\xc4\x40\x04"
    b"\x01\xcc\xc0\x0c\x80\x0d\x41\xcd\x00\x0f\xc1\xcf\x81\xce\x40\x0e\x00\x0a\xc1\xca\x81\xcb\x40\x0b\x01\xc9\xc0\x09\x80\x08\x41\xc8"
    b"\x01\xd8\xc0\x18\x80\x19\x41\xd9\x00\x1b\xc1\xdb\x81\xda\x40\x1a\x00\x1e\xc1\xde\x81\xdf\x40\x1f\x01\xdd\xc0\x1d\x80\x1c\x41\xdc"
    b"\x00\x14\xc1\xd4\x81\xd5\x40\x15\x01\xd7\xc0\x17\x80\x16\x41\xd6\x01\xd2\xc0\x12\x80\x13\x41\xd3\x00\x11\xc1\xd1\x81\xd0\x40\x10"
    b"\x01\xf0\xc0\x30\x80\x31\x41\xf1\x00\x33\xc1\xf3\x81\xf2\x40\x32\x00\x36\xc1\xf6\x81\xf7\x40\x37\x01\xf5\xc0\x35\x80\x34\x41\xf4"
    b"\x00\x3c\xc1\xfc\x81\xfd\x40\x3d\x01\xff\xc0\x3f\x80\x3e\x41\xfe\x01\xfa\xc0\x3a\x80\x3b\x41\xfb\x00\x39\xc1\xf9\x81\xf8\x40\x38"
    b"\x00\x28\xc1\xe8\x81\xe9\x40\x29\x01\xeb\xc0\x2b\x80\x2a\x41\xea\x01\xee\xc0\x2e\x80\x2f\x41\xef\x00\x2d\xc1\xed\x81\xec\x40\x2c"
    b"\x01\xe4\xc0\x24\x80\x25\x41\xe5\x00\x27\xc1\xe7\x81\xe6\x40\x26\x00\x22\xc1\xe2\x81\xe3\x40\x23\x01\xe1\xc0\x21\x80\x20\x41\xe0"
    b"\x01\xa0\xc0\x60\x80\x61\x41\xa1\x00\x63\xc1\xa3\x81\xa2\x40\x62\x00\x66\xc1\xa6\x81\xa7\x40\x67\x01\xa5\xc0\x65\x80\x64\x41\xa4"
    b"\x00\x6c\xc1\xac\x81\xad\x40\x6d\x01\xaf\xc0\x6f\x80\x6e\x41\xae\x01\xaa\xc0\x6a\x80\x6b\x41\xab\x00\x69\xc1\xa9\x81\xa8\x40\x68"
    b"\x00\x78\xc1\xb8\x81\xb9\x40\x79\x01\xbb\xc0\x7b\x80\x7a\x41\xba\x01\xbe\xc0\x7e\x80\x7f\x41\xbf\x00\x7d\xc1\xbd\x81\xbc\x40\x7c"
    b"\x01\xb4\xc0\x74\x80\x75\x41\xb5\x00\x77\xc1\xb7\x81\xb6\x40\x76\x00\x72\xc1\xb2\x81\xb3\x40\x73\x01\xb1\xc0\x71\x80\x70\x41\xb0"
    b"\x00\x50\xc1\x90\x81\x91\x40\x51\x01\x93\xc0\x53\x80\x52\x41\x92\x01\x96\xc0\x56\x80\x57\x41\x97\x00\x55\xc1\x95\x81\x94\x40\x54"
    b"\x01\x9c\xc0\x5c\x80\x5d\x41\x9d\x00\x5f\xc1\x9f\x81\x9e\x40\x5e\x00\x5a\xc1\x9a\x81\x9b\x40\x5b\x01\x99\xc0\x59\x80\x58\x41\x98"
    b"\x01\x88\xc0\x48\x80\x49\x41\x89\x00\x4b\xc1\x8b\x81\x8a\x40\x4a\x00\x4e\xc1\x8e\x81\x8f\x40\x4f\x01\x8d\xc0\x4d\x80\x4c\x41\x8c"
    b"\x00\x44\xc1\x84\x81\x85\x40\x45\x01\x87\xc0\x47\x80\x46\x41\x86\x01\x82\xc0\x42\x80\x43\x41\x83\x00\x41\xc1\x81\x81\x80\x40\x40"
)


def crc16(data, start=0, end=None):
    """Modbus CRC-16 (init 0xFFFF, reflected poly 0xA001) over data[start:end]; sent low byte first."""
    if end is None:
        end = len(data)
    crc = 0xFFFF
    t = _TABLE
    for i in range(start, end):
        j = ((crc ^ data[i]) & 0xFF) << 1
        crc = (crc >> 8) ^ t[j] ^ (t[j + 1] << 8)
    return crc


# ---- PDUs ----

# Messages are built from two shared formats and short words: on the device each distinct long
# string constant of a loaded module is an object in the heap (~40 bytes apiece on the unix port).

def _bad(what, allowed):
    return ValueError("%s must be %s" % (what, allowed))


def _mismatch(what, got, want):
    return FrameError("%s %d, expected %s" % (what, got, want))


def _check(fc, addr, arg):
    if fc not in FCS:
        raise _bad("fc", "1-6 or 16")
    if not (type(addr) is int and 0 <= addr <= 65535):
        raise _bad("addr", "0-65535")
    if fc <= 4:
        top = 2000 if fc <= 2 else 125
        if not (type(arg) is int and 1 <= arg <= top):
            raise _bad("count", "1-%d" % top)
        n = arg
    elif fc == 5:
        n = 1
    elif fc == 6:
        if not (type(arg) is int and 0 <= arg <= 65535):
            raise _bad("value", "0-65535")
        n = 1
    else:
        n = len(arg)
        if not 1 <= n <= 123:
            raise _bad("count", "1-123")
        for v in arg:
            if not (type(v) is int and 0 <= v <= 65535):
                raise _bad("values", "0-65535")
    if addr + n > 65536:
        raise _bad("addr+count", "<= 65536")


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
            raise _mismatch("length", n - i, 2)
        raise ModbusException(b[i + 1])
    if rfc != fc:
        raise _mismatch("function", rfc, fc)
    want = response_pdu_length(fc, arg)
    if n - i != want:
        raise _mismatch("length", n - i, want)
    if fc <= 4:
        if b[i + 1] != want - 2:
            raise _mismatch("byte count", b[i + 1], want - 2)
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
    if ((b[i + 1] << 8) | b[i + 2]) != addr:
        raise _mismatch("write echo", (b[i + 1] << 8) | b[i + 2], addr)
    if echo != val:
        raise _mismatch("write echo", echo, val)
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
        raise _bad("unit", "1-247")
    return rtu_frame(unit, request_pdu(fc, addr, arg))


def rtu_response_length(header, fc, arg):
    """Whole frame length implied by its first 3 bytes. We trust our request, not the byte-count
    byte, so a lying slave cannot make us wait for 255 bytes."""
    if len(header) < 3:
        raise _bad("header", "3 bytes")
    if header[1] == (fc | 0x80):
        return 5
    if header[1] != fc:
        raise _mismatch("function", header[1], fc)
    return 3 + response_pdu_length(fc, arg)


def parse_rtu_response(unit, fc, addr, arg, frame):
    """Validate a complete RTU response (CRC first: a corrupted frame's other bytes mean nothing)."""
    n = len(frame)
    if n < 5:
        raise _mismatch("length", n, ">= 5")
    crc = crc16(frame, 0, n - 2)
    if frame[n - 2] != (crc & 0xFF) or frame[n - 1] != (crc >> 8):
        raise FrameError("bad CRC")
    if frame[0] != unit:
        raise _mismatch("unit", frame[0], unit)
    return parse_pdu(fc, addr, arg, frame, 1, n - 2)
