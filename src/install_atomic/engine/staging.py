"""Staging directories: private trees inside each destination.

A staging directory is created *inside* the destination it feeds
(``mkdtemp(dir=destination, prefix=".install-atomic-")``), so every later
rename stays on one filesystem; :class:`Stage` checks ``st_dev`` to be sure.
Nothing outside it changes until the commit.

Each staging directory holds ``.install-atomic-owner``, flock-ed for as long
as the installer that made it runs: recovery removes a staging directory
without a journal only when that lock can be taken, so it never deletes the
work of an installer that is still building.  The owner file is locked before
its name appears, so no one ever sees it unlocked while its installer lives.

A destination may be writable by others (see :mod:`install_atomic.engine.trust`):
a staging directory or owner file that another user could have planted is
never judged dead (:func:`distrust_stage`), and :func:`remove_tree` walks
through directory descriptors, so it never follows a symlink nor changes a
permission through a path that could have been swapped.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, TypeVar

from install_atomic.engine import trust
from install_atomic.engine.primitives import flock_nowait, flock_or_close, same_device
from install_atomic.errors import DestinationError, StagingError

PREFIX = ".install-atomic-"
OWNER = ".install-atomic-owner"
#: The owner file's name while it is created and locked, before it becomes :data:`OWNER`.
OWNER_NEW = OWNER + ".new"
#: Stages (``st_dev``, ``st_ino``) this process made and then released, that may still
#: exist: in the process that made it, the pid in a stage's name cannot tell that it
#: was abandoned.
_RELEASED: set[tuple[int, int]] = set()
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
    """One staging directory, locked by its owner for its lifetime.

    A recovery running while it is created sees the new directory first without
    an owner file (alive while the pid in its name lives), then with a locked
    one: never an unlocked owner file while this process runs.  A crash in
    between leaves a directory whose pid is dead: recovery removes it.
    """

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
        self._fd = -1
        self._id: tuple[int, int] | None = None
        try:
            st = os.lstat(self.path)
            self._id = (st.st_dev, st.st_ino)
            _RELEASED.discard(self._id)  # an inode number used again
            self._fd = _create_owner(self.path)
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

    @classmethod
    def adopt(cls, path: str, destination: str) -> Stage | None:
        """Take over the existing staging directory *path* of *destination* (a pending
        transaction's, whose maker may have exited): lock its owner file, without
        waiting.  None when its owner file is locked by a live process.

        Raises :class:`~install_atomic.errors.StagingError` when the stage is not
        trusted or has no owner file (it was not left by a deferral).
        """
        why = distrust_stage(path)
        if why is None and not same_device(path, destination):
            why = "it is not on its destination's filesystem"
        if why is not None:
            raise StagingError(f"{path} is not trusted: {why}. It is left alone.", path)
        try:
            fd = trust.open_trusted(os.path.join(path, OWNER), "file", os.O_RDWR)
        except OSError as exc:
            raise StagingError(
                f"cannot open the owner file of the staging directory {path}:"
                f" {exc.strerror or exc}. It is left alone.",
                path,
            ) from exc
        if not flock_or_close(fd):
            return None
        stage = cls.__new__(cls)
        stage.destination = os.path.abspath(destination)
        stage.path = path
        stage._fd = fd
        st = os.lstat(path)
        stage._id = (st.st_dev, st.st_ino)
        _RELEASED.discard(stage._id)
        return stage

    @property
    def owner_pid(self) -> int | None:
        """The pid of the process that made this stage (from its name)."""
        return creator_pid(self.path)

    def release(self) -> None:
        """Let recovery in: from now on the stage, if it is still there, is judged dead,
        even if its owner file was removed and this process lives on."""
        if self._id is not None and os.path.lexists(self.path):
            _RELEASED.add(self._id)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        self.release()
        remove_tree(self.path)
        if self._id is not None:
            _RELEASED.discard(self._id)


def _create_owner(stage_path: str) -> int:
    """Make *stage_path* (fresh from ``mkdtemp``) readable by all and give it a locked
    owner file; return the owner file's descriptor, which holds the lock.

    The ``chmod`` and the owner file's creation go through a descriptor of the
    directory, opened without following a symlink and checked to be this user's,
    so a destination writable by others cannot redirect them.  The owner file is
    created as :data:`OWNER_NEW`, locked, and only then renamed to :data:`OWNER`:
    whoever opens :data:`OWNER` finds it locked.  A crash before the rename leaves
    a stage without :data:`OWNER`, judged by the (dead) pid in its name.
    """
    dir_fd = os.open(stage_path, _DIR_FLAGS)
    try:
        if os.fstat(dir_fd).st_uid != os.geteuid():
            raise OSError(errno.EPERM, "it was replaced by another user's directory", stage_path)
        # mkdtemp's 0o700 would hide the stage from the import check run as another
        # user; the directory itself is never moved into place, only its entries are.
        os.fchmod(dir_fd, 0o755)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(OWNER_NEW, flags, 0o600, dir_fd=dir_fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # By path (two arguments, as test doubles of os.rename expect): a swapped
            # stage name could only make it rename inside the swapper's directory.
            os.rename(os.path.join(stage_path, OWNER_NEW), os.path.join(stage_path, OWNER))
        except BaseException:
            os.close(fd)
            raise
        return fd
    finally:
        os.close(dir_fd)


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


def _pid_in(rest: str) -> int | None:
    """The pid heading *rest* (``<pid>-<anything>``), if there is one."""
    head, sep, _ = rest.partition("-")
    # isascii: int() refuses some Unicode digits ('²') that isdigit() accepts.
    return int(head) if sep and head.isascii() and head.isdigit() else None


def creator_pid(stage_path: str) -> int | None:
    """The pid in a stage's name (``.install-atomic-<pid>-<random>``), if there is one."""
    return _pid_in(os.path.basename(stage_path)[len(PREFIX):])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: no pid is that large
        return False
    except PermissionError:
        return True
    return True


BUILD_PREFIX = "install-atomic-build-"


def build_dir_prefix() -> str:
    """Prefix of this process's private build directory in the system temp dir."""
    return f"{BUILD_PREFIX}{os.getpid()}-"


def dead_build_dirs() -> list[str]:
    """The build directories :func:`sweep_build_dirs` would remove now: in the system
    temp dir, named with the pid of a process that is gone, directories (not
    symlinks) owned by the running user.  Changes nothing; never raises."""
    opened = _open_temp_dir()
    if opened is None:
        return []
    tmp, tmp_fd = opened
    try:
        return [os.path.join(tmp, name) for name in _dead_build_names(tmp_fd)]
    finally:
        os.close(tmp_fd)


def sweep_build_dirs() -> list[str]:
    """Remove the private build directories (system temp dir) of installers that are gone;
    return the paths removed.  Never raises.

    Only directories owned by the running user are touched, checked again on the
    descriptor opened to remove them (``O_NOFOLLOW``): another user's directory,
    or a symlink or file planted under such a name, is skipped silently, as is
    an entry that cannot be removed (another user's file inside it).  Another
    installer sweeping at the same time is fine: what it removed first is
    skipped, and both report the directory removed.  A crash during the sweep
    leaves part of a dead directory, which the next sweep removes.
    """
    opened = _open_temp_dir()
    if opened is None:
        return []
    tmp, tmp_fd = opened
    removed: list[str] = []
    try:
        for name in _dead_build_names(tmp_fd):
            try:
                _remove_at(tmp_fd, name, os.path.join(tmp, name), fix_parent=False,
                           owner=os.geteuid())
            except OSError:
                continue
            removed.append(os.path.join(tmp, name))
    finally:
        os.close(tmp_fd)
    return removed


def _open_temp_dir() -> tuple[str, int] | None:
    """The system temp dir and a descriptor of it, or None if there is none."""
    try:
        tmp = tempfile.gettempdir()
        return tmp, os.open(tmp, _DIR_FLAGS & ~os.O_NOFOLLOW)
    except OSError:
        return None


def _dead_build_names(tmp_fd: int) -> list[str]:
    """Names in the temp dir held as *tmp_fd* of this user's build directories whose
    installer is gone (``lstat``: a symlink is not a directory)."""
    try:
        names = sorted(os.listdir(tmp_fd))
    except OSError:
        return []
    dead = []
    for name in names:
        pid = _pid_in(name[len(BUILD_PREFIX):]) if name.startswith(BUILD_PREFIX) else None
        if pid is None or _pid_alive(pid):
            continue
        try:
            st = os.lstat(name, dir_fd=tmp_fd)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
            dead.append(name)
    return dead


def distrust_stage(stage_path: str) -> str | None:
    """Why the staging directory *stage_path* must be left alone, or None if it may be
    judged by :func:`is_live` and, when dead, removed.

    It is left alone when the directory fails :func:`trust.distrust_path`
    (another user's, writable by others, a symlink, not a directory, or it
    cannot be examined), or when its owner file exists and fails it (a symlink,
    a FIFO, another user's file, writable by others).  A stage without an owner
    file passes: :func:`is_live` judges it by the pid in its name.  Recovery
    calls this before removing any stage, and reports the reason, which reads on
    from ``"<stage> is not trusted: "``.  Only ``lstat`` is used: nothing is
    opened, so nothing planted can make it wait.
    """
    reason = trust.distrust_path(stage_path, "dir")
    if reason is not None:
        return reason
    owner = os.path.join(stage_path, OWNER)
    try:
        os.lstat(owner)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"its owner file {OWNER} cannot be examined ({exc.strerror})"
    reason = trust.distrust_path(owner, "file")
    return None if reason is None else f"its owner file {OWNER} cannot be believed: {reason}"


def is_live(stage_path: str) -> bool:
    """False only if *stage_path* is known to be abandoned: its installer is gone.

    * A stage that is not trusted (:func:`distrust_stage`) is never judged dead:
      True.  So is one whose owner file cannot be opened, or was swapped for an
      untrusted one after that check.
    * With an owner file: True while its installer holds the file's ``flock``
      (tested without waiting).
    * Without one (the installer is between ``mkdtemp`` and the owner file's
      rename into place, or removed part of the stage): True while the pid in
      the stage's name lives; a name without a pid, while the directory is
      younger than :data:`YOUNG_SECONDS`.  But False for a stage this very
      process made and released (an installer that failed to remove its stage
      releases it for recovery, and may live on).
    * A path that does not exist: False.

    Never blocks: the owner file is opened with ``O_NONBLOCK | O_NOFOLLOW`` and
    checked on its descriptor (:func:`trust.open_trusted`), so a FIFO or a
    symlink planted there cannot make an installer that holds a lock wait.
    """
    if not os.path.lexists(stage_path):
        return False
    if distrust_stage(stage_path) is not None:
        return True
    try:
        fd = trust.open_trusted(os.path.join(stage_path, OWNER), "file")
    except FileNotFoundError:
        pid = creator_pid(stage_path)
        if pid == os.getpid():
            try:
                st = os.lstat(stage_path)
            except OSError:
                return False
            if (st.st_dev, st.st_ino) in _RELEASED:
                return False
        if pid is not None:
            return _pid_alive(pid)
        try:
            return time.time() - os.lstat(stage_path).st_mtime < YOUNG_SECONDS
        except OSError:
            return False
    except OSError:  # untrusted (UntrustedError) or unreadable: cannot be judged
        return True
    try:
        return not flock_nowait(fd)
    finally:
        os.close(fd)


# -- removing trees ----------------------------------------------------------------------

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: For the parent of what :func:`remove_tree` removes: only used as ``dir_fd``, so
#: it needs no read permission where ``O_PATH`` exists.
_PARENT_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC

_T = TypeVar("_T")


class _ReplacedError(OSError):
    """An entry changed type or identity between its ``lstat`` and its use."""


@dataclass
class _Dir:
    """A directory being emptied: held open, then removed from its parent by name."""

    fd: int
    where: str  # its path, for error messages only
    names: list[str]  # entries still to remove
    parent_fd: int
    name: str
    fix_parent: bool  # may the parent's mode be changed (it is inside the tree)
    again: bool = False  # entered a second time, after a swap
    refills: int = 0  # emptied again after another process wrote into it
    swept: bool = False  # its simple entries went in one batch (:func:`_unlink_batch`)


#: How often a directory that another process keeps writing into is emptied again.
_MAX_REFILLS = 10
#: A directory with at least this many entries has its files and leaf directories
#: removed by :data:`_UNLINK_THREADS` threads at once (:func:`_unlink_batch`).
_BATCH_MIN = 16
_UNLINK_THREADS = 16


def _unlink_batch(current: _Dir, pool: ThreadPoolExecutor) -> None:
    """Remove the files and the leaf directories of *current*, several at once, and drop
    them from its names.

    Only a speed-up of the one-by-one walk, never another behaviour: each entry is
    removed as that walk removes it (:func:`_remove_simple`), and whatever resists for
    any reason (a directory holding directories, a refused permission, an entry
    swapped meanwhile) stays in the names for that walk, which then handles it
    exactly as before.  The owner files stay too: they go last.  On a filesystem
    where each unlink waits for the disk (``discard``, a busy journal), the waits
    overlap: 10,000 files in about a sixth of the time.
    """
    names = [n for n in current.names if n not in (OWNER, OWNER_NEW)]
    fd = current.fd
    chunk = -(-len(names) // _UNLINK_THREADS)  # one chunk per thread
    done = pool.map(lambda name: _remove_simple(fd, name), names, chunksize=chunk)
    gone = {name for name, removed in zip(names, done) if removed}
    current.names = [n for n in current.names if n not in gone]


def _remove_simple(parent_fd: int, name: str) -> bool:
    """Remove the entry *name* of the directory held as *parent_fd* if it is a file, a
    symlink or a directory holding only such entries; True once it is gone, False
    (nothing more done) at the first obstacle.

    A file or a symlink is unlinked by name (never followed).  A directory is
    opened without following a symlink and checked (``st_dev``, ``st_ino``)
    against the ``lstat`` that chose it, its entries unlinked through that
    descriptor, then it is removed by name, as :func:`_remove_at` does.  No mode
    is changed: that is left to :func:`_remove_at`.
    """
    try:
        os.unlink(name, dir_fd=parent_fd)
        return True
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno not in (errno.EISDIR, errno.EPERM):
            return False
    try:
        st = os.lstat(name, dir_fd=parent_fd)
        if not stat.S_ISDIR(st.st_mode):
            return False
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError:
        return False
    try:
        got = os.fstat(fd)
        if (got.st_dev, got.st_ino) != (st.st_dev, st.st_ino):
            return False
        with os.scandir(fd) as entries:
            listed = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
        if any(is_dir or n in (OWNER, OWNER_NEW) for n, is_dir in listed):
            return False
        for child, _ in listed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(child, dir_fd=fd)
    except OSError:
        return False
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _rmdir(emptied: _Dir) -> None:
    _with_access(emptied.parent_fd, emptied.fix_parent,
                 lambda: os.rmdir(emptied.name, dir_fd=emptied.parent_fd))


def remove_tree(path: str) -> None:
    """Delete *path*: a file, a symlink (the link, never its target) or a whole tree.
    Missing is fine.

    Nothing is followed.  Each directory is opened relative to its parent's
    descriptor with ``O_NOFOLLOW``, checked (``st_dev``, ``st_ino``) against the
    ``lstat`` that chose to open it, and emptied through that descriptor; a
    symlink met anywhere is unlinked.  A directory of the tree that refuses the
    removal of its entries (read-only, mode 000) is made accessible only if it
    is owned by the running user, and only through its held descriptor
    (``fchmod``), or, to open one, through ``fchmodat`` without following a
    symlink in a parent nobody else may change.  The parent of *path* is never
    changed, and the components of *path* above its last are the caller's.

    A concurrent reader sees the tree shrink, each directory's entries before
    the directory.  Another process removing the same tree at the same time
    (two installers sweeping) is fine: whatever vanished is skipped.  An entry
    swapped under the walk is examined again, once.  A crash leaves part of the
    tree, which the next call removes.  Raises ``OSError`` for what cannot be
    removed (a file another user owns in a sticky directory, an entry that kept
    changing).
    """
    head, name = os.path.split(path.rstrip(os.sep))
    if name in ("", ".", ".."):
        raise ValueError(f"remove_tree: refusing to remove {path!r}")
    try:
        parent_fd = os.open(head or ".", _PARENT_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        _remove_at(parent_fd, name, path, fix_parent=False)
    finally:
        os.close(parent_fd)


def _remove_at(
    parent_fd: int, name: str, where: str, *, fix_parent: bool, owner: int | None = None
) -> None:
    """Remove the entry *name* of the directory held as *parent_fd*, depth first, with
    a stack of held directories rather than recursion (any depth).  With *owner*,
    the entry must be a directory owned by that uid (else OSError, nothing removed)."""
    top = _enter(parent_fd, name, where, fix_parent, owner)
    stack = [top] if top is not None else []
    pool: ThreadPoolExecutor | None = None
    try:
        while stack:
            current = stack[-1]
            if not current.swept and len(current.names) >= _BATCH_MIN:
                current.swept = True
                if pool is None:
                    pool = ThreadPoolExecutor(_UNLINK_THREADS,
                                              thread_name_prefix="install-atomic-unlink")
                _unlink_batch(current, pool)
            if current.names:
                child = current.names.pop()
                opened = _enter(current.fd, child, os.path.join(current.where, child), True)
                if opened is not None:
                    stack.append(opened)
                continue
            stack.pop()
            os.close(current.fd)
            try:
                _rmdir(current)
            except FileNotFoundError:
                continue
            except NotADirectoryError:
                if current.again or (owner is not None and current is top):
                    raise
                # Swapped for a symlink or a file once emptied: remove that, once.
                again = _enter(current.parent_fd, current.name, current.where,
                               current.fix_parent, retry=False)
                if again is not None:
                    again.again = True
                    stack.append(again)
            except OSError as exc:
                if exc.errno != errno.ENOTEMPTY or current.refills >= _MAX_REFILLS:
                    raise
                # Written into while it was emptied (a compileall of the environment
                # descending into a backup): empty it again, a bounded number of times.
                refilled = _enter(current.parent_fd, current.name, current.where,
                                  current.fix_parent, retry=False)
                if refilled is not None:
                    refilled.refills = current.refills + 1
                    refilled.again = current.again
                    stack.append(refilled)
    finally:
        if pool is not None:
            # Before any descriptor is closed: no thread may use a reused number.
            pool.shutdown(wait=True, cancel_futures=True)
        for held in stack:
            os.close(held.fd)


def _enter(
    parent_fd: int, name: str, where: str, fix_parent: bool, owner: int | None = None,
    *, retry: bool = True,
) -> _Dir | None:
    """Unlink *name* if it is not a directory; open it if it is, and return it to be
    emptied.  None when nothing is left to do (removed, or already gone)."""
    try:
        st = _with_access(parent_fd, fix_parent,
                          lambda: os.lstat(name, dir_fd=parent_fd))
        if owner is not None and (not stat.S_ISDIR(st.st_mode) or st.st_uid != owner):
            raise _ReplacedError(errno.EPERM, "not a directory of this user's", where)
        if not stat.S_ISDIR(st.st_mode):
            try:
                _with_access(parent_fd, fix_parent, lambda: os.unlink(name, dir_fd=parent_fd))
            except IsADirectoryError as exc:
                raise _ReplacedError(errno.EISDIR, "replaced by a directory", where) from exc
            return None
        fd = _open_dir(parent_fd, name, st, where, owner)
        if fd is None:
            return None
        try:
            with os.scandir(fd) as entries:
                # Popped from the end: a stage's owner file goes last, so that a stage
                # only partly removed keeps it and is judged by its (free) lock.
                names = sorted((entry.name for entry in entries),
                               key=lambda n: n not in (OWNER, OWNER_NEW))
        except BaseException:
            os.close(fd)
            raise
        return _Dir(fd, where, names, parent_fd, name, fix_parent)
    except FileNotFoundError:
        return None
    except _ReplacedError:
        if owner is not None or not retry:
            raise
        return _enter(parent_fd, name, where, fix_parent, retry=False)


def _open_dir(
    parent_fd: int, name: str, st: os.stat_result, where: str, owner: int | None
) -> int | None:
    """Open the directory *name* (whose ``lstat`` was *st*) without following a symlink;
    None if it is gone.  Raises :class:`_ReplacedError` if what was opened is not what
    *st* describes."""
    try:
        fd = _open_dir_fd(parent_fd, name, where)
    except PermissionError:
        if not _chmod_to_open(parent_fd, name, st):
            raise
        fd = _open_dir_fd(parent_fd, name, where)
    if fd is None:
        return None
    try:
        got = os.fstat(fd)
        if (got.st_dev, got.st_ino) != (st.st_dev, st.st_ino):
            raise _ReplacedError(errno.EBUSY, "replaced while being removed", where)
        if owner is not None and got.st_uid != owner:
            raise _ReplacedError(errno.EPERM, "not a directory of this user's", where)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_dir_fd(parent_fd: int, name: str, where: str) -> int | None:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        return None
    except NotADirectoryError as exc:
        raise _ReplacedError(errno.ENOTDIR, "replaced by a file", where) from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _ReplacedError(errno.ELOOP, "replaced by a symbolic link", where) from exc
        raise


def _with_access(dir_fd: int, may_fix: bool, call: Callable[[], _T]) -> _T:
    """*call* (an operation on an entry of the directory held as *dir_fd*); if the
    directory's mode refuses it, make the directory accessible and call again."""
    try:
        return call()
    except PermissionError:
        if not (may_fix and _make_accessible(dir_fd)):
            raise
    return call()


def _make_accessible(dir_fd: int) -> bool:
    """Give the user read, write and search on the directory held as *dir_fd*, through
    the descriptor, if it is the running user's and lacks one of them."""
    try:
        st = os.fstat(dir_fd)
        if st.st_uid != os.geteuid() or st.st_mode & stat.S_IRWXU == stat.S_IRWXU:
            return False
        os.fchmod(dir_fd, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
    except OSError:
        return False
    return True


def _chmod_to_open(parent_fd: int, name: str, st: os.stat_result) -> bool:
    """Make the directory *name* (``lstat`` *st*, mode 000 or without read) openable,
    if it is the running user's and its parent is one nobody else may change (so
    the name still means *st*: the opened descriptor is checked against it too)."""
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return False
    try:
        parent = os.fstat(parent_fd)
        if parent.st_uid not in trust.trusted_uids() or (
            parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            and not parent.st_mode & stat.S_ISVTX
        ):
            return False
        os.chmod(name, stat.S_IMODE(st.st_mode) | stat.S_IRWXU, dir_fd=parent_fd,
                 follow_symlinks=False)
    except (NotImplementedError, ValueError, OSError):  # no fchmodat without following
        return False
    return True
