"""Where things are in a prefix: its library directories, its lock, its stops.

A merge takes the lock a Python install into the same prefix takes
(:func:`install_atomic.engine.locking.lock_path_for` of the prefix's
``site-packages``, detached as the front ends use it: ``<venv>/.lock`` in a
virtual environment, ``/tmp/install-atomic-<digest>.lock`` otherwise), so
merges and installs into one prefix serialize.  Its journal goes in the prefix
itself, where ``recover PREFIX`` finds it.

**Which ``site-packages``** (:func:`choose_site_packages`): the prefix's
Python, not the interpreter running the merge, decides.  The candidates are
the library directories ``lib*/pythonX.Y/{site,dist}-packages`` (real
directories, ``X.Y`` digits, a free-threaded ``X.Yt`` too) that exist in the
prefix or in the staged tree (at their path in the prefix: the tree brings
them).  The one chosen is the greatest by, in order: Python version (``3.12``
over ``3.9``, ``python3.12`` over an unversioned ``python3``), ``site-packages``
over ``dist-packages``, ``lib`` over ``lib64`` over ``lib32``.  Only when there
is no candidate does the running interpreter's ``posix_prefix`` ``purelib``
serve.  So a prefix whose Python is 3.12 is locked as ``install-atomic
install --prefix PREFIX --python python3.12`` locks it, whichever Python runs
the merge, and every merge into one prefix takes the same lock whatever it
stages (a tree that brings the first ``site-packages`` of a newer Python moves
the choice to it, from that merge on).  A prefix holding the ``site-packages``
of two Python versions is locked as the newer one's installs lock it; installs
for the older one take another lock, and do not serialize with merges.
"""

from __future__ import annotations

import os
import re
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field

from install_atomic.engine import locking

#: Directories of a prefix that removal never climbs to, even when only one package
#: has files in them (they stay, empty, as after ``make uninstall``).
STANDARD_DIRS = (
    "bin", "sbin", "lib", "lib32", "lib64", "libexec", "include", "share", "etc", "var",
    "man", "lib/pkgconfig", "share/pkgconfig", "share/man", "share/doc", "share/info",
    "share/locale", "share/applications", "share/icons", "var/lib", "var/cache",
)
#: Names of library directories holding Python distributions.
LIBRARY_NAMES = ("site-packages", "dist-packages")


def site_packages(prefix: str) -> str:
    """The running interpreter's ``site-packages`` under *prefix* (``posix_prefix``): the
    fallback of :func:`choose_site_packages`."""
    base = {"base": prefix, "platbase": prefix, "installed_base": prefix,
            "installed_platbase": prefix}
    return os.path.normpath(sysconfig.get_paths("posix_prefix", vars=base)["purelib"])


def library_dirs(root: str) -> list[str]:
    """``lib*/python*/{site,dist}-packages`` directories below *root* (real directories)."""
    found = []
    for lib in ("lib", "lib64", "lib32"):
        base = os.path.join(root, lib)
        if not os.path.isdir(base) or os.path.islink(base):
            continue
        for py in sorted(os.listdir(base)):
            if not py.startswith("python"):
                continue
            for name in LIBRARY_NAMES:
                path = os.path.join(base, py, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    found.append(os.path.normpath(path))
    return found


_VERSIONED = re.compile(r"python(\d+)(?:\.(\d+))?t?")
#: Preference among equal versions: lower is better.
_LIBS = ("lib", "lib64", "lib32")


def _rank(relative: str) -> tuple[int, int, int, int] | None:
    """How *relative* (``lib/python3.12/site-packages``) ranks as the prefix's library
    directory; None when it names no Python version."""
    parts = relative.split(os.sep)
    if len(parts) != 3 or parts[0] not in _LIBS or parts[2] not in LIBRARY_NAMES:
        return None
    match = _VERSIONED.fullmatch(parts[1])
    if match is None:
        return None
    major, minor = int(match.group(1)), int(match.group(2) or -1)
    return (major, minor, -LIBRARY_NAMES.index(parts[2]), -_LIBS.index(parts[0]))


def choose_site_packages(prefix: str, staged: Iterable[str] = ()) -> str:
    """The ``site-packages`` of *prefix* whose lock a merge takes: the greatest (see the
    module docstring) of the library directories *prefix* has and those the staged
    trees *staged* have (each the root of a tree laid out as the prefix); the running
    interpreter's when there is none.  Deterministic: the same directories give the
    same answer, whichever Python runs it."""
    prefix = os.path.normpath(prefix)
    found: dict[str, tuple[int, int, int, int]] = {}
    for root in [prefix, *staged]:
        for lib in library_dirs(root):
            relative = os.path.relpath(lib, root)
            rank = _rank(relative)
            if rank is not None:
                found[os.path.join(prefix, relative)] = rank
    if not found:
        return site_packages(prefix)
    return max(found, key=lambda path: (found[path], path))


@dataclass
class Layout:
    """One prefix, by real path."""

    prefix: str
    site_packages: str = ""
    lock_path: str = ""
    #: More destinations (targets of symlinks leading out of the prefix).
    outside: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, prefix: str, staged: Iterable[str] = ()) -> Layout:
        """The layout of *prefix*; *staged*: the trees about to be merged into it (laid out
        as the prefix), whose library directories count for :func:`choose_site_packages`."""
        real = os.path.realpath(prefix)
        sp = choose_site_packages(real, [os.path.realpath(s) for s in staged])
        return cls(real, sp, locking.lock_path_for(sp, detached=True))

    def stops(self, metadata_dir: str) -> list[str]:
        """Directories removal never climbs to: the standard ones, every library
        directory and the directories above them."""
        out = {self.prefix, *self.outside}
        out.update(os.path.join(self.prefix, d) for d in STANDARD_DIRS)
        for lib in {metadata_dir, self.site_packages, *library_dirs(self.prefix)}:
            current = lib
            while current.startswith(self.prefix + os.sep):
                out.add(current)
                current = os.path.dirname(current)
        return sorted(out)

    @property
    def scheme(self) -> list[str]:
        """Where manifests may name files: the prefix, and the outside destinations."""
        return [self.prefix, *self.outside]
