"""The report's CJK font: a TrueType font from Debian's packages (TrueType outlines embed in the PDF
as Type 42, so the text stays extractable; Noto CJK's CFF outlines would not)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from . import ReportError

PACKAGE = "fonts-wqy-microhei"  # gateway/edgemon/dev/stack.py DEBIAN_FILES installs it (make system-deps)
KNOWN = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)
TRUETYPE = (".ttf", ".ttc")


def find_cjk_font() -> Path:
    """The path of a font with Chinese glyphs: a known Debian path, else one fontconfig knows."""
    for p in KNOWN:
        if Path(p).is_file():
            return Path(p)
    fc_list = shutil.which("fc-list")
    if fc_list:
        try:
            out = subprocess.run([fc_list, ":lang=zh", "file"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in sorted(out.splitlines()):
            path = line.split(":", 1)[0].strip()
            if path.lower().endswith(TRUETYPE) and Path(path).is_file():
                return Path(path)
    raise ReportError(f"no Chinese (CJK) TrueType font found: install the Debian package {PACKAGE} "
                      f"(apt-get install {PACKAGE}, or make system-deps)")
