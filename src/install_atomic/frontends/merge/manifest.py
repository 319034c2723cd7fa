"""Manifests: the files one merge installed, for ``--replace`` and ``uninstall --manifest``.

A manifest is JSON (:data:`~install_atomic.engine.ownership.MANIFEST_FORMAT`)::

    {"format": "install-atomic-manifest-1", "name": "zlib", "version": "1.3",
     "prefix": "/opt/local", "files": ["include/zlib.h", "lib/libz.so.1.3", ...]}

Paths are relative to the prefix (absolute for a destination a symlink of the
prefix leads to).  A manifest inside the prefix is staged with the merge and
put in place by the same transaction; one outside is written after the commit
(to a temporary name, fsynced, renamed).  The manifests in the directory of
``--manifest`` (and of ``--replace``) are the other packages' ownership: a
file another manifest lists is never removed, and replacing it warns (or,
with ``--strict``, refuses).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Sequence

from install_atomic.engine.ownership import (
    MANIFEST_FORMAT,
    InstalledDistribution,
    is_metadata_name,
    read_distribution,
    read_manifest,
)
from install_atomic.frontends.merge.layout import LIBRARY_NAMES


def render(name: str, version: str, prefix: str, files: Iterable[str]) -> bytes:
    rel = sorted(
        os.path.relpath(f, prefix) if f.startswith(prefix + os.sep) else f for f in files
    )
    data = {"format": MANIFEST_FORMAT, "name": name, "version": version, "prefix": prefix,
            "files": rel}
    return (json.dumps(data, indent=1) + "\n").encode()


def write_file(path: str, content: bytes, mode: int = 0o644) -> None:
    """Write *content* at *path* durably, replacing what is there in one rename."""
    name = f".{os.path.basename(path)}.{os.getpid()}.tmp"
    tmp = os.path.join(os.path.dirname(path) or ".", name)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
                found.append(read_manifest(path, scheme, name=f"manifest {path}"))
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return found


def _looks_like_json(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(1) == b"{"
    except OSError:
        return False


def python_distributions(files: Iterable[str]) -> dict[str, str]:
    """Metadata directories (``*.dist-info``, ``*.egg-info`` directly in a
    ``site-packages``) among the parents of *files*, as {metadata dir: project name};
    read from the filesystem as it is now."""
    dirs: set[str] = set()
    for path in files:
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
