"""The HJ 212 codec (edgemon.hj212) against the standard's own example, the CRC check values, and
packets built from the standard's Appendix C exchanges (upload, reply, split, history request)."""

from datetime import datetime

import pytest

from edgemon.hj212 import CP, Packet, PacketError, crc, crc_hex, parse, qn_at

# HJ 212-2017 Appendix A's example (its prose says 1C08; the CRC of its data segment is 1C80).
STD_EXAMPLE = (b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;"
               b"CP=&&RtdInterval=30&&1C80\r\n")


def test_crc_check_values_and_the_standards_example():
    assert crc(b"123456789") == 0x2F80 and crc(b"123456789", "modbus") == 0x4B37
    assert crc(b"") == 0xFFFF and crc(b"", "modbus") == 0xFFFF
    assert crc(b"123456789", "modbus-swapped") == 0x374B
    data = STD_EXAMPLE[6:-6]
    assert len(data) == 101 and crc_hex(data) == "1C80"


def test_the_standards_example_parses_and_encodes_back_byte_for_byte():
    p = parse(STD_EXAMPLE)
    assert p.deviations == []
    k = p.packet
    assert (k.qn, k.st, k.cn, k.pw, k.mn, k.flag) == ("20160801085857223", "32", "1062", "100000",
                                                      "010000A8900016F000169DC0", 5)
    assert k.version == "HJ 212-2017" and k.wants_reply and k.cp.get("RtdInterval") == "30"
    assert k.encode() == STD_EXAMPLE


def test_a_utf8_packet_counts_bytes_not_characters():
    # A site log (CN 3020, i11001 info) in Chinese: 4 characters, 12 UTF-8 bytes.
    cp = CP([[("DataTime", "20160801085857")], [("i11001-Info", "//清洗管路//")]])
    k = Packet(qn="20160801085857223", st="32", cn="3020", pw="123456", mn="010000A8900016F000169DC0", flag=5, cp=cp)
    raw = k.encode()
    data = raw[6:-6]
    assert len(data.decode()) == len(data) - 8 and raw[2:6] == b"%04d" % len(data)
    assert parse(raw).packet.cp.get("i11001-Info") == "//清洗管路//"
    # The same packet with the character count in its header (what some implementations send).
    chars = b"##%04d" % len(data.decode()) + raw[6:]
    with pytest.raises(PacketError) as e:
        parse(chars)
    assert e.value.kind == "length" and "character count" in e.value.reason


def test_a_realtime_upload_with_pollutants_and_its_9014_reply():
    # Appendix C's real-time upload shape: DataTime, then each pollutant's Rtd and Flag in one item.
    up = Packet(qn="20160801085857223", st="32", cn="2011", pw="123456", mn="010000A8900016F000169DC0", flag=5,
                cp=CP.build({"DataTime": "20160801085857"},
                            {"w01018": {"Rtd": "25.3", "Flag": "N"}, "w21003": {"Rtd": "1.12", "Flag": "M"}}))
    raw = up.encode()
    assert b"CP=&&DataTime=20160801085857;w01018-Rtd=25.3,w01018-Flag=N;w21003-Rtd=1.12,w21003-Flag=M&&" in raw
    got = parse(raw).packet
    assert got.cp.pollutants() == {"w01018": {"Rtd": "25.3", "Flag": "N"}, "w21003": {"Rtd": "1.12", "Flag": "M"}}
    reply = Packet(qn=got.qn, st="91", cn="9014", pw="123456", mn=got.mn, flag=4)
    r = parse(reply.encode()).packet
    assert r.encode().endswith(b"Flag=4;CP=&&&&" + crc_hex(reply.data_segment().encode()).encode() + b"\r\n")
    assert r.qn == up.qn and not r.wants_reply and r.cp.items() == []


def test_split_packets_carry_pnum_and_pno():
    part = Packet(qn="20160801085857534", st="32", cn="2051", pw="123456", mn="M1", flag=7, pnum=2, pno=1,
                  cp=CP.build({"DataTime": "20160801085800"}, {"w01018": {"Avg": "20.1", "Flag": "N"}}))
    got = parse(part.encode()).packet
    assert (got.pnum, got.pno, got.flag) == (2, 1, 7)
    no_pno = part.encode().replace(b";PNUM=2;PNO=1", b"")
    no_pno = b"##%04d" % len(no_pno[6:-6]) + no_pno[6:-6] + crc_hex(no_pno[6:-6]).encode() + b"\r\n"
    with pytest.raises(PacketError, match="PNUM/PNO are missing"):
        parse(no_pno)


def _repack(data: bytes, crc_text: bytes | None = None) -> bytes:
    return b"##%04d" % len(data) + data + (crc_text or crc_hex(data).encode()) + b"\r\n"


def test_field_variants_are_accepted_and_each_deviation_named():
    data = STD_EXAMPLE[6:-6]
    lower = parse(STD_EXAMPLE.replace(b"1C80\r\n", b"1c80\r\n"))
    assert lower.deviations == ["crc: lowercase hex 1c80"]
    swapped = data.replace(b"PW=100000;MN=010000A8900016F000169DC0", b"MN=010000A8900016F000169DC0;PW=100000")
    p = parse(_repack(swapped))
    assert p.packet.pw == "100000" and any(d.startswith("order: fields as QN;ST;CN;MN;PW") for d in p.deviations)
    old = b"ST=32;CN=2011;PW=123456;MN=LD130133000015;CP=&&DataTime=20120801085857;011-Rtd=25.3,011-Flag=N&&"
    p = parse(_repack(old))
    assert p.packet.version == "HJ/T 212-2005" and p.packet.qn is None
    assert p.deviations == ["version: no QN and no Flag (an HJ/T 212-2005 packet)"]
    assert p.packet.cp.pollutants()["011"] == {"Rtd": "25.3", "Flag": "N"}
    assert parse(STD_EXAMPLE[:-2]).deviations == ["trailer: no \\r\\n at the end"]
    p = parse(_repack(data.replace(b"Flag=5;", b"Flag=5;XX=1;")))
    assert p.deviations == ["field: XX is not a field of the standard"] and p.packet.extra == [("XX", "1")]
    assert parse(_repack(data.replace(b"Flag=5", b"Flag=9"))).packet.version == "HJ 212-2025"


@pytest.mark.parametrize("raw, kind, words", [
    (STD_EXAMPLE.replace(b"1C80", b"1C08"), "crc", "the packet says 1C08, the standard CRC of its data segment is 1C80"),
    (STD_EXAMPLE.replace(b"##0101", b"##0100"), "length", "the header says 0100, the data segment is 101 bytes"),
    (STD_EXAMPLE[1:], "syntax", "starts with ##"),
    (STD_EXAMPLE.replace(b"##0101", b"##01a1"), "syntax", "4 decimal digits"),
    (STD_EXAMPLE.replace(b"1C80", b"1CZ0"), "syntax", "4 hex digits of CRC"),
    (_repack(STD_EXAMPLE[6:-6].replace(b"CN=1062;", b"")), "syntax", "no CN field"),
    (_repack(STD_EXAMPLE[6:-6].replace(b"Flag=5", b"Flag=x")), "syntax", "Flag='x'"),
    (_repack(STD_EXAMPLE[6:-6].replace(b"&&RtdInterval=30&&", b"&&RtdInterval=30")), "syntax", "not closed"),
    (_repack(STD_EXAMPLE[6:-6].replace(b"RtdInterval=30", b"RtdInterval=30;")), "syntax", "a name=value is missing"),
    (_repack(STD_EXAMPLE[6:-6].replace(b"ST=32", b"ST=32;ST=31")), "syntax", "ST given twice"),
])
def test_wrong_length_crc_or_syntax_is_rejected_with_the_reason(raw, kind, words):
    with pytest.raises(PacketError) as e:
        parse(raw)
    assert e.value.kind == kind and words in str(e.value), str(e.value)


def test_the_crc_variant_is_a_setting_and_a_mismatch_names_the_variant_that_fits():
    data = STD_EXAMPLE[6:-6]
    modbus = _repack(data, crc_hex(data, "modbus").encode())
    with pytest.raises(PacketError, match="it is the modbus CRC"):
        parse(modbus)
    assert parse(modbus, crc_variant="modbus").deviations == []
    k = parse(STD_EXAMPLE).packet
    assert parse(k.encode("modbus-swapped"), crc_variant="modbus-swapped").packet.qn == k.qn
    with pytest.raises(ValueError, match="CRC variant must be one of"):
        parse(STD_EXAMPLE, crc_variant="ccitt")


def test_log_text_may_hold_separators_and_a_packet_over_1024_bytes_is_refused_to_encode():
    cp = CP.parse("DataTime=20160801085857;i11001-Info=//a;b,c=d&e//")
    assert cp.get("i11001-Info") == "//a;b,c=d&e//" and cp.encode() == "DataTime=20160801085857;i11001-Info=//a;b,c=d&e//"
    big = Packet(st="32", cn="2011", mn="M", cp=CP.build({"x": "9" * 1100}))
    with pytest.raises(ValueError, match="split it into packets with PNUM/PNO"):
        big.encode()
    assert qn_at(datetime(2016, 8, 1, 8, 58, 57, 223000)) == "20160801085857223"
