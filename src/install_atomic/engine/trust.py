"""Which of install-atomic's own files may be believed: journals, stages, owner files.

A destination may be writable by others (Debian's ``dist-packages`` is group
``staff``; a ``--prefix`` may sit in a sticky world-writable directory).
Anyone who can write there can plant a file named like a journal, a staging
directory or an owner file.  Such an entry is acted on only when:

* it is owned by the user running install-atomic, or by root;
* neither its group nor others may write to it;
* it is of the expected type (a regular file, a real directory), checked on
  the opened descriptor (``fstat``), never on a path that could be swapped
  between the check and the use.

Files are opened with ``O_NOFOLLOW`` (a symlink is refused, not followed) and
``O_NONBLOCK`` (a FIFO planted as a file cannot make the installer wait on
its open while it holds the lock).  Anything refused is reported by
``status`` and left where it is.
"""

from __future__ import annotations

import os
import stat
from typing import Literal

from install_atomic.errors import UntrustedError

Kind = Literal["file", "dir"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

#: Largest journal or marker file read; a planted huge file is refused, not read.
MAX_BYTES = 64 * 1024 * 1024


def trusted_uids() -> frozenset[int]:
    """Owners whose files install-atomic believes: the running user and root."""
    return frozenset({os.geteuid(), 0})


def distrust(st: os.stat_result, kind: Kind) -> str | None:
    """Why an entry with status *st* must not be acted on, or None when it may be."""
    if kind == "file" and not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if kind == "dir" and not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if st.st_uid not in trusted_uids():
        return f"it is owned by uid {st.st_uid}, neither this user ({os.geteuid()}) nor root"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"its mode {stat.filemode(st.st_mode)} lets other users write to it"
    return None


def distrust_path(path: str, kind: Kind) -> str | None:
    """:func:`distrust` for *path* itself (``lstat``: a symlink is never trusted)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"it cannot be examined ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link"
    return distrust(st, kind)


def open_trusted(path: str, kind: Kind, flags: int = os.O_RDONLY) -> int:
    """Open *path* without following a symlink or blocking on a FIFO; return the fd.

    Raises :class:`UntrustedError` (naming the path and the reason) when the
    opened entry fails :func:`distrust`, and ``OSError`` when it cannot be
    opened.  The check is made on the descriptor, so what is checked is what
    is used.
    """
    extra = _NOFOLLOW | _NONBLOCK | _CLOEXEC | (_DIRECTORY if kind == "dir" else 0)
    try:
        fd = os.open(path, flags | extra)
    except OSError as exc:
        if _NOFOLLOW and os.path.islink(path):
            raise UntrustedError(untrusted_message(path, "it is a symbolic link"), path) from exc
        raise
    try:
        reason = distrust(os.fstat(fd), kind)
    except BaseException:
        os.close(fd)
        raise
    if reason is not None:
        os.close(fd)
        raise UntrustedError(untrusted_message(path, reason), path)
    return fd


def read_trusted(path: str) -> bytes:
    """The content of the regular file *path*, if it passes :func:`distrust`."""
    fd = open_trusted(path, "file")
    try:
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_BYTES:
                raise UntrustedError(
                    untrusted_message(path, f"it is larger than {MAX_BYTES} bytes"), path
                )
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def untrusted_message(path: str, reason: str) -> str:
    return (
        f"{path} is not trusted: {reason}. install-atomic leaves it alone. If you know"
        " what made it, remove it yourself; otherwise find out who can write to"
        f" {os.path.dirname(path) or '.'}."
    )


def inside(path: str, root: str) -> bool:
    """True if the normalised absolute *path* is *root* or below it (no filesystem access)."""
    path = os.path.normpath(path)
    root = os.path.normpath(root)
    return os.path.isabs(path) and (path == root or path.startswith(root.rstrip(os.sep) + os.sep))
