"""What the running process has loaded: the reason to defer a commit."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable


def loaded_from(files: Iterable[str]) -> list[str]:
    """Top-level names of the modules of this process loaded from one of *files*
    (paths as the installed distributions' metadata lists them)."""
    wanted = {os.path.realpath(f) for f in files}
    names = set()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and os.path.realpath(path) in wanted:
            names.add(name.partition(".")[0])
    return sorted(names)
