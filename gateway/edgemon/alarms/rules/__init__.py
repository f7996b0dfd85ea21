"""Rule kinds, one module each; a module here with KIND and build() is a rule kind (found at
import, so a new kind is added beside its siblings without touching the engine)."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def kinds() -> dict[str, ModuleType]:
    out = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "KIND") and hasattr(module, "build"):
            out[module.KIND] = module
    return out
