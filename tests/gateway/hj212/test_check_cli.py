"""`edgemon hj212 check`: fields and deviations per packet, exit 1 when any is rejected, stdin mode."""

from click.testing import CliRunner

from edgemon.cli import main

GOOD = "##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80"


def test_valid_packets_exit_0_with_their_fields():
    r = CliRunner().invoke(main, ["hj212", "check", GOOD])
    assert r.exit_code == 0, r.output
    assert "HJ 212-2017  QN=20160801085857223 ST=32 CN=1062" in r.output and "CP RtdInterval = 30" in r.output


def test_stdin_one_per_line_and_any_rejected_packet_exits_1_naming_why():
    lines = "\n".join([GOOD, GOOD.replace("1C80", "1c80"), GOOD.replace("##0101", "##0102"), ""]) + "\n"
    r = CliRunner().invoke(main, ["hj212", "check"], input=lines)
    assert r.exit_code == 1, r.output
    assert "deviation: crc: lowercase hex 1c80" in r.output
    assert "length: the header says 0102, the data segment is 101 bytes" in r.output
    assert r.output.strip().endswith("3 packet(s): 2 valid, 1 rejected")


def test_the_modbus_crc_link_setting_and_no_packet_at_all():
    from edgemon.hj212 import crc_hex
    data = GOOD[6:-4].encode()
    modbus = GOOD[:-4] + crc_hex(data, "modbus")
    assert CliRunner().invoke(main, ["hj212", "check", modbus]).exit_code == 1
    assert CliRunner().invoke(main, ["hj212", "check", "--crc", "modbus", modbus]).exit_code == 0
    r = CliRunner().invoke(main, ["hj212", "check"], input="")
    assert r.exit_code == 2 and "no packet given" in r.output
