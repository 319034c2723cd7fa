"""Staging directories: private trees inside each destination.

A staging directory is created *inside* the destination it feeds
(``mkdtemp(dir=destination, prefix=".install-atomic-")``), so every later
rename stays on one filesystem; :class:`Stage` checks ``st_dev`` to be sure.
Nothing outside it changes until the commit.

Each staging directory holds ``.install-atomic-owner``, flock-ed for as long
as the installer that made it runs: recovery removes a staging directory
without a journal only when that lock can be taken, so it never deletes the
work of an installer that is still building.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import sys
import tempfile
import time
from typing import Any, Callable

from install_atomic.engine.primitives import same_device
from install_atomic.errors import DestinationError, StagingError

PREFIX = ".install-atomic-"
OWNER = ".install-atomic-owner"
#: A staging directory without an owner file nor a pid in its name, younger than
#: this, is presumed alive.
YOUNG_SECONDS = 30.0


def ensure_destination(path: str) -> None:
    """Create *path* (and parents) if missing, as ``setup.py install`` does; check it is
    writable."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise DestinationError(
            f"destination {path} exists but is not a directory. Remove it or choose another"
            " destination.",
            path,
        )
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise DestinationError(
            f"cannot create the destination directory {path}: {exc.strerror}. Create it, or"
            " choose a destination you may write to (--user, --prefix, --home, --root).",
            path,
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise DestinationError(
            f"destination {path} is not writable. Nothing was changed. Run as a user who may"
            " write there, or install elsewhere (--user, --prefix, --home, --root).",
            path,
        )


class Stage:
    """One staging directory, locked by its owner for its lifetime."""

    def __init__(self, destination: str, *, private: bool = True) -> None:
        self.destination = os.path.abspath(destination)
        try:
            if private:
                # The pid in the name tells recovery whether a stage that has no owner
                # file yet (its installer died right after mkdtemp) is abandoned.
                self.path = tempfile.mkdtemp(dir=self.destination, prefix=f"{PREFIX}{os.getpid()}-")
            else:  # --dry-run: stage outside the destination, change nothing there
                self.path = tempfile.mkdtemp(prefix=PREFIX)
        except OSError as exc:
            raise StagingError(
                f"cannot create a staging directory in {self.destination}: {exc.strerror}."
                " Make the destination writable, or free space on its filesystem.",
                self.destination,
            ) from exc
        # mkdtemp's 0o700 would hide the stage from the import check run as another user;
        # the directory itself is never moved into place, only its entries are.
        self._fd = -1
        try:
            os.chmod(self.path, 0o755)  # noqa: S103
            self._fd = os.open(os.path.join(self.path, OWNER), os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.remove()
            raise StagingError(
                f"cannot prepare the staging directory {self.path}: {exc.strerror}."
                " Make the destination writable, or free space on its filesystem.",
                self.path,
            ) from exc
        if private and not same_device(self.path, self.destination):
            self.remove()
            raise StagingError(
                f"staging directory for {self.destination} is on another filesystem;"
                " renames would not be atomic.",
                self.destination,
            )

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        self.release()
        remove_tree(self.path)


#: In a primary staging directory: the other destinations its installer staged into.
DESTINATIONS = ".install-atomic-destinations"


def record_destination(primary_stage: str, destination: str) -> None:
    """Note in *primary_stage* that its installer also stages into *destination*."""
    with open(os.path.join(primary_stage, DESTINATIONS), "a", encoding="utf-8") as f:
        f.write(destination + "\n")
        f.flush()
        os.fsync(f.fileno())


#: In a secondary staging directory: the primary destination, where its journal goes.
PRIMARY = ".install-atomic-primary"


def record_primary(stage_path: str, primary: str) -> None:
    """Note in a secondary staging directory which destination holds its journal."""
    with open(os.path.join(stage_path, PRIMARY), "w", encoding="utf-8") as f:
        f.write(primary + "\n")


def recorded_primary(stage_path: str) -> str | None:
    try:
        with open(os.path.join(stage_path, PRIMARY), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def recorded_destinations(stage_path: str) -> list[str]:
    """The destinations :func:`record_destination` noted in *stage_path*."""
    try:
        with open(os.path.join(stage_path, DESTINATIONS), encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except OSError:
        return []


def _creator_pid(stage_path: str) -> int | None:
    """The pid in a stage's name (``.install-atomic-<pid>-<random>``), if there is one."""
    rest = os.path.basename(stage_path)[len(PREFIX):]
    head, sep, _ = rest.partition("-")
    return int(head) if sep and head.isdigit() else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


BUILD_PREFIX = "install-atomic-build-"


def build_dir_prefix() -> str:
    """Prefix of this process's private build directory in the system temp dir."""
    return f"{BUILD_PREFIX}{os.getpid()}-"


def sweep_build_dirs() -> list[str]:
    """Remove private build directories (system temp dir) of installers that are gone."""
    removed: list[str] = []
    tmp = tempfile.gettempdir()
    try:
        names = os.listdir(tmp)
    except OSError:
        return removed
    for name in names:
        head, sep, _ = name[len(BUILD_PREFIX):].partition("-")
        if name.startswith(BUILD_PREFIX) and sep and head.isdigit() and not _pid_alive(int(head)):
            path = os.path.join(tmp, name)
            try:
                remove_tree(path)
            except OSError:
                continue
            removed.append(path)
    return removed


def is_live(stage_path: str) -> bool:
    """True if the installer that created *stage_path* still holds its owner lock."""
    try:
        fd = os.open(os.path.join(stage_path, OWNER), os.O_RDONLY)
    except OSError:
        # Between mkdtemp and the owner file's creation: alive while its creator is.
        pid = _creator_pid(stage_path)
        if pid is not None:
            return _pid_alive(pid)
        try:
            return time.time() - os.lstat(stage_path).st_mtime < YOUNG_SECONDS
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)
    return False


def _make_writable_and_retry(func: Callable[..., Any], path: str, _exc: Any) -> None:
    parent = os.path.dirname(path)
    try:
        os.chmod(parent, os.lstat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
        if not os.path.islink(path) and os.path.isdir(path):
            os.chmod(path, os.lstat(path).st_mode | stat.S_IWUSR | stat.S_IXUSR | stat.S_IRUSR)
    except OSError:
        pass
    func(path)


def remove_tree(path: str) -> None:
    """Delete *path* (file, link or tree), read-only entries included.  Missing is fine."""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=_make_writable_and_retry)
        else:
            shutil.rmtree(path, onerror=_make_writable_and_retry)
    else:
        try:
            os.unlink(path)
        except PermissionError:
            _make_writable_and_retry(os.unlink, path, None)
