"""Durability of the commit, checked by tracing its system calls in order.

A power loss must never leave an entry renamed into place whose data never reached the
disk, nor a journal that is missing or partial while the destination already changed, nor
renames that are lost after the old entries they replaced were deleted.  The order that
promises this (``docs/explanation/commit.md``, steps 2 to 5):

1. every staged file and directory is flushed (one ``fsync`` each, or one ``syncfs`` of
   the filesystem for a tree of more than ``primitives.SYNCFS_THRESHOLD`` entries) before
   the first rename into a destination;
2. the journal is written to a temporary name, fsynced, renamed into place and its
   directory fsynced, all before the first rename of the plan;
3. after the last rename of the plan, the parent directory of every renamed entry is
   fsynced before any old entry is deleted and before the journal is removed;
4. then the journal is rewritten, marked committed (the same temporary name, fsync,
   rename), before any old entry is deleted: recovery only rolls forward from there.

``--no-fsync`` (``durable=False``) skips 1 only: the journal is always fsynced
(``docs/howto/options.md``, "Durability"), and recovery still finds the changed directories
fsynced before the journal goes.

The :class:`Tracer` wraps the module attributes the engine calls (``os.fsync``,
``os.rename``, ``os.replace``, ``os.link``, ``os.unlink``, ``os.rmdir``,
``primitives._renameat2``, ``primitives._syncfs``), records each call with the path of
every file descriptor (read from ``/proc/self/fd``) and then calls the real function: the
commit is a real one, on real files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from enginekit import (
    DEMO_V1,
    DEMO_V2,
    DistSpec,
    Scenario,
    diff,
    digest,
    leftovers,
    stage_version,
    upgrade_scenario,
)
from install_atomic.engine import primitives
from install_atomic.engine.transaction import CommitResult

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to name traced descriptors"
)

RENAMES = ("rename", "replace", "link", "renameat2")
DELETES = ("unlink", "rmdir")


@dataclass(frozen=True)
class Event:
    index: int
    call: str
    paths: tuple[str, ...]
    #: renameat2 flags; for syncfs the st_dev of the filesystem flushed.
    extra: int = 0


def fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


class Tracer:
    """Records the durability-relevant calls touching *root*, in order."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)
        self.events: list[Event] = []

    def _inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root + os.sep)

    def _record(self, call: str, paths: tuple[str, ...], extra: int = 0) -> None:
        if any(self._inside(p) for p in paths):
            self.events.append(Event(len(self.events), call, paths, extra))

    @staticmethod
    def _abs(path: Any, dir_fd: int | None = None) -> str:
        """*path* made absolute, its directory resolved (not its last component)."""
        text = os.fsdecode(os.fspath(path))
        if dir_fd is not None and not os.path.isabs(text):
            text = os.path.join(fd_path(dir_fd), text)
        text = os.path.abspath(text)
        return os.path.join(os.path.realpath(os.path.dirname(text)), os.path.basename(text))

    def _fsync(self, real: Callable[[Any], None]) -> Callable[[Any], None]:
        def fsync(fd: Any) -> None:
            number = fd if isinstance(fd, int) else fd.fileno()
            self._record("fsync", (fd_path(number),))
            real(fd)

        return fsync

    def _two(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
            self._record(name, (self._abs(src, kwargs.get("src_dir_fd")),
                                self._abs(dst, kwargs.get("dst_dir_fd"))))
            return real(src, dst, *args, **kwargs)

        return wrapper

    def _one(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
            self._record(name, (self._abs(path, kwargs.get("dir_fd")),))
            return real(path, *args, **kwargs)

        return wrapper

    def _renameat2(self, real: Callable[[str, str, int], None]) -> Callable[[str, str, int], None]:
        def renameat2(old: str, new: str, flags: int) -> None:
            self._record("renameat2", (self._abs(old), self._abs(new)), flags)
            real(old, new, flags)

        return renameat2

    def _syncfs(self, real: Callable[[int], None]) -> Callable[[int], None]:
        def syncfs(fd: int) -> None:
            self._record("syncfs", (fd_path(fd),), os.fstat(fd).st_dev)
            real(fd)

        return syncfs

    @contextmanager
    def tracing(self) -> Iterator[Tracer]:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(os, "fsync", self._fsync(os.fsync))
            for name in ("rename", "replace", "link"):
                mp.setattr(os, name, self._two(name, getattr(os, name)))
            for name in DELETES:
                mp.setattr(os, name, self._one(name, getattr(os, name)))
            if primitives._renameat2 is not None:
                mp.setattr(primitives, "_renameat2", self._renameat2(primitives._renameat2))
            if primitives._syncfs is not None:
                mp.setattr(primitives, "_syncfs", self._syncfs(primitives._syncfs))
            yield self

    # -- queries
    def fsyncs(self, path: str, after: int = -1, before: int | None = None) -> list[Event]:
        end = len(self.events) if before is None else before
        return [e for e in self.events[after + 1:end] if e.call == "fsync" and e.paths[0] == path]

    def show(self, limit: int = 400) -> str:
        lines = []
        for e in self.events[:limit]:
            flags = f" flags={e.extra}" if e.call == "renameat2" else ""
            lines.append(f"  #{e.index} {e.call}({', '.join(e.paths)}){flags}")
        return "\n".join(lines)


@dataclass
class Traced:
    """A commit traced from its first call, with what the assertions need."""

    tracer: Tracer
    result: CommitResult
    #: stage path -> (every directory, every regular file) below it, stage included.
    staged: dict[str, tuple[list[str], list[str]]]
    primary: str

    @property
    def events(self) -> list[Event]:
        return self.tracer.events

    def plan_paths(self) -> set[str]:
        paths: set[str] = set()
        for step in self.result.plan.steps:
            paths |= {os.path.realpath(p) for p in (step.dest, step.source, step.backup,
                                                    step.aside) if p}
        return paths

    def plan_renames(self) -> list[Event]:
        """The renames of the plan's steps (not the journal's own rename)."""
        ours = self.plan_paths()
        found = [e for e in self.events if e.call in RENAMES and set(e.paths) & ours]
        assert found, f"no rename of the plan was traced:\n{self.tracer.show()}"
        return found

    def journal_renames(self) -> list[Event]:
        """The journal's two renames into place: written, then marked committed."""
        found = [e for e in self.events if e.call in ("replace", "rename")
                 and e.paths[0].endswith(".journal.tmp")]
        assert len(found) == 2, f"the journal's renames into place:\n{self.tracer.show()}"
        return found

    def journal_rename(self) -> Event:
        return self.journal_renames()[0]

    def journal_removal(self) -> Event:
        target = self.journal_rename().paths[1]
        found = [e for e in self.events if e.call == "unlink" and e.paths[0] == target]
        assert len(found) == 1, f"the journal's removal:\n{self.tracer.show()}"
        return found[0]


def traced_commit(scenario: Scenario, **kwargs: Any) -> Traced:
    """Build *scenario*, stage its new version and trace the commit (nothing before it)."""
    scenario.build()
    tracer = Tracer(scenario.prefix)
    with scenario.transaction(**kwargs) as txn:
        stage_version(txn, scenario.site, scenario.new)
        staged: dict[str, tuple[list[str], list[str]]] = {}
        for stage, _dest in txn.roots:
            dirs, files = [], []
            for dirpath, _dirnames, filenames in os.walk(stage):
                dirs.append(os.path.realpath(dirpath))
                files += [os.path.realpath(os.path.join(dirpath, n)) for n in filenames
                          if os.path.isfile(os.path.join(dirpath, n))]
            staged[os.path.realpath(stage)] = (dirs, files)
        with tracer.tracing():
            result = txn.commit()
    return Traced(tracer, result, staged, os.path.realpath(scenario.site))


def check_staged_tree_flushed(traced: Traced, *, syncfs_stages: set[str] = frozenset()) -> None:
    """Every stage is flushed before the first rename of the plan: by one syncfs of its
    filesystem for *syncfs_stages*, else by an fsync of each of its files and directories."""
    first = traced.plan_renames()[0].index
    for stage, (dirs, files) in traced.staged.items():
        if stage in syncfs_stages:
            device = os.stat(traced.primary).st_dev
            flushed = [e for e in traced.events[:first] if e.call == "syncfs" and e.extra == device]
            assert flushed, (f"{stage} (more than {primitives.SYNCFS_THRESHOLD} entries) was"
                             f" not syncfs'ed before the first rename:\n{traced.tracer.show()}")
            one_by_one = [p for p in files if traced.tracer.fsyncs(p)]
            assert one_by_one == [], "a large tree is flushed with syncfs, not file by file"
            continue
        missing = [p for p in dirs + files if not traced.tracer.fsyncs(p, before=first)]
        assert missing == [], (
            f"staged entries not fsynced before the first rename into the destination"
            f" (#{first}): {missing}\n{traced.tracer.show()}"
        )


def check_journal_durable_first(traced: Traced) -> None:
    """The journal: written to .tmp, fsynced, renamed into place, its directory fsynced, all
    before the first rename of the plan."""
    first = traced.plan_renames()[0]
    moved = traced.journal_rename()
    tmp, journal = moved.paths
    assert os.path.dirname(journal) == traced.primary, journal
    assert traced.tracer.fsyncs(tmp, before=moved.index), (
        f"the journal {tmp} was not fsynced before its rename:\n{traced.tracer.show()}")
    assert moved.index < first.index, "the journal was renamed into place after a step's rename"
    assert traced.tracer.fsyncs(traced.primary, after=moved.index, before=first.index), (
        f"the journal's directory {traced.primary} was not fsynced between the journal's"
        f" rename (#{moved.index}) and the first rename of the plan (#{first.index}):\n"
        f"{traced.tracer.show()}"
    )


def check_parents_durable_last(traced: Traced, *, before_deletions: bool) -> None:
    """After the last rename of the plan, every changed directory is fsynced before the
    journal goes and (*before_deletions*) before any old entry is deleted."""
    last = traced.plan_renames()[-1].index
    removal = traced.journal_removal().index
    deletions = [e.index for e in traced.events[last + 1:] if e.call in DELETES
                 and e.index != removal]
    deadline = min(deletions) if before_deletions and deletions else removal
    parents = sorted({os.path.realpath(os.path.dirname(s.dest))
                      for s in traced.result.plan.steps})
    late = [p for p in parents if not traced.tracer.fsyncs(p, after=last, before=deadline)]
    what = "the first deletion of an old entry" if deadline != removal else "the journal's removal"
    assert late == [], (
        f"directories changed by the commit not fsynced between its last rename (#{last}) and"
        f" {what} (#{deadline}): {late}\n{traced.tracer.show()}"
    )
    marked = traced.journal_renames()[1]
    tmp = marked.paths[0]
    synced = min(e.index for e in traced.events[last + 1:] if e.call in ("fsync", "syncfs")
                 and os.path.realpath(e.paths[0]) in parents)
    assert synced < marked.index < deadline, (
        f"the journal was not marked committed (#{marked.index}) between the fsync of the"
        f" changed directories (#{synced}) and {what} (#{deadline})\n{traced.tracer.show()}")
    assert traced.tracer.fsyncs(tmp, after=last, before=marked.index), (
        f"the committed journal {tmp} was not fsynced before its rename\n{traced.tracer.show()}")


def assert_installed(scenario: Scenario, tmp_path: Path) -> None:
    expected = scenario.expected(tmp_path / "reference")
    actual = digest(scenario.prefix)
    assert actual == expected, diff(actual, expected)
    assert leftovers(scenario.prefix) == []


# --------------------------------------------------------------------------- tests


def test_small_tree_is_fsynced_file_by_file_before_the_renames(tmp_path: Path) -> None:
    """An upgrade (package, module, script, metadata): each staged file and directory is
    fsynced before the first rename, the journal is durable before it, and every changed
    directory is fsynced after the last rename, before any old entry is deleted."""
    scenario = upgrade_scenario(tmp_path / "env")
    traced = traced_commit(scenario)
    assert len(traced.staged) == 2  # site-packages and bin
    assert not [e for e in traced.events if e.call == "syncfs"], "a small tree needs no syncfs"
    check_staged_tree_flushed(traced)
    check_journal_durable_first(traced)
    check_parents_durable_last(traced, before_deletions=True)
    assert_installed(scenario, tmp_path)


def test_large_tree_is_flushed_by_one_syncfs_before_the_renames(tmp_path: Path) -> None:
    """More than SYNCFS_THRESHOLD staged entries: one syncfs of the stage's filesystem before
    the first rename (and the small scripts stage still file by file); the journal and the
    changed directories as for a small tree."""
    if primitives._syncfs is None:
        pytest.skip("no syncfs on this platform: every tree is fsynced file by file")
    files = dict(DEMO_V2.files)
    for i in range(primitives.SYNCFS_THRESHOLD + 50):
        files[f"demopkg/gen/m{i:04d}.py"] = f"N = {i}\n".encode()
    big = DistSpec("demopkg", "2.0", files, kind="egg-info")
    scenario = Scenario(tmp_path / "env", big, [DEMO_V1])
    traced = traced_commit(scenario)
    site_stage = next(s for s in traced.staged if os.path.dirname(s) == traced.primary)
    check_staged_tree_flushed(traced, syncfs_stages={site_stage})
    check_journal_durable_first(traced)
    check_parents_durable_last(traced, before_deletions=True)
    assert_installed(scenario, tmp_path)


def test_no_fsync_skips_only_the_staged_tree(tmp_path: Path) -> None:
    """``durable=False`` (``--no-fsync``): no staged file is flushed (that is all the option
    gives up), yet the journal is still fsynced, renamed and its directory fsynced before
    the first rename, and the changed directories are fsynced before the journal goes."""
    scenario = upgrade_scenario(tmp_path / "env")
    traced = traced_commit(scenario, durable=False)
    staged = {p for dirs, files in traced.staged.values() for p in dirs + files}
    flushed = sorted({e.paths[0] for e in traced.events
                      if (e.call == "fsync" and e.paths[0] in staged) or e.call == "syncfs"})
    assert flushed == [], f"--no-fsync flushed staged entries: {flushed}"
    check_journal_durable_first(traced)
    check_parents_durable_last(traced, before_deletions=False)
    assert_installed(scenario, tmp_path)
