"""Filling a merge's staging directory from the staged tree.

The staged tree's entries arrive in the private staging directory that the
transaction made inside the prefix: by one rename each when they are on the
prefix's filesystem (the staged tree is consumed), by a copy otherwise or with
``--copy`` (it is left untouched).  Then, in the staging directory only:

* modes are made sane (:class:`Modes`): no read-only directory or file blocks
  the next merge or uninstall;
* a staged directory whose path in the prefix is a symlink to a directory
  (``lib64 -> lib``) is moved to where the link leads, so that the commit merges
  through the link and never replaces it; a link leading out of the prefix is
  refused unless allowed, and then its entries go to a staging directory there;
* a staged entry that would replace a real directory by a file or a link is refused.

Every rename made from the staged tree, or inside the staging directory, is
recorded so that a merge refused before its commit can put the staged tree back.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from install_atomic.engine.plan import PRIVATE_PREFIX
from install_atomic.engine.primitives import is_real_dir, same_device
from install_atomic.engine.trust import inside
from install_atomic.errors import InstallAtomicError, StagingError


class MergeError(InstallAtomicError, ValueError):
    """The staged tree cannot be merged as it is; nothing was changed."""


@dataclass(frozen=True)
class Modes:
    """How modes are set: ``umask`` None keeps the staged modes (adding only the
    owner's read and write, and search on directories); otherwise files get
    ``0o666`` (``0o777`` if any execute bit was set) and directories ``0o777``,
    less *umask*, plus the owner's read and write (and search)."""

    umask: int | None

    @classmethod
    def parse(cls, text: str) -> Modes:
        """``umask`` (the process umask), ``keep``, or an octal umask such as ``022``."""
        if text == "keep":
            return cls(None)
        if text == "umask":
            current = os.umask(0o022)
            os.umask(current)
            return cls(current)
        try:
            value = int(text, 8)
        except ValueError:
            value = -1
        if not 0 <= value <= 0o777:
            raise MergeError(f"--mode {text!r}: give 'umask', 'keep' or an octal umask (022)")
        return cls(value)

    def wanted(self, mode: int) -> int | None:
        """The mode an entry of *mode* gets, or None to leave it as it is (a symlink)."""
        if stat.S_ISDIR(mode):
            base = stat.S_IMODE(mode) if self.umask is None else 0o777 & ~self.umask
            return base | 0o700
        if stat.S_ISREG(mode):
            if self.umask is None:
                return stat.S_IMODE(mode) | 0o600
            base = 0o777 if mode & 0o111 else 0o666
            return (base & ~self.umask) | 0o600
        return None


@dataclass
class Filler:
    """Fills *stage* (inside the prefix) from *source* for the prefix *prefix*."""

    source: str
    stage: str
    prefix: str
    copy: bool
    modes: Modes
    allow_outside: bool
    #: Gives the staging directory of a destination outside the prefix.
    stage_for: Callable[[str], str]
    #: (from, to) of every rename made, in order.
    moves: list[tuple[str, str]] = field(default_factory=list)
    #: Staging directories made outside the prefix: (stage, destination).
    outside: list[tuple[str, str]] = field(default_factory=list)
    moved: bool = False

    def fill(self) -> None:
        self.moved = not self.copy and same_device(self.source, self.stage)
        for name in sorted(os.listdir(self.source)):
            if name.startswith(PRIVATE_PREFIX) or name == ".lock":
                raise MergeError(
                    f"{os.path.join(self.source, name)}: {name!r} is a name install-atomic"
                    " reserves for its own files. Nothing was changed. Rename it.",
                    os.path.join(self.source, name))
            src, dst = os.path.join(self.source, name), os.path.join(self.stage, name)
            if self.moved and same_device(src, self.stage):
                self._rename(src, dst)
            else:  # --copy, another filesystem, or a mount point inside the staged tree
                copy_entry(src, dst)
        self._fix_modes()
        while self._redirect_once():
            pass
        self._check_replacements(self.stage, self.prefix)

    def restore(self) -> bool:
        """Undo the renames (the staged tree is back); False if that was not possible."""
        try:
            for src, dst in reversed(self.moves):
                if os.path.lexists(dst) and not os.path.lexists(src):
                    os.makedirs(os.path.dirname(src), exist_ok=True)
                    os.rename(dst, src)
        except OSError:
            return False
        self.moves.clear()
        return True

    def _rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)
        self.moves.append((src, dst))

    # -- modes ------------------------------------------------------------------------
    def _fix_modes(self) -> None:
        """Set every mode in the stage, each directory before it is listed (a staged
        directory of mode 000 is opened too)."""
        stack = [self.stage]
        while stack:
            directory = stack.pop()
            for entry in os.scandir(directory):
                if entry.name.startswith(PRIVATE_PREFIX):
                    if directory == self.stage:
                        continue  # the stage's owner file
                    raise MergeError(
                        f"{entry.path}: {entry.name!r} is a name install-atomic reserves for"
                        " its own files. Nothing was changed. Rename it.", entry.path)
                st = entry.stat(follow_symlinks=False)
                want = self.modes.wanted(st.st_mode)
                if want is not None and want != stat.S_IMODE(st.st_mode):
                    os.chmod(entry.path, want)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)

    # -- symlinks to directories in the prefix ----------------------------------------
    def _redirect_once(self) -> bool:
        """Move the first staged directory met whose prefix path is a symlink to a
        directory; True if one was moved (the walk then starts again)."""
        stack = [""]
        while stack:
            rel = stack.pop()
            here = os.path.join(self.stage, rel) if rel else self.stage
            for name in sorted(_real_dirs(here)):
                if not rel and name.startswith(PRIVATE_PREFIX):
                    continue
                child = os.path.join(rel, name) if rel else name
                src = os.path.join(here, name)
                live = os.path.join(self.prefix, child)
                if not os.path.islink(live):
                    if is_real_dir(live):
                        stack.append(child)
                    continue
                self._through_link(src, live, child)
                return True
        return False

    def _through_link(self, src: str, live: str, rel: str) -> None:
        if not os.path.isdir(live):
            raise MergeError(
                f"{live} is a symbolic link to {os.readlink(live)!r}, which is no directory, and"
                f" the staged tree has a directory {rel} there. Nothing was changed. Fix or"
                " remove the link.", live)
        real = os.path.realpath(live)
        if inside(real, self.prefix):
            target = os.path.join(self.stage, os.path.relpath(real, self.prefix))
            self._merge_move(src, os.path.normpath(target), rel)
            return
        if not self.allow_outside:
            raise MergeError(
                f"{live} is a symbolic link to {real}, outside {self.prefix}; install-atomic"
                f" will not merge the staged {rel} through it. Nothing was changed. Pass"
                " --follow-outside-links to merge there too, or replace the link.", live)
        outside_stage = self.stage_for(real)
        self.outside.append((outside_stage, real))
        for name in sorted(os.listdir(src)):
            a, b = os.path.join(src, name), os.path.join(outside_stage, name)
            if same_device(a, outside_stage):
                self._rename(a, b)
            else:
                copy_entry(a, b)
                remove_entry(a)
        os.rmdir(src)

    def _merge_move(self, src: str, dst: str, rel: str) -> None:
        """Move the staged directory *src* to *dst* (also in the stage), merging."""
        if not os.path.lexists(dst):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            self._rename(src, dst)
            return
        if not is_real_dir(dst):
            raise MergeError(
                f"the staged tree has {rel} both as a directory and, through a symbolic link"
                f" of {self.prefix}, as a file ({os.path.relpath(dst, self.stage)}). Nothing was"
                " changed.", dst)
        for name in sorted(os.listdir(src)):
            a, b = os.path.join(src, name), os.path.join(dst, name)
            if not os.path.lexists(b):
                self._rename(a, b)
            elif is_real_dir(a) and is_real_dir(b):
                self._merge_move(a, b, os.path.join(rel, name))
            elif _same(a, b):
                remove_entry(a)
            else:
                raise MergeError(
                    f"the staged tree holds {os.path.join(rel, name)} twice: once directly"
                    f" and once as {os.path.relpath(b, self.stage)}, where a symbolic link of"
                    f" {self.prefix} leads, with different contents. Nothing was changed.", a)
        os.rmdir(src)

    def _check_replacements(self, stage: str, dest: str) -> None:
        """Refuse a staged file or link where the prefix has a real directory: the
        directory, and whatever others put in it, would be deleted."""
        live_dirs = _real_dirs(dest)
        for name in sorted(os.listdir(stage)):
            if stage == self.stage and name.startswith(PRIVATE_PREFIX):
                continue
            src, live = os.path.join(stage, name), os.path.join(dest, name)
            if name not in live_dirs:
                continue
            if is_real_dir(src):
                self._check_replacements(src, live)
                continue
            raise MergeError(
                f"{live} is a directory and the staged tree has a"
                f" {'symbolic link' if os.path.islink(src) else 'file'} there; install-atomic"
                " will not replace a directory by a file. Nothing was changed.", live)

    # -- results ----------------------------------------------------------------------
    def files(self) -> Iterator[str]:
        """Final paths of every file and symlink staged (after redirection)."""
        for path, _staged, _st in self.entries():
            yield path

    def entries(self) -> Iterator[tuple[str, str, os.stat_result]]:
        """(final path, staged path, ``lstat``) of every file and symlink staged (after
        redirection), a symlink to a directory included; one ``scandir`` per directory."""
        roots = [(self.stage, self.prefix), *self.outside]
        for stage, dest in roots:
            stack = [(stage, os.path.normpath(dest))]
            while stack:
                directory, final = stack.pop()
                with os.scandir(directory) as listing:
                    for entry in listing:
                        if directory == stage and entry.name.startswith(PRIVATE_PREFIX):
                            continue
                        target = os.path.join(final, entry.name)
                        if entry.is_dir(follow_symlinks=False):
                            stack.append((entry.path, target))
                        else:
                            yield target, entry.path, entry.stat(follow_symlinks=False)


def _real_dirs(directory: str) -> set[str]:
    """Names of the real directories (not symlinks) in *directory*: one ``scandir``
    instead of an ``lstat`` per entry; empty when it cannot be listed."""
    try:
        with os.scandir(directory) as entries:
            return {e.name for e in entries if e.is_dir(follow_symlinks=False)}
    except OSError:
        return set()


def _same(a: str, b: str) -> bool:
    if os.path.islink(a) or os.path.islink(b):
        return os.path.islink(a) and os.path.islink(b) and os.readlink(a) == os.readlink(b)
    try:
        return os.path.isfile(a) and os.path.isfile(b) and filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def copy_entry(src: str, dst: str) -> None:
    """Copy *src* (file, symlink or tree; symlinks copied as links) to *dst*; keep owners
    when running as root.  A failure (ENOSPC) raises :class:`StagingError`."""
    try:
        if is_real_dir(src):
            _copy_tree(src, dst)
        else:
            _copy_one(src, dst)
    except OSError as exc:  # shutil.Error too
        raise StagingError(
            f"cannot copy {src} into the staging directory: {_reason(exc)}. Nothing was"
            " changed in the prefix; free space there and merge again.", dst) from exc


#: Threads copying a staged tree's files (each copy mostly waits for the filesystems).
COPY_THREADS = 8


def _copy_one(src: str, dst: str) -> None:
    """``shutil.copy2`` of a file or a symlink (as a link), and its owner when root."""
    shutil.copy2(src, dst, follow_symlinks=False)
    if os.geteuid() == 0:
        st = os.lstat(src)
        os.lchown(dst, st.st_uid, st.st_gid)


def _copy_tree(src: str, dst: str) -> None:
    """What ``shutil.copytree(src, dst, symlinks=True)`` (and owners when root) makes, the
    files copied by :data:`COPY_THREADS` threads: directories first (parents before
    children), then every file and symlink, then each directory's modes and times
    (children before parents, as ``copytree`` sets them once filled).  The first
    error is raised once the copies under way are done."""
    dirs: list[tuple[str, str]] = []
    files: list[tuple[str, str]] = []
    stack = [(src, dst)]
    while stack:
        here, there = stack.pop()
        os.mkdir(there)
        dirs.append((here, there))
        with os.scandir(here) as entries:
            for entry in entries:
                target = os.path.join(there, entry.name)
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, target))
                else:
                    files.append((entry.path, target))
    if files:
        chunk = max(1, min(64, len(files) // (COPY_THREADS * 4)))
        with ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="install-atomic-copy") as pool:
            for _ in pool.map(lambda pair: _copy_one(*pair), files, chunksize=chunk):
                pass
    root = os.geteuid() == 0
    for here, there in reversed(dirs):
        shutil.copystat(here, there, follow_symlinks=False)
        if root:
            st = os.lstat(here)
            os.lchown(there, st.st_uid, st.st_gid)


def _reason(exc: OSError) -> str:
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        return str(exc.args[0][0][2])
    return exc.strerror or str(exc)


def remove_entry(path: str) -> None:
    if is_real_dir(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)
