"""The install scheme a library directory belongs to: where its scripts, data and headers are.

Metadata in a library directory may name files only inside its scheme's
directories (:mod:`install_atomic.engine.ownership`), and removals never climb
to them.  When a front end installs, it knows the scheme (it chose it).  For an
``uninstall`` it is inferred from the library directory itself, as pip does:

* inside a virtual environment, the environment's scheme;
* a path ending like a scheme's library directory (``lib/python3.11/site-packages``
  of ``--prefix``, ``lib/python`` of ``--home``, the ``--user`` one) gives that
  scheme with the leading part as its base, ``DESTDIR`` included;
* the directories install-atomic recorded when it installed the distribution
  (``install-atomic-roots.txt``), but only from a metadata directory and file
  that :mod:`install_atomic.engine.trust` believes: a file another user could
  write must not widen what may be removed;
* otherwise the running interpreter's scheme, and the directory itself.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Iterable

from install_atomic.engine import trust
from install_atomic.engine.locking import environment_root
from install_atomic.engine.ownership import ROOTS_FILE, InstalledDistribution

_BASES = ("base", "platbase", "userbase", "installed_base", "installed_platbase")
_PLACEHOLDER = os.path.join(os.sep, "@install-atomic-base@")


def _paths(scheme: str, base: str) -> set[str]:
    return set(sysconfig.get_paths(scheme, vars=dict.fromkeys(_BASES, base)).values())


def _inferred(real: str) -> set[str]:
    venv = environment_root(real)
    if venv is not None:
        return set(sysconfig.get_paths(vars=dict.fromkeys(_BASES, venv)).values())
    found: set[str] = set()
    for scheme in sysconfig.get_scheme_names():
        try:
            paths = sysconfig.get_paths(scheme, vars=dict.fromkeys(_BASES, _PLACEHOLDER))
        except KeyError:
            continue
        for key in ("purelib", "platlib"):
            rel = os.path.relpath(paths[key], _PLACEHOLDER)
            if not rel.startswith("..") and real.endswith(os.sep + rel):
                found |= _paths(scheme, real[: -len(rel) - 1] or os.sep)
    return found


def _recorded(real: str, dists: Iterable[InstalledDistribution]) -> set[str]:
    """The install directories recorded in trusted metadata, moved under the ``DESTDIR``
    the library directory sits in (they are recorded as run-time paths)."""
    out: set[str] = set()
    for dist in dists:
        roots_file = os.path.join(dist.metadata_path, ROOTS_FILE)
        if not dist.roots or trust.distrust_path(dist.metadata_path, "dir") or (
            trust.distrust_path(roots_file, "file")
        ):
            continue
        destdir = ""
        for root in dist.roots:
            if real != root and real.endswith(root) and root.startswith(os.sep):
                destdir = real[: -len(root)]
        out.update(os.path.normpath(destdir + root) for root in dist.roots)
    return out


def scheme_dirs(target: str, dists: Iterable[InstalledDistribution] = ()) -> list[str]:
    """The scheme directories of the library directory *target* (see the module
    docstring); *dists* are the distributions whose recorded roots may add to them."""
    real = os.path.realpath(target)
    found = _inferred(real) | _recorded(real, dists)
    if not found:
        found = set(sysconfig.get_paths().values())
    found.add(real)
    return sorted(found)
