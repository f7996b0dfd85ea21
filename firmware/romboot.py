"""Unix port only: mount the firmware's ROMFS image at /rom and run main from it. The launcher
(edgemon.dev.fwrom) maps the image outside MicroPython's heap, as an ESP32 maps its romfs flash partition,
so the .mpy bytecode is executed in place instead of being copied into the heap."""
import os
import sys
import uctypes
import vfs

if not os.getenv("EDGEMON_ROMFS"):
    print("romboot: EDGEMON_ROMFS is not set; start the firmware with `python -m edgemon.dev.fwrom`", file=sys.stderr)
    sys.exit(2)
# "<address>:<size>" of the mapped image (no globals of its own: each name is a qstr for good).
vfs.mount(vfs.VfsRom(uctypes.bytearray_at(*[int(x) for x in os.getenv("EDGEMON_ROMFS").split(":")])), "/rom")
sys.path.insert(0, "/rom")
# main (the PC entry), or boardmain under hil_tests/board_emulation: runs the node.
__import__(os.getenv("EDGEMON_MAIN") or "main")
