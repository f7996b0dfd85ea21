from modbus_rtu import (crc16, build_read_request, parse_read_response, response_length,
                        build_read_response, build_exception_response, ModbusException, FrameError)
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
