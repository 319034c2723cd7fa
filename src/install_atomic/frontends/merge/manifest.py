"""Manifests: the files one merge installed, for ``--replace`` and ``uninstall --manifest``.

A manifest is JSON (:data:`~install_atomic.engine.ownership.MANIFEST_FORMAT`)::

    {"format": "install-atomic-manifest-1", "name": "zlib", "version": "1.3",
     "prefix": "/opt/local", "files": ["include/zlib.h", "lib/libz.so.1.3", ...],
     "identity": {"include/zlib.h": [97323, 1733412345123456789],
                  "lib/libz.so": "libz.so.1.3", ...}}

Paths are relative to the prefix (absolute for a destination a symlink of the
prefix leads to).  ``identity`` records each file as the merge installed it:
``[size, mtime in ns]`` for a regular file, the target for a symbolic link
(:func:`identity_of`).  A later merge that replaces or removes a file whose
identity differs now warns that someone changed it since (manifests written
before ``identity`` existed have none, and are not checked).

A manifest inside the prefix is staged with the merge and
put in place by the same transaction; one outside is written after the commit
(to a temporary name, fsynced, renamed).  The manifests in the directory of
``--manifest`` (and of ``--replace``) are the other packages' ownership: a
file another manifest lists is never removed, and replacing it warns (or,
with ``--strict``, refuses).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from typing import Union

from install_atomic.engine.ownership import (
    MANIFEST_FORMAT,
    InstalledDistribution,
    is_metadata_name,
    read_distribution,
    read_manifest,
)
from install_atomic.engine.primitives import write_durably
from install_atomic.frontends.merge.layout import LIBRARY_NAMES

#: A file as a merge installed it: ``(size, mtime_ns)``, or a symbolic link's target.
Identity = Union[tuple[int, int], str]


def identity_of(path: str, st: os.stat_result) -> Identity | None:
    """The identity of *path* (``lstat`` *st*); None for what is neither a regular file nor a
    symbolic link."""
    if stat.S_ISREG(st.st_mode):
        return (st.st_size, st.st_mtime_ns)
    if stat.S_ISLNK(st.st_mode):
        return os.readlink(path)
    return None


def current_identity(path: str) -> Identity | None:
    """The identity of *path* now; None when it is missing or neither file nor link."""
    try:
        return identity_of(path, os.lstat(path))
    except OSError:
        return None


def _relative(path: str, prefix: str) -> str:
    start = prefix + os.sep
    return path[len(start):] if path.startswith(start) else path


def render(name: str, version: str, prefix: str, files: Iterable[str],
           identity: Mapping[str, Identity] | None = None) -> bytes:
    """The manifest of *files* (absolute paths), with their *identity* when given."""
    rel = sorted(_relative(f, prefix) for f in files)
    data: dict[str, object] = {"format": MANIFEST_FORMAT, "name": name, "version": version,
                               "prefix": prefix, "files": rel}
    if identity is not None:
        data["identity"] = {
            _relative(f, prefix): (list(i) if isinstance(i, tuple) else i)
            for f, i in sorted(identity.items())
        }
    return (json.dumps(data, indent=1) + "\n").encode()


def identities(path: str) -> dict[str, Identity]:
    """The identities a manifest records, by absolute path; {} when it records none or
    cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        prefix, recorded = str(data["prefix"]), data.get("identity") or {}
        if not isinstance(recorded, dict):
            return {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    out: dict[str, Identity] = {}
    for rel, value in recorded.items():
        if isinstance(value, str):
            ident: Identity = value
        elif (isinstance(value, list) and len(value) == 2
              and all(isinstance(v, int) for v in value)):
            ident = (int(value[0]), int(value[1]))
        else:
            continue
        out[os.path.normpath(os.path.join(prefix, str(rel)))] = ident
    return out


_Key = tuple[str, tuple[str, ...], str, int, int, int, int, int]
_CACHE: dict[_Key, InstalledDistribution] = {}


def _stat_key(path: str) -> tuple[int, int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read(path: str, scheme: Sequence[str], *, name: str | None = None) -> InstalledDistribution:
    """:func:`~install_atomic.engine.ownership.read_manifest`, read again only when the
    file changed (another inode, size, mtime or ctime) since this process last read
    it: a merge reads the replaced manifest before staging and again under the lock."""
    before = _stat_key(path)
    key = None if before is None else (path, tuple(scheme), name or "", *before)
    if key is not None and key in _CACHE:
        return _CACHE[key]
    dist = read_manifest(path, scheme, name=name)
    if key is not None and _stat_key(path) == before:
        _CACHE[key] = dist
    return dist


def write_file(path: str, content: bytes, mode: int = 0o644) -> None:
    """Write *content* at *path* durably, replacing what is there in one rename (the
    temporary name is hidden, so :func:`others` never reads it)."""
    name = f".{os.path.basename(path)}.{os.getpid()}.tmp"
    write_durably(path, content, mode, tmp=os.path.join(os.path.dirname(path) or ".", name))


def others(
    directories: Iterable[str], exclude: Iterable[str], scheme: Sequence[str]
) -> list[InstalledDistribution]:
    """Every manifest in *directories* but *exclude*, each under a name of its own
    (``manifest <path>``): "others" for the ownership of a transaction."""
    skip = {os.path.realpath(p) for p in exclude}
    found: list[InstalledDistribution] = []
    for directory in sorted({os.path.realpath(d) for d in directories}):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            if path in skip or name.startswith(".") or not _looks_like_json(path):
                continue
            try:
                found.append(read(path, scheme, name=f"manifest {path}"))
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return found


def _looks_like_json(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(1) == b"{"
    except OSError:
        return False


_LIBRARY_MARKS = tuple(n + os.sep for n in LIBRARY_NAMES)


def in_library(path: str) -> bool:
    """Could *path* lie below a library directory (``.../site-packages/...``)?"""
    return any(mark in path for mark in _LIBRARY_MARKS)


def python_distributions(files: Iterable[str]) -> dict[str, str]:
    """Metadata directories (``*.dist-info``, ``*.egg-info`` directly in a
    ``site-packages``) among the parents of *files*, as {metadata dir: project name};
    read from the filesystem as it is now."""
    dirs: set[str] = set()
    for path in files:
        if not in_library(path):
            continue
        parts = path.split(os.sep)
        for i in range(1, len(parts)):
            if is_metadata_name(parts[i]) and parts[i - 1] in LIBRARY_NAMES:
                dirs.add(os.sep.join(parts[: i + 1]))
    out = {}
    for meta in sorted(dirs):
        if os.path.isdir(meta) or os.path.isfile(meta):
            dist = read_distribution(os.path.dirname(meta), os.path.basename(meta),
                                     [os.path.dirname(meta)])
            if dist is not None:
                out[meta] = dist.name
    return out
