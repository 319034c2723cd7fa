"""Where things are in a prefix: its library directories, its lock, its stops.

A merge takes the lock a Python install into the same prefix takes
(:func:`install_atomic.engine.locking.lock_path_for` of the prefix's
``site-packages``, detached as the front ends use it: ``<venv>/.lock`` in a
virtual environment, ``/tmp/install-atomic-<digest>.lock`` otherwise), so
merges and installs into one prefix serialize.  Its journal goes in the prefix
itself, where ``recover PREFIX`` finds it.
"""

from __future__ import annotations

import os
import sysconfig
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
    """The running interpreter's ``site-packages`` under *prefix* (``posix_prefix``)."""
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


@dataclass
class Layout:
    """One prefix, by real path."""

    prefix: str
    site_packages: str = ""
    lock_path: str = ""
    #: More destinations (targets of symlinks leading out of the prefix).
    outside: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, prefix: str) -> Layout:
        real = os.path.realpath(prefix)
        sp = site_packages(real)
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
