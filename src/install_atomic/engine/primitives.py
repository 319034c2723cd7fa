"""Filesystem primitives: one rename each, and the fsyncs that make them durable.

Every function here changes at most one directory entry (two for
:func:`exchange`) with one system call, so a concurrent reader sees either
the state before the call or the state after it.  Each docstring says what a
reader, and a crash, can observe.

All calls go through the module-level names ``os.rename``, ``os.replace``,
``os.link``, ``os.fsync`` and ``_renameat2`` so that tests can make exactly one
of them fail.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import platform
import stat
import sys
from typing import Any, Callable

from install_atomic.errors import StrPath

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_AT_FDCWD = -100

#: Raw syscall numbers of renameat2 for libcs older than glibc 2.28.
_SYSCALL_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "i686": 353, "armv7l": 382, "ppc64le": 357}


def _libc() -> ctypes.CDLL:
    """The C library, as linked into this interpreter: ``dlopen(NULL)`` finds its symbols
    without ``ctypes.util.find_library``, which runs ``ldconfig`` (and maybe ``gcc``) in a
    child process each time."""
    return ctypes.CDLL(None, use_errno=True)


def _load_renameat2() -> Callable[[str, str, int], None] | None:
    """Return a ``renameat2(old, new, flags)`` wrapper, or None where there is none."""
    platform_name: str = sys.platform
    if platform_name.startswith("linux"):
        libc = _libc()
        func: Any = getattr(libc, "renameat2", None)
        if func is not None:
            func.argtypes = [
                ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint
            ]
            func.restype = ctypes.c_int

            def call(old: str, new: str, flags: int) -> None:
                res = func(_AT_FDCWD, os.fsencode(old), _AT_FDCWD, os.fsencode(new), flags)
                if res != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err), old, None, new)

            return call
        number = _SYSCALL_RENAMEAT2.get(platform.machine())
        if number is None:
            return None
        syscall = libc.syscall

        def call_raw(old: str, new: str, flags: int) -> None:
            res = syscall(
                number,
                _AT_FDCWD,
                ctypes.c_char_p(os.fsencode(old)),
                _AT_FDCWD,
                ctypes.c_char_p(os.fsencode(new)),
                ctypes.c_uint(flags),
            )
            if res != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), old, None, new)

        return call_raw
    if platform_name == "darwin":
        libc = ctypes.CDLL(None, use_errno=True)
        func = getattr(libc, "renamex_np", None)
        if func is None:
            return None
        func.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        func.restype = ctypes.c_int
        # RENAME_SWAP = 2, RENAME_EXCL = 4 on macOS.
        mac_flags = {RENAME_EXCHANGE: 2, RENAME_NOREPLACE: 4}

        def call_mac(old: str, new: str, flags: int) -> None:
            res = func(os.fsencode(old), os.fsencode(new), mac_flags[flags])
            if res != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), old, None, new)

        return call_mac
    return None


_renameat2 = _load_renameat2()

#: errnos meaning "this kernel or filesystem cannot do that kind of rename".
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP})


def exchange(a: StrPath, b: StrPath) -> bool:
    """Swap the directory entries *a* and *b* in one step.

    Both must exist; they may be of different types (a file and a directory).
    A reader sees either both old names or both new ones: there is no instant
    at which either path is missing.  A crash leaves one state or the other.

    Returns False, having changed nothing, where the kernel or filesystem has
    no atomic exchange (no ``renameat2``, ``EINVAL`` on NFS and most FUSE
    filesystems); the caller then falls back to :func:`swap_by_renames`.
    Raises OSError for any other failure, again having changed nothing.
    """
    if _renameat2 is None:
        return False
    try:
        _renameat2(os.fspath(a), os.fspath(b), RENAME_EXCHANGE)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return False
        raise
    return True


def rename_noreplace(src: StrPath, dst: StrPath) -> None:
    """Rename *src* to *dst*, failing with FileExistsError if *dst* exists.

    Readers see *dst* appear complete.  Without ``RENAME_NOREPLACE`` support,
    falls back to checking then renaming: a concurrent creator of *dst* could
    slip in between, which the destination lock rules out for installers.
    """
    src_s, dst_s = os.fspath(src), os.fspath(dst)
    if _renameat2 is not None:
        try:
            _renameat2(src_s, dst_s, RENAME_NOREPLACE)
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
        else:
            return
    if os.path.lexists(dst_s):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst_s)
    os.rename(src_s, dst_s)


def replace(src: StrPath, dst: StrPath) -> None:
    """Rename *src* over *dst* (a file or nothing), replacing it in one step.

    Readers see the old file or the new one.  The old inode is gone unless the
    caller linked it elsewhere first (see :func:`swap_into`).
    """
    os.replace(src, dst)


def swap_by_renames(new: StrPath, dest: StrPath, backup: StrPath) -> None:
    """Put *new* at *dest* and the old *dest* at *backup*, with two renames.

    The fallback where :func:`exchange` is not available.  For a file, the old
    one is hard-linked to *backup* first and then replaced in one rename: no
    reader ever finds *dest* missing.  For a directory, *dest* is renamed to
    *backup* and *new* to *dest*: for the few microseconds between the two
    calls *dest* does not exist.  A crash there leaves the old entry at
    *backup* and the new one at *new*, which the journal lets recovery see.
    """
    st = os.lstat(dest)
    if not stat.S_ISDIR(st.st_mode) and not stat.S_ISDIR(os.lstat(new).st_mode):
        os.link(dest, backup, follow_symlinks=False)
        os.replace(new, dest)
        return
    os.rename(dest, backup)
    os.rename(new, dest)


def swap_into(new: StrPath, dest: StrPath, backup: StrPath) -> str:
    """Replace the existing entry *dest* by *new*; return where the old entry now is.

    Tries :func:`exchange` (the old entry then sits at *new*'s path), else
    :func:`swap_by_renames` (the old entry sits at *backup*).
    """
    if exchange(new, dest):
        return os.fspath(new)
    swap_by_renames(new, dest, backup)
    return os.fspath(backup)


def fsync_path(path: StrPath) -> None:
    """fsync one file or directory by path, so that its data (or entries) are on disk."""
    flags = os.O_RDONLY
    if hasattr(os, "O_DIRECTORY") and os.path.isdir(path):
        flags |= os.O_DIRECTORY
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def flock_nowait(fd: int) -> bool:
    """Take the exclusive ``flock`` of *fd* without waiting: True if taken, False if
    another open file description holds it; any other error is raised."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def flock_or_close(fd: int) -> bool:
    """:func:`flock_nowait`, closing *fd* unless the lock was taken (then the caller
    keeps *fd*: closing it releases the lock)."""
    try:
        taken = flock_nowait(fd)
    except BaseException:
        os.close(fd)
        raise
    if not taken:
        os.close(fd)
    return taken


def write_durably(path: str, data: bytes, mode: int = 0o644, tmp: str | None = None) -> None:
    """Replace *path* with *data* so that after a crash it is the old file or the new one,
    whole: write *tmp* (default ``<path>.tmp``), fsync it, rename it over *path*, fsync
    the directory.

    The temporary name is created with ``O_EXCL | O_NOFOLLOW``: a name planted in a
    directory others can write is never followed nor truncated; the write fails instead.
    """
    tmp = tmp or path + ".tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_path(os.path.dirname(path) or ".")


#: Above this many entries, :func:`fsync_tree` flushes the whole filesystem with
#: one ``syncfs`` instead of one ``fsync`` per file.
SYNCFS_THRESHOLD = 200


def _load_syncfs() -> Callable[[int], None] | None:
    platform_name: str = sys.platform
    if not platform_name.startswith("linux"):
        return None
    func: Any = getattr(_libc(), "syncfs", None)
    if func is None:
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int

    def call(fd: int) -> None:
        if func(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return call


_syncfs = _load_syncfs()


def fsync_tree(root: StrPath) -> None:
    """Make every file and directory below *root*, and *root* itself, durable.

    Run on a staged tree before it is renamed into place, so that a power
    loss after the rename cannot leave an entry whose data never reached the
    disk.  Small trees get one ``fsync`` per file and directory; trees of
    more than :data:`SYNCFS_THRESHOLD` entries one ``syncfs`` of their
    filesystem (Linux), which costs one flush instead of thousands.  Symlinks
    are not followed.
    """
    if _syncfs is not None:
        count = 0
        for _, dirnames, filenames in os.walk(root, followlinks=False):
            count += len(dirnames) + len(filenames)
            if count > SYNCFS_THRESHOLD:
                fd = os.open(root, os.O_RDONLY)
                try:
                    _syncfs(fd)
                finally:
                    os.close(fd)
                return
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                fsync_path(path)
        fsync_path(dirpath)


def is_real_dir(path: StrPath) -> bool:
    """A directory, not a symlink to one: only those are swapped or merged into."""
    return os.path.isdir(path) and not os.path.islink(path)


def same_device(a: StrPath, b: StrPath) -> bool:
    """True when *a* and *b* are on one filesystem: a rename between them cannot fail with EXDEV."""
    return os.lstat(a).st_dev == os.lstat(b).st_dev
