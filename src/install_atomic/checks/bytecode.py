"""Byte-compiling the staged tree with the paths it will have once installed.

``compileall.compile_dir(stage, stripdir=stage, prependdir=final)`` writes the
``__pycache__`` files inside the staging directory while giving every code
object the *final* ``co_filename``, so tracebacks name the installed file and
the bytecode that lands is the bytecode that was checked.  Nothing in the
destination is written by any process's import system in the meantime.

Invalidation modes (``--pyc-mode``):

``checked-hash`` (default)
    The pyc stores a hash of its source and the import system checks it.
    Timestamp pycs record the source's mtime with one-second resolution and
    its size: two versions of a file with the same size written within one
    second look identical, and the stale pyc would be used.
``timestamp``
    What ``setup.py install`` and pip write; cheapest to check at import.
``unchecked-hash``
    Never re-checked: for read-only trees that are only replaced whole.
"""

from __future__ import annotations

import compileall
import os
import py_compile
from collections.abc import Sequence

MODES = {
    "timestamp": py_compile.PycInvalidationMode.TIMESTAMP,
    "checked-hash": py_compile.PycInvalidationMode.CHECKED_HASH,
    "unchecked-hash": py_compile.PycInvalidationMode.UNCHECKED_HASH,
}
DEFAULT_MODE = "checked-hash"
#: Above this many modules, compile with one process per core.
PARALLEL_THRESHOLD = 200


def count_sources(tree: str) -> int:
    """Number of ``.py`` files below *tree*."""
    return sum(
        1 for _, _, files in os.walk(tree) for name in files if name.endswith(".py")
    )


def compile_tree(
    stage: str,
    final: str,
    *,
    optimize: Sequence[int] = (0,),
    mode: str = DEFAULT_MODE,
    workers: int | None = None,
) -> bool:
    """Compile every ``.py`` below *stage* as if it lived below *final*.

    *optimize* lists the levels to write (0, 1, 2); *workers* = 0 uses every
    core (``compileall``'s process pool), 1 compiles in this process, None
    (the default) uses every core for trees of more than
    :data:`PARALLEL_THRESHOLD` modules, where the pool's start-up pays off.
    Returns True when every file compiled.
    """
    levels = sorted(set(optimize)) or [0]
    if workers is None:
        workers = 0 if count_sources(stage) > PARALLEL_THRESHOLD else 1
    return bool(
        compileall.compile_dir(
            stage,
            quiet=1,  # errors only
            stripdir=stage,
            prependdir=final,
            optimize=levels,  # type: ignore[arg-type]  # a list is accepted since 3.5
            invalidation_mode=MODES[mode],
            workers=workers,
            rx=_Private(stage),
        )
    )


class _Private:
    """Skip install-atomic's own private entries below the stage (``compileall``
    calls ``rx.search`` with each full path)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def search(self, path: str) -> bool:
        rel = os.path.relpath(path, self.stage)
        return any(part.startswith(".install-atomic") for part in rel.split(os.sep))

