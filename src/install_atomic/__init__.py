"""install-atomic: install Python packages atomically.

The engine (:mod:`install_atomic.engine.transaction` and the modules it uses) knows
nothing about setuptools.  The setuptools adapter lives in
:mod:`install_atomic.frontends.setuptools_command`; :data:`cmdclass` is loaded from it on first
access so that importing the engine never imports setuptools.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "cmdclass"]


def __getattr__(name: str) -> Any:
    if name == "cmdclass":
        from install_atomic.frontends.setuptools_command import cmdclass

        return cmdclass
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
