"""`edgemon node flash` without a board: the esptool command line per chip, every refusal before
esptool runs, and esptool's own failure against a serial port where no board answers (a pty),
each as one line with its fix. What needs a real board is in hil_tests/README.md."""

import os
import pty

from click.testing import CliRunner

from edgemon.cli import main
from edgemon.flashing import OFFSETS, esptool_args, explain


def flash(*args):
    return CliRunner().invoke(main, ["node", "flash", *args])


def test_the_command_line_for_each_chip(tmp_path):
    img = tmp_path / "fw.bin"
    assert esptool_args("esp32", "/dev/ttyUSB0", img) == [
        "--chip", "esp32", "--port", "/dev/ttyUSB0", "--baud", "460800", "--after", "hard-reset", "write-flash",
        "0x1000", str(img)]
    assert esptool_args("esp32s3", "/dev/ttyACM0", img, 115200, erase=True)[-4:] == [
        "write-flash", "--erase-all", "0x0", str(img)]
    assert {c: hex(o) for c, o in OFFSETS.items()} == {"esp32": "0x1000", "esp32s2": "0x1000", "esp32s3": "0x0",
                                                       "esp32c3": "0x0", "esp32c6": "0x0"}
    r = flash("--port", "/dev/ttyUSB0", "--chip", "esp32c3", "--dry-run", str(img))
    assert r.exit_code == 0 and "-m esptool --chip esp32c3" in r.output and "write-flash 0x0 " in r.output


def test_refusals_before_esptool_runs(tmp_path):
    img = tmp_path / "fw.bin"
    img.write_bytes(b"\xe9" + bytes(100))
    r = flash("--port", str(tmp_path / "ttyUSB9"), str(img))
    assert r.exit_code == 1 and "no port" in r.output and "plug the board in" in r.output
    m, s = pty.openpty()
    try:
        uf2 = tmp_path / "fw.uf2"
        uf2.write_bytes(b"UF2\n" + bytes(100))
        r = flash("--port", os.ttyname(s), str(uf2))
        assert r.exit_code == 1 and "not an ESP firmware image" in r.output
        r = flash("--port", os.ttyname(s), str(tmp_path / "missing.bin"))
        assert r.exit_code == 1 and "cannot read it" in r.output
    finally:
        os.close(m)
        os.close(s)
    r = flash("--port", "/dev/ttyUSB0", "--chip", "esp8266", str(img))
    assert r.exit_code == 2 and "esp8266" in r.output


def test_a_board_that_does_not_answer_gets_one_line_with_the_fix(tmp_path):
    img = tmp_path / "fw.bin"
    img.write_bytes(b"\xe9" + bytes(100))
    m, s = pty.openpty()  # a serial port with nothing behind it: esptool's real sync attempts fail
    try:
        r = flash("--port", os.ttyname(s), "--baud", "115200", str(img))
    finally:
        os.close(m)
        os.close(s)
    assert r.exit_code == 1, r.output
    assert "esptool v5" in r.output  # its own output is shown
    assert "the board is not answering: hold BOOT, tap EN" in r.output.splitlines()[-1]


def test_explain_names_the_causes():
    assert explain("A fatal error occurred: This chip is ESP32-S3, not ESP32. Wrong --chip argument?") == (
        "wrong chip: the board is an ESP32-S3, not an ESP32; fix: --chip esp32s3")
    assert "--chip esp32s3" in explain("This chip is ESP32-S3, not ESP32.")
    assert explain("could not open port /dev/ttyUSB0: [Errno 16] Resource busy").startswith("cannot open the port")
    assert explain("ERROR: something new") == "ERROR: something new"
