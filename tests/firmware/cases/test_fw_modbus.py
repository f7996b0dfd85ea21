from modbus_rtu import crc16, ModbusException, FrameError
from modbus_slave import (build_read_request, parse_read_response, response_length, build_read_response,
                          build_exception_response)
from modbus_master import ModbusMaster, ModbusTimeout
from fakes import FakeSlave, raises


def test_crc_known_vectors():
    assert crc16(b"\x01\x03\x00\x00\x00\x0a") == 0xCDC5  # sent as C5 CD
    assert crc16(b"") == 0xFFFF
    assert crc16(b"123456789") == 0x4B37  # CRC-16/MODBUS check value
    assert crc16(b"\x11\x03\x00\x6b\x00\x03") == 0x8776  # Modbus spec example: 76 87


def test_build_read_request_bytes():
    assert build_read_request(1, 3, 0, 10) == b"\x01\x03\x00\x00\x00\x0a\xc5\xcd"
    assert build_read_request(0x11, 3, 0x6B, 3) == b"\x11\x03\x00\x6b\x00\x03\x76\x87"
    r = build_read_request(247, 4, 65530, 6)
    assert r[:6] == b"\xf7\x04\xff\xfa\x00\x06" and len(r) == 8
    assert crc16(r, 0, 6) == r[6] | (r[7] << 8)


def test_build_read_request_validates():
    for args in ((0, 3, 0, 1), (248, 3, 0, 1), (1, 5, 0, 1), (1, 3, -1, 1), (1, 3, 65536, 1),
                 (1, 3, 0, 0), (1, 3, 0, 126), (1, 3, 65535, 2)):
        raises(ValueError, build_read_request, *args)


def test_response_length():
    assert response_length(b"\x01\x03\x04", 2) == 9
    assert response_length(b"\x01\x83\x02", 2) == 5


def test_parse_ok():
    frame = build_read_response(1, 3, [0x420C, 0xCCCD, 7])
    assert parse_read_response(1, 3, 3, frame) == [0x420C, 0xCCCD, 7]
    # Modbus spec example response (unit 0x11, 3 registers)
    spec = b"\x11\x03\x06\x02\x2b\x00\x00\x00\x64"
    c = crc16(spec)
    assert parse_read_response(0x11, 3, 3, spec + bytes([c & 0xFF, c >> 8])) == [0x022B, 0, 0x64]


def test_parse_bad_crc():
    frame = bytearray(build_read_response(1, 3, [1, 2]))
    frame[-1] ^= 1
    e = raises(FrameError, parse_read_response, 1, 3, 2, bytes(frame))
    assert "CRC" in str(e)


def test_parse_wrong_unit_fc_length():
    frame = build_read_response(2, 3, [1, 2])
    assert "unit" in str(raises(FrameError, parse_read_response, 1, 3, 2, frame))
    frame = build_read_response(1, 4, [1, 2])
    assert "function" in str(raises(FrameError, parse_read_response, 1, 3, 2, frame))
    frame = build_read_response(1, 3, [1, 2, 3])
    assert "length" in str(raises(FrameError, parse_read_response, 1, 3, 2, frame))
    raises(FrameError, parse_read_response, 1, 3, 2, b"\x01\x03")


def test_parse_exception_codes():
    for code in (1, 2, 3, 4, 6, 11):
        e = raises(ModbusException, parse_read_response, 1, 3, 2, build_exception_response(1, 3, code))
        assert e.code == code
    bad = bytearray(build_exception_response(1, 4, 2))
    bad[3] ^= 0x55
    raises(FrameError, parse_read_response, 1, 4, 2, bytes(bad))


def test_master_reads_and_flushes_stale_input():
    s = FakeSlave(holding={0: 0x420C, 1: 0xCCCD, 2: 1})
    s.stale = b"\x01\x03\x02\x00"  # late bytes of an earlier answer
    m = ModbusMaster(s)
    assert m.read_registers(1, 3, 0, 3, 500) == [0x420C, 0xCCCD, 1]
    assert s.flushes == 1
    assert s.requests[0] == build_read_request(1, 3, 0, 3)


def test_master_errors():
    s = FakeSlave(holding={0: 1})
    m = ModbusMaster(s)
    s.mode = "silent"
    raises(ModbusTimeout, m.read_registers, 1, 3, 0, 1, 100)
    s.mode = "exception"
    assert raises(ModbusException, m.read_registers, 1, 3, 0, 1, 100).code == 4
    s.mode = "badcrc"
    raises(FrameError, m.read_registers, 1, 3, 0, 1, 100)
    s.mode = "wrong_unit"
    raises(FrameError, m.read_registers, 1, 3, 0, 1, 100)
    s.mode = "oserror"
    raises(OSError, m.read_registers, 1, 3, 0, 1, 100)
    assert s.closed == 1  # transport dropped so it reconnects on the next request
    s.mode = "ok"
    assert m.read_registers(1, 3, 0, 1, 100) == [1]


# ---- all function codes, Modbus TCP, timing, retries (issue 3) ----

from modbus_rtu import build_request, parse_rtu_response, rtu_frame, rtu_response_length
from rtu_timing import char_us, silent_us, gap_us, frame_ms
from modbus_tcp import mbap_frame, parse_mbap_header
OK, TIMEOUTS, BAD_FRAMES, EXCEPTIONS, CRC_ERRORS = range(5)  # modbus_master._OK.. (const: not importable)
from modbus_fakes import FakeBus


def _h(s):
    return bytes(int(s[i:i + 2], 16) for i in range(0, len(s), 2))


def test_request_frames_match_the_spec_examples():
    # The Modbus serial-line spec's classic examples (unit 0x11), CRC included.
    assert build_request(0x11, 1, 0x13, 0x25) == _h("1101001300250E84")
    assert build_request(0x11, 2, 0xC4, 0x16) == _h("110200C40016BAA9")
    assert build_request(0x11, 4, 0x08, 1) == _h("110400080001B298")
    assert build_request(0x11, 5, 0xAC, True) == _h("110500ACFF004E8B")
    assert build_request(0x11, 6, 0x01, 3) == _h("1106000100039A9B")
    assert build_request(0x11, 16, 0x01, [0x000A, 0x0102]) == _h("11100001000204000A0102C6F0")
    assert build_request(1, 5, 0, False)[2:6] == b"\x00\x00\x00\x00"


def test_request_argument_limits():
    for args in ((1, 1, 0, 2001), (1, 2, 0, 0), (1, 6, 0, 65536), (1, 16, 0, []), (1, 16, 0, [0] * 124),
                 (1, 16, 65535, [1, 2]), (1, 7, 0, 1), (0, 3, 0, 1), (1, 16, 0, [70000])):
        raises(ValueError, build_request, *args)
    assert len(build_request(1, 1, 0, 2000)) == 8 and len(build_request(1, 16, 0, [0] * 123)) == 255


def test_parse_bits_and_write_echoes():
    # Spec example: coils 20-56 of unit 0x11 -> CD 6B B2 0E 1B
    frame = rtu_frame(0x11, _h("0105CD6BB20E1B"))
    bits = parse_rtu_response(0x11, 1, 0x13, 0x25, frame)
    assert len(bits) == 37 and bits[:8] == [1, 0, 1, 1, 0, 0, 1, 1] and bits[32:] == [1, 1, 0, 1, 1]
    assert rtu_response_length(frame[:3], 1, 0x25) == len(frame) == 10
    echo = _h("110500ACFF004E8B")
    assert parse_rtu_response(0x11, 5, 0xAC, True, echo) is True
    e = raises(FrameError, parse_rtu_response, 0x11, 5, 0xAC, False, echo)
    assert "echo" in str(e)
    assert parse_rtu_response(0x11, 16, 1, [10, 258], rtu_frame(0x11, _h("1000010002"))) is True
    raises(FrameError, parse_rtu_response, 0x11, 16, 1, [10, 258, 3], rtu_frame(0x11, _h("1000010002")))
    # A frame whose function code is neither ours nor our exception is rejected from its header.
    raises(FrameError, rtu_response_length, b"\x11\x04\x02", 3, 1)


def test_bad_frames_are_never_decoded():
    good = bytearray(build_read_response(7, 3, [0x1234, 0x5678]))
    for i in range(len(good)):  # any single corrupted byte: rejected, never returned as data
        bad = bytearray(good)
        bad[i] ^= 0x20
        raises(FrameError, parse_read_response, 7, 3, 2, bytes(bad))
    raises(FrameError, parse_read_response, 7, 3, 2, bytes(good[:-1]))
    raises(FrameError, parse_read_response, 7, 3, 2, bytes(good) + b"\x00")


def test_rtu_timing_from_baud_rate():
    assert char_us(9600) == 1146 and char_us(9600, 10) == 1042
    assert silent_us(9600) == 4011 and silent_us(19200) == 2006
    assert silent_us(38400) == 1750 and silent_us(115200) == 1750  # fixed above 19200 baud
    assert gap_us(9600) == 1719 and gap_us(57600) == 750
    assert frame_ms(8, 9600) == 14  # 8 chars (9.2 ms) + 3.5 chars of silence (4.0 ms), rounded up
    assert frame_ms(255, 115200) == 27


def test_mbap_framing():
    f = mbap_frame(0x1234, 9, request_pdu_bytes(3, 0x6B, 3))
    assert f == _h("12340000000609") + _h("03006B0003")
    assert parse_mbap_header(_h("12340000000909"), 0x1234, 9) == 8
    assert "transaction" in str(raises(FrameError, parse_mbap_header, _h("12350000000909"), 0x1234, 9))
    assert "protocol" in str(raises(FrameError, parse_mbap_header, _h("12340001000909"), 0x1234, 9))
    assert "unit" in str(raises(FrameError, parse_mbap_header, _h("12340000000908"), 0x1234, 9))
    raises(FrameError, parse_mbap_header, _h("12340000FFFF09"), 0x1234, 9)


def request_pdu_bytes(fc, addr, arg):
    from modbus_rtu import request_pdu
    return bytes(request_pdu(fc, addr, arg))


def _bus(framing):
    bus = FakeBus(framing)
    u = bus.unit(3)
    u.set_regs(3, 100, [11, 22, 33])
    u.set_regs(4, 7, [0xBEEF])
    u.bits[1][5] = 1
    u.bits[2][0] = 1
    u.bits[2][9] = 1
    return bus, u


def test_master_every_function_code_both_framings():
    for framing in ("rtu", "mbap"):
        bus, u = _bus(framing)
        m = ModbusMaster(bus)
        assert m.read_registers(3, 3, 100, 3, 200) == [11, 22, 33]
        assert m.read_registers(3, 4, 7, 1, 200) == [0xBEEF]
        assert m.read_bits(3, 1, 4, 3, 200) == [0, 1, 0]
        assert m.read_bits(3, 2, 0, 10, 200) == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        assert m.request(3, 5, 6, True, 200) is True and u.bits[1][6] == 1
        assert m.request(3, 6, 101, 0xABCD, 200) is True and u.regs[3][101] == 0xABCD
        assert m.request(3, 16, 200, [1, 2, 3], 200) is True and u.regs[3][202] == 3
        assert m.read_registers(3, 3, 200, 3, 200) == [1, 2, 3]
        raises(ValueError, m.read_registers, 3, 1, 0, 1, 200)
        raises(ValueError, m.read_bits, 3, 3, 0, 1, 200)
    # Modbus TCP: every request a new transaction id, checked in the answer.
    assert bus.sent[0][:2] == b"\x00\x01" and bus.sent[1][:2] == b"\x00\x02"


def test_master_retries_and_health_counts():
    for framing in ("rtu", "mbap"):
        bus, u = _bus(framing)
        m = ModbusMaster(bus)
        h = [0, 0, 0, 0, 0]
        u.mode = "silent"
        raises(ModbusTimeout, m.read_registers, 3, 3, 100, 1, 50, 2, h)
        assert u.asked == 3 and h == [0, 3, 0, 0, 0]  # first try + 2 retries
        u.mode = "exception"
        assert raises(ModbusException, m.read_registers, 3, 3, 100, 1, 50, 2, h).code == 4
        assert u.asked == 4 and h[EXCEPTIONS] == 1  # a clear answer: not repeated
        u.mode = "wrong_unit"
        raises(FrameError, m.read_registers, 3, 3, 100, 1, 50, 1, h)
        assert h[BAD_FRAMES] == 2 and h[CRC_ERRORS] == 0 and u.asked == 6  # a wrong unit is no CRC error
        u.mode = "short"
        raises((FrameError, ModbusTimeout), m.read_registers, 3, 3, 100, 2, 50, 0, h)
        u.mode = "ok"
        assert m.read_registers(3, 3, 100, 1, 50, 1, h) == [11]
        assert h[OK] == 1 and h[TIMEOUTS] >= 3
    bus, u = _bus("rtu")
    m = ModbusMaster(bus)
    h = [0, 0, 0, 0, 0]
    u.mode = "badcrc"
    raises(FrameError, m.read_registers, 3, 3, 100, 1, 50, 1, h)
    assert h == [0, 0, 2, 0, 2]  # both bad frames were CRC errors
    u.mode = "oserror"
    raises(OSError, m.read_registers, 3, 3, 100, 1, 50, 3, h)
    assert u.asked == 3 and bus.closed == 1 and h[TIMEOUTS] == 1  # broken link: closed, not repeated


def test_master_passes_its_own_timeout_to_the_transport():
    bus, u = _bus("rtu")
    m = ModbusMaster(bus)
    u.mode = "silent"
    raises(ModbusTimeout, m.read_registers, 3, 3, 100, 1, 123, 1)
    assert bus.waits == [123, 123]


def test_crc16_table_matches_bitwise():
    # modbus_rtu._TABLE is a bytes constant: every entry must be the bitwise CRC of its index.
    def bitwise(data):
        c = 0xFFFF
        for x in data:
            c ^= x
            for _ in range(8):
                c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        return c
    for i in range(256):
        d = bytes([i, (i * 7) & 0xFF, 255 - i])
        assert crc16(d) == bitwise(d)


def test_gateway_no_answer_exceptions_are_timeouts_not_faults():
    # 0x0A/0x0B come from a serial server or TCP gateway when the analyzer behind it is silent:
    # counted and retried as timeouts, raised as ModbusTimeout (-> flag B, backoff), not as a fault.
    for framing in ("rtu", "mbap"):
        for code in (10, 11):
            bus, u = _bus(framing)
            m = ModbusMaster(bus)
            h = [0, 0, 0, 0, 0]
            u.mode = "exception"
            u.exc_code = code
            raises(ModbusTimeout, m.read_registers, 3, 3, 100, 1, 50, 2, h)
            assert u.asked == 3 and h == [0, 3, 0, 0, 0], (framing, code, h)
            u.exc_code = 2  # any other code is the analyzer's own answer: once, an exception
            assert raises(ModbusException, m.read_registers, 3, 3, 100, 1, 50, 2, h).code == 2
            assert u.asked == 4 and h == [0, 3, 0, 1, 0]


def test_byte_count_is_checked_even_with_a_valid_crc_and_length():
    # A frame of the right length and a good CRC whose byte-count byte lies is still refused.
    good = build_read_response(1, 3, [1, 2])
    bad = bytearray(good[:-2])
    bad[2] = 2  # says 2 bytes, the frame carries 4
    bad = rtu_frame(bad[0], bytes(bad[1:]))
    assert len(bad) == len(good)
    e = raises(FrameError, parse_rtu_response, 1, 3, 0, 2, bad)
    assert "byte count" in str(e)
