"""install-atomic: install Python packages atomically.

The engine (:mod:`install_atomic.engine.transaction` and the modules it uses) knows
nothing about setuptools.  The setuptools adapter lives in
:mod:`install_atomic.frontends.setuptools_command`; :data:`cmdclass` is loaded from it on first
access so that importing the engine never imports setuptools.  :func:`install` and
:func:`uninstall` are the Python API (:mod:`install_atomic.frontends.api`).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time: the start-up hook imports this
    from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "cmdclass", "install", "uninstall"]

#: Loaded on first access: importing the package (the engine, the start-up hook)
#: imports neither setuptools nor the wheel front end.
_LAZY = {
    "cmdclass": "install_atomic.frontends.setuptools_command",
    "install": "install_atomic.frontends.api",
    "uninstall": "install_atomic.frontends.api",
    "InstallResult": "install_atomic.frontends.api",
    "PendingInstallWarning": "install_atomic.frontends.api",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
