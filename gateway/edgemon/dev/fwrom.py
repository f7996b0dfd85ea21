"""Run the firmware as a device with a ROMFS partition runs it: its .mpy files in a read-only image
that is memory-mapped outside MicroPython's heap, so bytecode executes in place (MicroPython >= 1.25).

    python -m edgemon.dev.fwrom IMAGE.romfs[,SLOT1.romfs] -X heapsize=64k firmware/romboot.py node.json [--cycles N]

The image lives in this (CPython) process's memory, outside the GC heap that `-X heapsize` sizes,
the way an ESP32's romfs partition lives in flash; firmware/romboot.py mounts it at /rom.
"""

from __future__ import annotations

import ctypes
import os
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    images, mp_args = argv[0].split(","), argv[1:]  # IMAGE[,IMAGE2]: a board's romfs partitions (slots)
    flash = []  # must outlive the interpreter run below
    for path in images:
        with open(path, "rb") as f:
            image = f.read()
        flash.append(ctypes.create_string_buffer(image, len(image)))
    os.environ["EDGEMON_ROMFS"] = ";".join(f"{ctypes.addressof(b)}:{len(b)}" for b in flash)
    from micropython_run import run_main  # the MicroPython unix port, in this process

    code = run_main(["micropython", *mp_args])
    del flash
    return code or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
