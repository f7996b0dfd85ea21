"""The firmware's device manifest (firmware/MANIFEST): which files go onto a firmware image.

One path per line, relative to firmware/, an optional second word `board` or `pc` limiting the file
to one kind of image, `#` comments. Read by `make mpy` (nodeproc.build_mpy) and by the tools that
put firmware on a board. A bad manifest is refused whole, every problem listed with its line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TARGETS = ("board", "pc")


class ManifestError(ValueError):
    """The manifest cannot be used; str() lists every problem as `FILE:LINE: what; fix: ...`."""


@dataclass(frozen=True)
class Entry:
    path: str  # relative to firmware/, "/"-separated
    only: str | None  # None (every image), "board" or "pc"
    line: int

    def on(self, target: str) -> bool:
        """Whether this file belongs on an image for `target` ("board" or "pc")."""
        return self.only is None or self.only == target


def parse_manifest(text: str, name: str = "MANIFEST", firmware_dir: Path | None = None) -> list[Entry]:
    """Entries in file order. With firmware_dir, every entry must also exist there."""
    entries: list[Entry] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{name}:{n}"
        path, rest = words[0], words[1:]
        if len(rest) > 1 or (rest and rest[0] not in TARGETS):
            problems.append(f"{where}: {raw.strip()!r}: expected a path and at most one of "
                            f"{', '.join(TARGETS)}; fix: write `<path>` or `<path> board|pc`")
            continue
        if path.startswith("/") or ".." in path.split("/") or "\\" in path:
            problems.append(f"{where}: {path}: must be a plain path inside firmware/; "
                            f"fix: write it relative to firmware/ with / separators")
            continue
        if not path.endswith((".py", ".json")):
            problems.append(f"{where}: {path}: only .py modules and .json data go onto an image; "
                            f"fix: remove the line or rename the file")
            continue
        if path in seen:
            problems.append(f"{where}: {path}: listed twice (first on line {seen[path]}); fix: keep one line")
            continue
        seen[path] = n
        if firmware_dir is not None and not (firmware_dir / path).is_file():
            problems.append(f"{where}: {path}: no such file in {firmware_dir}; "
                            f"fix: add the file or remove the line")
            continue
        entries.append(Entry(path, rest[0] if rest else None, n))
    if not entries and not problems:
        problems.append(f"{name}: lists no files; fix: one path per line, relative to firmware/")
    if problems:
        raise ManifestError("\n".join(problems))
    return entries


def read_manifest(firmware_dir: Path) -> list[Entry]:
    """firmware_dir/MANIFEST, checked against the files in firmware_dir."""
    path = Path(firmware_dir) / "MANIFEST"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: missing; fix: list the device's files there, one per line") from None
    return parse_manifest(text, str(path), Path(firmware_dir))


def image_files(firmware_dir: Path, target: str | None = None) -> list[str]:
    """The manifest's paths in manifest order: for target "board" the files an ESP32 image carries
    (no `pc` entries), for "pc" the files a PC run needs (no `board` entries), for None every entry
    (the unix-port image the tests and the demo use, which also runs the board's code emulated)."""
    if target is not None and target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS} or None, not {target!r}")
    return [e.path for e in read_manifest(firmware_dir) if target is None or e.on(target)]
