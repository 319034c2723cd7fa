"""The destination lock: one committer at a time per environment.

The lock is a ``filelock.FileLock`` (``flock`` on Unix) on:

* ``<venv>/.lock`` when the destination lies inside a virtual environment
  (a directory holding ``pyvenv.cfg``): the very file ``uv`` locks, so an
  ``install_atomic`` commit and a ``uv pip install`` into the same virtual
  environment exclude each other;
* ``<destination>/.lock`` otherwise (as ``uv`` does for ``--target``).

The lock file is never deleted: unlinking a locked file splits waiters across
inodes.  ``flock`` does not exclude processes on different NFS clients.  A
symbolic link planted as the lock file is refused, never followed (filelock
opens with ``O_NOFOLLOW`` and without ``O_TRUNC`` since 3.20.1).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock, Timeout

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


def lock_path_for(destination: str) -> str:
    """Where the lock for commits into *destination* lives."""
    venv = environment_root(destination)
    return os.path.join(venv if venv is not None else destination, ".lock")


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
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


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
    try:
        yield
    finally:
        lock.release()
