"""Unix port only: mount the firmware's ROMFS image at /rom and run main from it. The launcher
(edgemon.fwrom) maps the image outside MicroPython's heap, as an ESP32 maps its romfs flash partition,
so the .mpy bytecode is executed in place instead of being copied into the heap."""
import os
import sys
import uctypes
import vfs

_where = os.getenv("EDGEMON_ROMFS")
if not _where:
    print("romboot: EDGEMON_ROMFS is not set; start the firmware with `python -m edgemon.fwrom`", file=sys.stderr)
    sys.exit(2)
_addr, _size = [int(x) for x in _where.split(":")]
vfs.mount(vfs.VfsRom(uctypes.bytearray_at(_addr, _size)), "/rom")
sys.path.insert(0, "/rom")
del _where, _addr, _size
import main  # noqa: E402,F401  (runs the node, exactly as on the board)
