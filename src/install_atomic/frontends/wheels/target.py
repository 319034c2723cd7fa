"""The target interpreter (``--python``) and where each kind of file goes in it.

The paths are asked of the target interpreter itself, in a subprocess, the way
pip computes them for the same options (pip's own ``get_scheme`` when pip is
importable there, so that Debian's ``posix_local`` or a virtual environment's
``include/site`` headers come out exactly as pip's; ``sysconfig`` otherwise):

========  ==========================================================
purelib   pure-Python code and the ``.dist-info`` directories
platlib   extension modules (the same directory nearly everywhere)
scripts   console and GUI scripts, ``.data/scripts``
data      ``.data/data`` (the environment's prefix)
headers   ``.data/headers``, one directory per distribution
========  ==========================================================

``--target DIR`` puts purelib and platlib in *DIR*, scripts in ``DIR/bin`` and
data in *DIR*, as pip does.  ``--root R`` prefixes every path with *R* while
code objects and shebangs keep the path without it (DESTDIR).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

from install_atomic import children
from install_atomic.errors import InstallAtomicError

SCHEME_KEYS = ("purelib", "platlib", "scripts", "data", "headers")

_PROBE = r"""
import json, os, sys, sysconfig
opts = json.loads(sys.argv[1])
user, home, prefix = opts["user"], opts["home"], opts["prefix"]
venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
paths = None
try:
    from pip._internal.locations import get_scheme
    s = get_scheme("{dist}", user=user, home=home, prefix=prefix)
    paths = {k: getattr(s, k) for k in ("purelib", "platlib", "scripts", "data", "headers")}
    source = "pip"
except Exception:
    source = "sysconfig"
if paths is None:
    if home:
        name, base = "posix_home", {"base": home, "platbase": home}
    elif user:
        name, base = "posix_user", {}
    else:
        get = getattr(sysconfig, "get_preferred_scheme", None)
        name = get("prefix") if get else ("venv" if venv else "posix_prefix")
        if prefix:
            name = "posix_prefix"
        base = {"base": prefix, "platbase": prefix} if prefix else {}
    p = sysconfig.get_paths(name, vars=base)
    include = p["include"]
    if venv:
        root = sysconfig.get_config_var("userbase") if user else (base.get("base") or sys.prefix)
        include = os.path.join(root, "include", "site", "python%d.%d" % sys.version_info[:2])
    paths = {"purelib": p["purelib"], "platlib": p["platlib"], "scripts": p["scripts"],
             "data": p["data"], "headers": os.path.join(include, "{dist}")}
tags = None
try:
    try:
        from packaging import tags as t
    except ImportError:
        from pip._vendor.packaging import tags as t
    tags = [str(tag) for tag in t.sys_tags()]
except Exception:
    pass
print(json.dumps({
    "paths": paths, "source": source, "executable": sys.executable,
    "version": "%d.%d.%d" % sys.version_info[:3], "cache_tag": sys.implementation.cache_tag,
    "venv": venv, "prefix": sys.prefix, "tags": tags,
    "site": [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))],
}))
"""

#: Stands for the distribution's name in the probed header path.
_DIST = "install-atomic-dist-name"


@dataclass(frozen=True)
class Target:
    """Where a set of distributions goes: an interpreter plus pip's location options."""

    executable: str
    version: str
    cache_tag: str
    venv: bool
    #: The interpreter's ``sys.prefix``.
    sys_prefix: str
    #: The scheme's directories as seen at run time (without ``--root``).
    paths: dict[str, str]
    #: Tags the interpreter supports, most preferred first; None if unknown.
    tags: tuple[str, ...] | None
    root: str | None = None
    target_dir: str | None = None
    user: bool = False
    home: str | None = None
    prefix: str | None = None
    #: Where the paths came from: "pip" or "sysconfig".
    source: str = "pip"

    @property
    def is_running_interpreter(self) -> bool:
        """True if the target is the interpreter running install-atomic."""
        return os.path.realpath(self.sys_prefix) == os.path.realpath(sys.prefix) and (
            self.cache_tag == sys.implementation.cache_tag
        )

    def runtime(self, key: str, dist: str = "") -> str:
        """The directory for *key* as code will see it (no ``--root``)."""
        path = self.paths[key]
        if key == "headers":
            path = path.replace(_DIST, dist or "UNKNOWN")
        return path

    def final(self, key: str, dist: str = "") -> str:
        """The directory for *key* where files are written (``--root`` applied)."""
        return change_root(self.root, self.runtime(key, dist))

    def strip_root(self, path: str) -> str:
        """*path* (a written path) as code will see it."""
        if not self.root:
            return path
        root = os.path.normpath(os.path.abspath(self.root))
        if path == root:
            return os.sep
        if path.startswith(root + os.sep):
            return path[len(root):]
        return path

    @property
    def lib(self) -> str:
        """The written path of the directory that receives the metadata."""
        return os.path.normpath(self.final("purelib"))

    def stops(self) -> list[str]:
        """Every scheme directory (written paths): removal never climbs to them."""
        dirs = {self.final(k) for k in ("purelib", "platlib", "scripts", "data")}
        dirs.add(os.path.dirname(self.final("headers", "x")))
        return sorted(os.path.normpath(d) for d in dirs)


def change_root(root: str | None, path: str) -> str:
    """distutils' ``change_root`` for POSIX: ``R`` + absolute *path*."""
    if not root:
        return path
    return os.path.join(root, os.path.abspath(path).lstrip(os.sep))


def probe(
    python: str | None = None,
    *,
    user: bool = False,
    home: str | None = None,
    prefix: str | None = None,
    root: str | None = None,
    target_dir: str | None = None,
) -> Target:
    """Ask *python* (default: this interpreter) where files go with these options."""
    executable = python or sys.executable
    if target_dir:
        home = target_dir  # then purelib/platlib become the directory itself, as in pip
    opts = {"user": user, "home": os.path.abspath(home) if home else None,
            "prefix": os.path.abspath(prefix) if prefix else None}
    script = _PROBE.replace("{dist}", _DIST)
    try:
        status, stdout, stderr = children.run_in_own_group(
            [executable, "-I", "-c", script, json.dumps(opts)], timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "no answer within 300 s"
        raise InstallAtomicError(
            f"cannot run the target interpreter {executable}: {reason}. Give --python"
            " the path of a Python interpreter or of a virtual environment.",
            executable,
        ) from exc
    if status != 0:
        raise InstallAtomicError(
            f"the target interpreter {executable} could not report its install scheme:\n"
            f"{stderr.strip()}\nGive --python a working Python 3 interpreter.",
            executable,
        )
    data = json.loads(stdout)
    paths = {k: os.path.normpath(v) for k, v in data["paths"].items()}
    if target_dir:
        t = os.path.abspath(target_dir)
        paths["purelib"] = paths["platlib"] = t
        paths["data"] = t
        paths["scripts"] = os.path.join(t, "bin")
    return Target(
        executable=data["executable"] or executable,
        version=data["version"],
        cache_tag=data["cache_tag"],
        venv=bool(data["venv"]),
        sys_prefix=data["prefix"],
        paths=paths,
        tags=tuple(data["tags"]) if data["tags"] else None,
        root=os.path.abspath(root) if root else None,
        target_dir=os.path.abspath(target_dir) if target_dir else None,
        user=user,
        home=home,
        prefix=prefix,
        source=data["source"],
    )


def interpreter_of(python: str) -> str:
    """``--python`` accepts an interpreter or a virtual environment's directory."""
    if os.path.isdir(python):
        for name in ("bin/python3", "bin/python", "Scripts/python.exe"):
            candidate = os.path.join(python, name)
            if os.path.exists(candidate):
                return candidate
        raise InstallAtomicError(
            f"{python} is a directory but holds no bin/python: give --python an interpreter"
            " or a virtual environment's directory.",
            python,
        )
    if not os.path.exists(python):
        raise InstallAtomicError(
            f"--python {python}: no such file. Give the path of a Python interpreter or of a"
            " virtual environment.",
            python,
        )
    return python
