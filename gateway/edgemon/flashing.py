"""`edgemon node flash`: a MicroPython firmware image the technician supplies, written with esptool
(v5 command names). Pure: the esptool command line for a chip, and one clear line for its failures;
node_cli runs it and shows esptool's own progress."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

# Where a full application image (bootloader included, as micropython.org ships it) goes.
OFFSETS = {"esp32": 0x1000, "esp32s2": 0x1000, "esp32s3": 0x0, "esp32c3": 0x0, "esp32c6": 0x0}
ESP_IMAGE_MAGIC = 0xE9


class FlashError(Exception):
    """Refused before esptool ran, or esptool failed; str() is one line with the fix."""


def check(chip: str, port: str, image: Path) -> None:
    """Refuses what would fail later, with the fix: unknown chip, no such port, not an ESP image."""
    if chip not in OFFSETS:
        raise FlashError(f"chip {chip!r}: one of {', '.join(OFFSETS)}")
    if not os.path.exists(port):
        raise FlashError(f"no port {port}: plug the board in (USB), then `ls /dev/ttyUSB* /dev/ttyACM*` "
                         f"shows its port; a port you may not open needs the dialout group")
    try:
        head = image.read_bytes()[:1]
    except OSError as exc:
        raise FlashError(f"{image}: cannot read it ({exc.strerror})") from None
    if head != bytes([ESP_IMAGE_MAGIC]):
        raise FlashError(f"{image}: not an ESP firmware image (first byte is not 0xE9); fix: the .bin "
                         f"from micropython.org for {chip}, not a .uf2, .elf or .hex")


def esptool_args(chip: str, port: str, image: Path, baud: int = 460800, erase: bool = False) -> list[str]:
    """argv after `python -m esptool`: write the image at the chip's offset, then reset the board."""
    args = ["--chip", chip, "--port", port, "--baud", str(baud), "--after", "hard-reset", "write-flash"]
    if erase:
        args.append("--erase-all")
    return args + [hex(OFFSETS[chip]), str(image)]


def command(chip: str, port: str, image: Path, baud: int = 460800, erase: bool = False) -> list[str]:
    return [sys.executable, "-m", "esptool", *esptool_args(chip, port, image, baud, erase)]


def explain(output: str) -> str:
    """One line for esptool's failure output (its last error line when the cause is not known)."""
    m = re.search(r"This chip is (ESP32[-\w]*),? not (ESP32[-\w]*)", output, re.I)
    if m:
        return (f"wrong chip: the board is an {m.group(1)}, not an {m.group(2)}; "
                f"fix: --chip {m.group(1).lower().replace('-', '')}")
    if re.search(r"Failed to connect", output, re.I):
        return ("the board is not answering: hold BOOT, tap EN (or RST), release BOOT, and run this again "
                "(or try --baud 115200 and another USB cable)")
    if re.search(r"could not open port|Permission denied|Resource busy", output, re.I):
        return "cannot open the port: in use (a serial monitor?) or not yours (add yourself to the dialout group)"
    if re.search(r"exceeds flash chip size|does not fit", output, re.I):
        return "the image does not fit this board's flash: this firmware is for a bigger flash"
    errors = [ln for ln in output.splitlines() if "error" in ln.lower()]
    return errors[-1].strip() if errors else "esptool failed (its output is above)"
