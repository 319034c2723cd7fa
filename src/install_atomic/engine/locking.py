"""The destination lock: one committer at a time per environment.

The lock is a ``filelock.FileLock`` (``flock`` on Unix) on (:func:`lock_path_for`):

* ``<venv>/.lock`` when the destination lies inside a virtual environment
  (a directory holding ``pyvenv.cfg``): the very file ``uv`` locks, so an
  ``install_atomic`` commit and a ``uv pip install`` into the same virtual
  environment exclude each other;
* otherwise, for the front ends (``detached=True``),
  ``/tmp/install-atomic-<digest>.lock``, named after the destination's real
  path: no lock file is left in a tree that may be packaged (``--root``,
  ``--prefix``, ``--home``, ``--install-lib``), and every installer into the
  destination, whoever runs it, finds the same file;
* otherwise, the engine's default, ``<destination>/.lock`` (as ``uv`` does for
  ``--target``).

A lock file in a directory where anyone may create files (sticky and
world-writable, as ``/tmp``) could be planted by another user, who could then
unlink it while an installer holds it, so that the next installer locks a new
file and both commit at once.  There the lock file must be a regular file
owned by the user running install-atomic or by root (:func:`hold` creates it
itself when it is missing); any other is refused, naming the file.

The lock file is never deleted: unlinking a locked file splits waiters across
inodes.  ``flock`` does not exclude processes on different NFS clients.  A
symbolic link planted as the lock file is refused, never followed (filelock
opens with ``O_NOFOLLOW`` and without ``O_TRUNC`` since 3.20.1).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from filelock import FileLock, Timeout

from install_atomic.engine.primitives import flock_or_close
from install_atomic.engine.trust import trusted_uids
from install_atomic.errors import DestinationError, LockTimeout

#: Seconds an install, an uninstall or a recovery waits for a destination's lock.
DEFAULT_LOCK_TIMEOUT = 300.0


def environment_root(path: str) -> str | None:
    """The virtual environment containing *path*, or None."""
    current = os.path.abspath(path)
    while True:
        if os.path.isfile(os.path.join(current, "pyvenv.cfg")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


#: Where detached lock files live: the same directory for every user and session
#: (not ``$TMPDIR``), so that every installer into a destination finds the same file.
DETACHED_LOCK_DIR = "/tmp"  # noqa: S108 - a fixed, shared place is the point; see hold()


def lock_path_for(destination: str, *, detached: bool = False) -> str:
    """Where the lock for commits into *destination* lives.

    ``<venv>/.lock`` inside a virtual environment.  Otherwise, with *detached*
    (what the front ends use), ``/tmp/install-atomic-<digest>.lock``, where
    ``<digest>`` is the first 16 hex digits of the SHA-256 of the destination's
    real path: outside any tree that could be packaged.  Without *detached*,
    ``<destination>/.lock``.
    """
    venv = environment_root(destination)
    if venv is not None:
        return os.path.join(venv, ".lock")
    if not detached:
        return os.path.join(destination, ".lock")
    real = os.path.realpath(destination)
    digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:16]
    directory = DETACHED_LOCK_DIR if os.path.isdir(DETACHED_LOCK_DIR) else tempfile.gettempdir()
    return os.path.join(directory, f"install-atomic-{digest}.lock")


def lock_holders(lock_path: str) -> list[int]:
    """Pids holding a ``flock`` on *lock_path*, read from ``/proc/locks`` (Linux); [] elsewhere."""
    try:
        st = os.stat(lock_path)
        with open("/proc/locks", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in lines:
        parts = line.split()
        if "->" in parts:  # a waiter, not a holder
            continue
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == wanted:
            pids.append(int(parts[4]))
    return pids


def try_lock(lock_path: str) -> int | None:
    """Take the ``flock`` on an existing *lock_path* without waiting; return its fd.

    Returns None when another process holds it, and -1 when there is no such
    file (then nobody holds it).  The file is neither created nor truncated nor
    followed through a symlink: the path comes from a journal.  Closing the fd
    releases the lock.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(lock_path, flags)
    except FileNotFoundError:
        return -1
    return fd if flock_or_close(fd) else None


@contextmanager
def hold(lock_path: str, timeout: float) -> Iterator[None]:
    """Hold the lock at *lock_path*; raise :class:`LockTimeout` after *timeout* seconds.

    A negative timeout waits forever.  The error names the holder's pid when
    the platform tells it.
    """
    directory = os.path.dirname(lock_path)
    if not os.access(directory, os.W_OK):
        raise DestinationError(
            f"cannot create the lock file {lock_path}: {directory} is not writable. "
            "Run as a user who may write there, or choose another destination.",
            directory,
        )
    if os.path.islink(lock_path):
        # filelock >= 3.20.1 opens with O_NOFOLLOW; this names the problem for older ones.
        raise DestinationError(
            f"the lock file {lock_path} is a symbolic link; install-atomic will not follow"
            " it. Nothing was changed. Remove the link (someone who can write to"
            f" {directory} made it) and run the install again.",
            lock_path,
        )
    shared = _shared_directory(directory)
    if shared:
        _claim(lock_path)
    lock = FileLock(lock_path, is_singleton=True)
    started = time.monotonic()
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        holders = lock_holders(lock_path)
        holder = holders[0] if holders else None
        who = f"process {holder}" if holder is not None else "another process"
        raise LockTimeout(
            f"timed out after {time.monotonic() - started:.1f}s waiting for the lock {lock_path},"
            f" held by {who}. Wait for it to finish, raise --lock-timeout, or, if that process"
            " is hung, stop it and run 'python -m install_atomic recover'.",
            lock_path,
            holder,
        ) from None
    except OSError as exc:
        raise DestinationError(
            f"cannot take the lock {lock_path}: {exc.strerror}. Nothing was changed.",
            lock_path,
        ) from exc
    if shared:
        # A fresh date, so that a cleaner of old files in /tmp (systemd-tmpfiles) does
        # not delete the file while it is held.
        with contextlib.suppress(OSError):
            os.utime(lock_path)
    try:
        yield
    finally:
        lock.release()


def _shared_directory(directory: str) -> bool:
    """True if *directory* is sticky and others may create files in it (``/tmp``)."""
    try:
        mode = os.stat(directory).st_mode
    except OSError:
        return False  # filelock names the problem
    return bool(mode & stat.S_ISVTX and mode & (stat.S_IWGRP | stat.S_IWOTH))


def _claim(lock_path: str) -> None:
    """Make sure the lock file *lock_path*, in a sticky directory others may write to,
    is a regular file that this user or root owns: create it (``O_EXCL``) if it is
    missing, refuse it otherwise.  In a sticky directory only its owner (or root)
    can unlink or replace such a file afterwards, so the file checked here is the
    one filelock opens."""
    flags = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | flags, 0o644)
    except FileExistsError:
        try:
            fd = os.open(lock_path, os.O_RDONLY | flags)
        except OSError as exc:
            _refuse(lock_path, f"it cannot be opened ({exc.strerror})")
    except OSError as exc:
        raise DestinationError(
            f"cannot create the lock file {lock_path}: {exc.strerror}. Nothing was changed.",
            lock_path,
        ) from exc
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode):
        _refuse(lock_path, "it is not a regular file")
    if st.st_uid not in trusted_uids():
        _refuse(lock_path, f"it is owned by uid {st.st_uid}, neither this user"
                           f" ({os.geteuid()}) nor root")


def _refuse(lock_path: str, reason: str) -> NoReturn:
    directory = os.path.dirname(lock_path)
    raise DestinationError(
        f"the lock file {lock_path} is not trusted: {reason}. Anyone may create files in"
        f" {directory}, so another user may have planted it to block installs or to break"
        " their mutual exclusion. Nothing was changed. Remove it (as root, or as its"
        f" owner: rm {lock_path}) and run the install again.",
        lock_path,
    )
