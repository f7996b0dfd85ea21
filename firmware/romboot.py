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
# "<address>:<size>" of each mapped image, ";" between slots (no globals of its own: each name is a
# qstr for good); slotboot.py chooses the slot, as the board's /main.py does.
vfs.mount(vfs.VfsRom(uctypes.bytearray_at(*[int(x) for x in os.getenv("EDGEMON_ROMFS").split(";")[
    __import__("slotboot").choose(len(os.getenv("EDGEMON_ROMFS").split(";")))].split(":")])), "/rom")
sys.modules.pop("slotboot", None)
sys.path.insert(0, "/rom")
# main (the PC entry), or boardmain under hil_tests/board_emulation: runs the node.
__import__(os.getenv("EDGEMON_MAIN") or "main")
