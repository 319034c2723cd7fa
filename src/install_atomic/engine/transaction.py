"""A transaction: stage, then lock, journal, swap, clean up.

Usage (what every adapter does)::

    with Transaction("demo-pkg", primary=site_packages) as txn:
        lib = txn.stage(site_packages)
        scripts = txn.stage(bin_dir)
        ...  # build into lib and scripts, compile, verify
        result = txn.commit()

Everything before :meth:`Transaction.commit` happens in private staging
directories and runs in parallel with other installers.  ``commit`` then:

1. takes the destination lock (:mod:`install_atomic.engine.locking`) and recovers
   any transaction a crashed installer left (:mod:`install_atomic.engine.recovery`);
2. reads ownership and computes the plan (:mod:`install_atomic.engine.plan`);
   with ``strict``, refuses on a conflict before anything changes;
3. writes and fsyncs the journal (the staged trees were made durable before
   the lock was taken: one ``fsync`` per entry, or one ``syncfs``);
4. makes the renames in plan order; on any error undoes those made, in
   reverse, and raises :class:`~install_atomic.errors.CommitError`;
5. fsyncs the changed directories, deletes backups, staging directories
   and the journal, and releases the lock.

Leaving the ``with`` block without a commit (an exception while building,
a failed verification) deletes the staging directories: the destination is
as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Callable

from install_atomic.engine import locking, pending, primitives, recovery, staging, steps
from install_atomic.engine.generations import commit as generation_commit
from install_atomic.engine.generations import layout as generations
from install_atomic.engine.generations import switch as generation_switch
from install_atomic.engine.journal import Journal
from install_atomic.engine.ownership import InstalledDistribution, Ownership, canonical_name, scan
from install_atomic.engine.plan import BackupNamer, Plan, Planner, Step
from install_atomic.engine.primitives import fsync_path, fsync_tree
from install_atomic.errors import (
    CommitError,
    ConflictError,
    InstallAtomicError,
    LockTimeout,
    StagingError,
    UnsafePathError,
)

Logger = Callable[[str], None]

DEFAULT_LOCK_TIMEOUT = locking.DEFAULT_LOCK_TIMEOUT


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass
class CommitResult:
    """What a commit did."""

    plan: Plan
    #: Seconds from the first rename of the commit to the last.
    swap_seconds: float = 0.0
    #: Seconds the whole commit took, lock wait excluded.
    commit_seconds: float = 0.0
    lock_wait_seconds: float = 0.0
    recovered: list[recovery.Recovered] = field(default_factory=list)
    dry_run: bool = False
    #: In a generations environment: the generation this commit built and made current.
    generation: int | None = None


def _advice(exc: OSError, path: str) -> str:
    """What to do after *exc*, which a filesystem call on *path* raised."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"free space on the filesystem of {path} and run it again."
    return "fix the cause and run it again."


class Transaction:
    """One atomic install of one distribution (*project*), or of several (a sequence
    of names), into one environment.

    *primary* is the directory that receives the distributions' metadata
    (``install_lib``); it decides the lock and holds the journal.  Every installed
    version of every named distribution is "old": what the staged trees do not
    replace is removed in the same commit.

    Two optional parameters serve front ends whose primary is not a library
    directory (``install-atomic merge`` journals in a prefix):

    * *metadata_dir*: the library directory inside the destinations whose
      distributions are read and whose metadata entries are ordered after the
      code, and whose top-level entries may be swapped whole (default: *primary*);
    * *distributions*: called under the lock each time the plan is computed;
      more installed distributions (read from manifests, say), "old" when their
      name is one of *project*'s, "others" otherwise.
    """

    def __init__(
        self,
        project: str | Sequence[str],
        primary: str,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        lock_path: str | None = None,
        stops: Sequence[str] = (),
        strict: bool = False,
        dry_run: bool = False,
        durable: bool = True,
        log: Logger = _stderr,
        warn: Logger = _stderr,
        metadata_dir: str | None = None,
        distributions: Callable[[], Iterable[InstalledDistribution]] | None = None,
    ) -> None:
        #: The distributions this transaction installs (or uninstalls).
        self.projects = [project] if isinstance(project, str) else list(project)
        if not self.projects:
            raise ValueError("a transaction needs at least one distribution name")
        #: How messages and the journal name them.
        self.project = ", ".join(self.projects)
        # Real paths: metadata paths (RECORD's '../../../bin/tool') resolve against the
        # directory itself, not against a symlink leading to it.
        self.primary = os.path.realpath(primary)
        self.lock_timeout = lock_timeout
        self.lock_path = lock_path or locking.lock_path_for(self.primary)
        #: Directories removal never climbs to (nor above): the install scheme's.
        self.stops = [os.path.realpath(s) for s in stops]
        self.strict = strict
        self.dry_run = dry_run
        self.durable = durable
        self.log = log
        self.warn = warn
        self.metadata_dir = os.path.realpath(metadata_dir) if metadata_dir else self.primary
        self.distributions = distributions
        self.txid = f"{os.getpid()}-{secrets.token_hex(4)}"
        #: When the work began: pending installs of the same distributions deferred
        #: before it are superseded by this one's commit.
        self.created = time.time()
        #: The pending record this transaction was resumed from (:meth:`resume`).
        self.pending: pending.Record | None = None
        #: The staged trees are already on disk (flushed when the install was deferred).
        self._flushed = False
        self.deferred = False
        self._stages: dict[str, staging.Stage] = {}
        #: Stages made at commit time on filesystems mounted inside a destination.
        self._relocated: dict[str, staging.Stage] = {}
        self.committed = False
        self._journal_kept = False

    # -- staging -----------------------------------------------------------
    def stage(self, destination: str) -> str:
        """Return the staging directory for *destination*, creating both if needed."""
        destination = os.path.realpath(destination)
        if destination not in self._stages:
            if not self.dry_run:
                staging.ensure_destination(destination)
                if destination != self.primary:
                    # Written before the stage exists: whatever instant this process
                    # dies at, recovery of the primary finds every stage it made.
                    staging.record_destination(self.stage(self.primary), destination)
            stage = staging.Stage(destination, private=not self.dry_run)
            self._stages[destination] = stage
            if destination != self.primary and not self.dry_run:
                staging.record_primary(stage.path, self.primary)
        return self._stages[destination].path

    @property
    def roots(self) -> list[tuple[str, str]]:
        """(staging directory, destination) pairs, primary first."""
        items = sorted(self._stages.items(), key=lambda kv: (kv[0] != self.primary, kv[0]))
        return [(st.path, dest) for dest, st in items]

    def final_path(self, staged: str) -> str:
        """Where a path inside a staging directory will be after the commit."""
        staged = os.path.abspath(staged)
        for stage, dest in self.roots:
            if staged == stage or staged.startswith(stage + os.sep):
                return os.path.normpath(os.path.join(dest, os.path.relpath(staged, stage)))
        raise ValueError(f"{staged} is not inside a staging directory of this transaction")

    def staged_files(self) -> Iterator[tuple[str, str]]:
        """(staged path, final path) of every file and symlink staged so far."""
        for stage, dest in self.roots:
            for dirpath, dirnames, filenames in os.walk(stage):
                dirnames[:] = [d for d in dirnames if not d.startswith(staging.PREFIX)]
                for name in filenames + [d for d in dirnames if os.path.islink(
                        os.path.join(dirpath, d))]:
                    if dirpath == stage and name.startswith(staging.PREFIX):
                        continue
                    src = os.path.join(dirpath, name)
                    yield src, os.path.normpath(os.path.join(dest, os.path.relpath(src, stage)))

    # -- commit ------------------------------------------------------------
    @property
    def scheme(self) -> list[str]:
        """The directories this transaction may change: its destinations and the
        install scheme's directories (``stops``).  Paths that installed metadata names
        elsewhere are never acted on."""
        return sorted({self.primary, *self.stops, *self._stages})

    def plan(self, *, preview: bool = False) -> Plan:
        """Compute the plan against the destination as it is now.  A *preview* (what a
        front end looks at before the commit: the plan may change until the lock is
        taken) copies nothing onto filesystems mounted inside a destination and
        warns about nothing."""
        if generations.find(self.primary) is not None:
            return Plan()  # no renames in site-packages: see _commit_generation
        dists = scan(self.primary, self.scheme)
        if self.metadata_dir != self.primary:
            dists += scan(self.metadata_dir, self.scheme)
        if self.distributions is not None:
            dists += list(self.distributions())
        ownership = Ownership(dists, self.projects)
        if not preview:
            self._report_outside(ownership)
        relocate = None if self.dry_run or preview else self._relocate
        planner = Planner(ownership, BackupNamer(self.txid), relocate)
        return planner.plan(self.roots, self.metadata_dir, extra_stops=[self.primary, *self.stops])

    def _relocate(self, staged: str, directory: str) -> str:
        """Copy *staged* into a stage on *directory*'s filesystem; return the copy's path.

        Used when *directory* (inside a destination) is a mount point of its own,
        so that the commit's rename for that entry stays on one filesystem.
        """
        directory = os.path.normpath(directory)
        if directory not in self._relocated:
            self._relocated[directory] = staging.Stage(directory)
        target = os.path.join(self._relocated[directory].path, os.path.basename(staged))
        try:
            if os.path.isdir(staged) and not os.path.islink(staged):
                shutil.copytree(staged, target, symlinks=True)
            else:
                shutil.copy2(staged, target, follow_symlinks=False)
        except OSError as exc:  # shutil.Error too: it lists one error per file
            if isinstance(exc, shutil.Error) and exc.args and exc.args[0]:
                # "[Errno 28] No space left on device: 'src' -> 'dst'" -> the reason only
                text = str(exc.args[0][0][2])
                reason = re.sub(r"^\[Errno \d+\] ", "", text).split(": '", 1)[0]
            else:
                reason = exc.strerror or str(exc)
            raise StagingError(
                f"cannot copy the new version onto the filesystem mounted at {directory}:"
                f" {reason}. Nothing was changed. Free space there and run it again.",
                directory,
            ) from exc
        return target

    def _all_stages(self) -> list[staging.Stage]:
        return [*self._stages.values(), *self._relocated.values()]

    def commit(self) -> CommitResult:
        """Put the staged version in place; see the module docstring for the sequence."""
        layout = generations.find(self.primary)
        if layout is not None:
            return self._commit_generation(layout)
        if self.metadata_dir != self.primary and generations.find(self.metadata_dir):
            raise generations.GenerationsError(
                f"{self.metadata_dir} uses generations, and this install would write into it"
                " file by file. Nothing was changed. Run 'install-atomic flatten' on that"
                " environment first, or install into another prefix.",
                self.metadata_dir,
            )
        if self.dry_run:
            plan = self.plan()
            self._report_conflicts(plan)
            for line in plan.describe():
                self.log(f"would {line}")
            self.log(f"dry run: {len(plan.steps)} renames planned, nothing changed")
            return CommitResult(plan, dry_run=True)
        if self.durable and not self._flushed:
            # The staged trees are private until the renames: make them durable before
            # taking the lock, so that other installers (and uv) do not wait for it.
            try:
                for st in self._all_stages():
                    fsync_tree(st.path)
            except OSError as exc:
                path = exc.filename or self.primary
                raise CommitError(
                    f"could not flush the staged files to disk: {exc.strerror} ({path})."
                    f" Nothing was changed; {_advice(exc, path)}",
                    path,
                    rolled_back=True,
                ) from exc
        synced = set(self._relocated)
        waited = time.monotonic()
        with locking.hold(self.lock_path, self.lock_timeout):
            started = time.monotonic()
            recovered = self._recover(waited)
            plan = self.plan()
            self._report_conflicts(plan)
            journal = Journal(
                txid=self.txid,
                project=self.project,
                primary=self.primary,
                lock_path=self.lock_path,
                stages=[st.path for st in self._all_stages()],
                steps=plan.steps,
                roots=self.scheme,
            )
            try:
                if self.durable:  # copies made under the lock onto mounted filesystems
                    for directory, st in self._relocated.items():
                        if directory not in synced:
                            fsync_tree(st.path)
                journal.write()
                if self.pending is not None:  # the journal now protects the stages
                    self.pending.remove()
            except OSError as exc:
                try:
                    journal.remove()
                except OSError:
                    self._journal_kept = bool(journal.path) and os.path.lexists(journal.path)
                path = exc.filename or self.primary
                raise CommitError(
                    f"could not prepare the commit: {exc.strerror} ({path}). Nothing was"
                    f" changed; {_advice(exc, path)}",
                    path,
                    rolled_back=True,
                ) from exc
            swap_seconds = self._run_steps(plan, journal)
            self.committed = True
            try:
                # Always, even with --no-fsync (a few directories): the renames are on
                # disk before any old entry is deleted.
                for parent in sorted({os.path.dirname(s.dest) for s in plan.steps}):
                    fsync_path(parent)
                # Before anything is deleted: a recovery from here on rolls forward.
                journal.mark_committed()
                # The stages stay locked until their journal is gone: a recovery that
                # sees this journal meanwhile knows its installer is alive.
                recovery.cleanup(journal)
                for st in self._all_stages():
                    st.release()
            except OSError as exc:
                for st in self._all_stages():
                    st.release()  # the journal is kept: this installer lets recovery in
                path = exc.filename or journal.path
                raise InstallAtomicError(
                    f"{self.project} is installed, but cleaning up failed: {exc.strerror}"
                    f" ({path}). The journal {journal.path} is kept; run 'python -m"
                    f" install_atomic recover {self.primary}' to finish.",
                    path,
                ) from exc
            try:
                self._supersede()
            except OSError as exc:  # the install is done: only a leftover remains
                self.warn(f"install_atomic: warning: could not drop an older pending install"
                          f" of {self.project}: {exc}. Run 'install-atomic discard-pending"
                          f" {self.primary}'.")
            result = CommitResult(
                plan,
                swap_seconds=swap_seconds,
                commit_seconds=time.monotonic() - started,
                lock_wait_seconds=started - waited,
                recovered=recovered,
            )
        return result

    def _commit_generation(self, layout: generations.Layout) -> CommitResult:
        """The commit in a generations environment (:mod:`.generations.commit`): one
        new generation, one rename of ``current``."""
        trees = {dest: st.path for dest, st in self._stages.items()}
        if self.dry_run:
            changes = generation_commit.preview(layout, trees, self.projects)
            self.log(f"would build a generation: {generation_commit.describe(changes)}")
            return CommitResult(Plan(), dry_run=True)
        if self.durable and not self._flushed:
            for st in self._all_stages():
                fsync_tree(st.path)
        waited = time.monotonic()
        with locking.hold(self.lock_path, self.lock_timeout):
            started = time.monotonic()
            recovered = self._recover(waited)
            for line in generation_switch.recover(layout, self.warn):
                self.warn(f"install_atomic: {line}")
            before = generations.current_number(layout)
            try:
                applied = generation_commit.apply(
                    layout, trees, self.projects, durable=self.durable, warn=self.warn,
                    pending_path=self.pending.path if self.pending is not None else None)
            except OSError as exc:
                switched = generations.current_number(layout) != before
                path = exc.filename or layout.root
                if switched:
                    raise InstallAtomicError(
                        f"{self.project} is installed (generation"
                        f" {generations.current_number(layout)}), but finishing failed:"
                        f" {exc.strerror} ({path}). Run 'python -m install_atomic recover"
                        f" {self.primary}'.", path) from exc
                raise CommitError(
                    f"could not build the new generation: {exc.strerror} ({path})."
                    f" Generation {before} stays current and nothing else changed;"
                    f" {_advice(exc, path)}", path, rolled_back=True) from exc
            self.committed = True
            for st in self._all_stages():
                st.remove()
            try:
                self._supersede()
            except OSError as exc:
                self.warn(f"install_atomic: warning: could not drop an older pending install"
                          f" of {self.project}: {exc}.")
            return CommitResult(Plan(), commit_seconds=time.monotonic() - started,
                                lock_wait_seconds=started - waited, recovered=recovered,
                                generation=applied.number)

    # -- deferred commits -----------------------------------------------------
    def defer(
        self,
        changes: Sequence[pending.Change] = (),
        under_lock: Callable[[pending.Record], None] | None = None,
    ) -> pending.Record:
        """Leave the staged work pending instead of committing it; return its record.

        The staged trees are flushed to disk (unless ``durable`` is off), then,
        under the destination's lock, the record
        (:mod:`install_atomic.engine.pending`) is written and *under_lock* is
        called with it (a front end installs its start-up hook there).  The
        staging directories stay locked by this process until :meth:`release`
        or its exit: no one commits the record before then.
        """
        if self.dry_run:
            raise ValueError("a dry run cannot be deferred")
        if self.durable:
            for st in self._all_stages():
                fsync_tree(st.path)
        record = pending.Record(
            txid=self.txid,
            projects=list(self.projects),
            primary=self.primary,
            stages={dest: st.path for dest, st in self._stages.items()},
            stops=list(self.stops),
            metadata_dir=self.metadata_dir,
            strict=self.strict,
            durable=self.durable,
            changes=list(changes),
            created=self.created,
        )
        with locking.hold(self.lock_path, self.lock_timeout):
            try:
                record.write()
                if under_lock is not None:
                    under_lock(record)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    record.remove()
                path = exc.filename or self.primary
                raise CommitError(
                    f"could not record the pending install of {self.project}:"
                    f" {exc.strerror} ({path}). Nothing was changed; fix the cause and run"
                    " the install again.",
                    path,
                    rolled_back=True,
                ) from exc
        self.deferred = True
        return record

    def release(self) -> None:
        """Unlock the staging directories of a deferred transaction: from now on any
        process may commit it."""
        for st in self._all_stages():
            st.release()

    @classmethod
    def resume(
        cls,
        record: pending.Record,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        log: Logger = _stderr,
        warn: Logger = _stderr,
    ) -> Transaction | None:
        """A transaction that commits the pending *record*; None while the process
        that deferred it (or a child that inherited its descriptors) holds its
        staging directories, or another process is committing it.

        Its :meth:`commit` plans against the destination as it is then, and
        removes the record once its journal is written.
        """
        txn = cls(
            record.projects,
            record.primary,
            lock_timeout=lock_timeout,
            lock_path=locking.lock_path_for(record.primary, detached=True),
            stops=record.stops,
            strict=record.strict,
            durable=record.durable,
            log=log,
            warn=warn,
            metadata_dir=record.metadata_dir or None,
        )
        txn.created = record.created
        txn.pending = record
        txn._flushed = True
        for dest, path in sorted(record.stages.items()):
            stage = staging.Stage.adopt(path, dest)
            if stage is None:
                txn.release()
                return None
            txn._stages[dest] = stage
        return txn

    def _supersede(self) -> None:
        """Under the lock, after a commit: drop the pending installs, deferred before
        this transaction began, of any distribution it installed.  Committed later,
        they would bring back older versions."""
        names = {canonical_name(p) for p in self.projects}
        records, _ = pending.load_all(self.primary)
        for record in records:
            if record.created >= self.created or not names & {
                    canonical_name(p) for p in record.projects}:
                continue
            for stage in record.stages.values():
                if os.path.lexists(stage) and staging.distrust_stage(stage) is None:
                    staging.remove_tree(stage)
            record.remove()
            self.warn(f"install_atomic: dropped the pending install of {record.description}"
                      f" (deferred by process {record.pid}): {self.project} was installed"
                      " after it")

    def _recover(self, waited: float) -> list[recovery.Recovered]:
        """Under the lock: finish what crashed installers left in our destinations, and
        wait for a live transaction found there (one that took another lock, or whose
        lock file was deleted) to end, within the lock timeout."""
        while True:
            found: list[recovery.Recovered] = []
            for dest in [self.primary, *sorted({d for _, d in self.roots} - {self.primary})]:
                found += recovery.recover_locked(dest, self.lock_path)
            live = [r for r in found if r.outcome == "in progress, left alone"]
            for item in found:
                if item.outcome == "removed abandoned staging directory":
                    self.warn(f"install_atomic: removed an abandoned staging directory"
                              f" ({item.journal})")
                elif item.outcome == "not trusted, left alone":
                    self.warn(f"install_atomic: warning: {item.reason}")
                elif item.outcome not in recovery.LEFT_ALONE:
                    self.warn(f"install_atomic: recovered an interrupted install of"
                              f" {item.project}: {item.outcome} ({item.journal})")
            if not live:
                return found
            elapsed = time.monotonic() - waited
            if 0 <= self.lock_timeout <= elapsed:
                raise LockTimeout(
                    f"timed out after {elapsed:.1f}s waiting for the install of"
                    f" {live[0].project} ({live[0].journal}) to finish: {live[0].reason}."
                    " Wait for it, raise --lock-timeout, or, if that process is hung, stop"
                    " it and run 'python -m install_atomic recover'.",
                    live[0].journal,
                )
            time.sleep(0.1)

    def _report_outside(self, ownership: Ownership) -> None:
        """Warn about (or, with ``strict``, refuse) paths that the project's installed
        metadata names outside the scheme: they are never removed."""
        for dist in ownership.old:
            for written in dist.outside:
                message = (
                    f"{dist.metadata_path} names {written!r}, which lies outside the install"
                    f" scheme ({', '.join(self.scheme)})"
                )
                if self.strict:
                    raise UnsafePathError(
                        f"{message}; refusing (--strict). Nothing was changed. Remove that"
                        " line from the metadata, or install without --strict to leave the"
                        " path alone.",
                        dist.metadata_path,
                    )
                self.warn(f"warning: {message}; it is left alone, never removed")

    def _report_conflicts(self, plan: Plan) -> None:
        for conflict in plan.conflicts:
            owners = ", ".join(sorted(set(conflict.owners)))
            message = (f"{conflict.path} is shipped by {self.project} but belongs to {owners}")
            if self.strict:
                raise ConflictError(
                    f"{message}; refusing (--strict). Nothing was changed. Uninstall {owners}"
                    " or install without --strict to replace the file as pip would.",
                    conflict.path,
                )
            self.warn(f"warning: {message}; replacing it (use --strict to refuse)")

    def _run_steps(self, plan: Plan, journal: Journal) -> float:
        first = time.perf_counter()
        done: list[Step] = []
        for step in plan.steps:
            try:
                steps.apply(step)
            except BaseException as exc:  # OSError, and Ctrl-C between two renames
                done.append(step)
                self._rollback(done, journal, exc, step)
                raise
            done.append(step)
        seconds = time.perf_counter() - first
        # After the last rename, not between two: the old directories stay where the
        # exchanges put them until the cleanup, and a later scan only catches more.
        for step in plan.steps:
            listing = plan.listings.get(step.dest)
            if listing is not None:
                self._return_strays(step, listing)
        return seconds

    def _return_strays(self, step: Step, listing: frozenset[str]) -> None:
        """Move back what another process wrote into a directory while it was swapped.

        *listing* is what the old directory held when the plan was made.  A tool
        that takes no lock (pip) may have written into it since; once the renames
        are done (the old directory is then at its backup name until the cleanup),
        whatever is in the old directory and not in *listing* is moved into the
        new one (bytecode caches aside), so it is not deleted with the old
        version.  What such a tool writes into the old directory after this
        scan, through a descriptor or path it resolved before the exchange, is
        still lost: see the guarantees page.
        """
        old_at = steps.locate(step, step.old_id)
        if old_at is None or old_at == step.dest:
            return
        for dirpath, dirnames, filenames in os.walk(old_at):
            rel_dir = os.path.relpath(dirpath, old_at)
            descend = []
            for name in sorted(dirnames) + sorted(filenames):
                rel = os.path.normpath(os.path.join(rel_dir, name))
                is_dir = name in dirnames and not os.path.islink(os.path.join(dirpath, name))
                if rel in listing or name == "__pycache__" or name.endswith(".pyc"):
                    if is_dir:
                        descend.append(name)
                    continue
                target = os.path.join(step.dest, rel)
                try:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    primitives.rename_noreplace(os.path.join(dirpath, name), target)
                except OSError as exc:
                    self.warn(f"install_atomic: warning: {os.path.join(step.dest, rel)} was"
                              f" written by another process during the commit and could not"
                              f" be kept ({exc.strerror}); reinstall what wrote it")
                else:
                    self.warn(f"install_atomic: {target} was written by another process"
                              " during the commit; kept in the new version")
            dirnames[:] = descend

    def _rollback(
        self, done: list[Step], journal: Journal, exc: BaseException, failed: Step
    ) -> None:
        """Undo *done* in reverse after *exc*, then drop the staging and the journal.

        For an OSError, raises :class:`CommitError`; for anything else (an interrupt)
        returns, and the caller re-raises it.  If undoing fails, the staging
        directories and the journal are kept for ``recover``.
        """
        try:
            for step in reversed(done):
                steps.undo(step)
            recovery.cleanup(journal)
            for st in self._all_stages():
                st.release()
        except BaseException as undo_exc:
            self._journal_kept = True
            if not isinstance(exc, OSError):
                return
            raise CommitError(
                f"installing {failed.dest} failed ({exc.strerror}), and undoing the install"
                f" failed too ({undo_exc}). The journal {journal.path} is kept: fix the cause"
                f" and run 'python -m install_atomic recover {self.primary}'.",
                failed.dest,
                rolled_back=False,
            ) from exc
        if not isinstance(exc, OSError):
            return
        path = exc.filename or failed.dest
        advice = _advice(exc, path)
        if exc.errno == errno.EXDEV:
            advice = (
                "the directory cannot be renamed in place: it most likely comes from a"
                " read-only image layer (overlayfs), where no rename of it, atomic or not, is"
                " possible. Install into a fresh virtual environment or rebuild the image layer"
                " instead."
            )
        raise CommitError(
            f"could not {failed.action} {failed.dest}: {exc.strerror} ({path}). The previous"
            f" version was restored and nothing else changed; {advice}",
            path,
            rolled_back=True,
        ) from exc

    def abort(self) -> None:
        """Drop every staging directory.  The destination is untouched."""
        if self._journal_kept:  # recovery needs what the staging directories hold
            for st in self._all_stages():
                st.release()
            return
        for st in self._all_stages():
            st.remove()
        self._stages.clear()
        self._relocated.clear()

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed and not self.deferred:
            try:
                self.abort()
            except OSError as cleanup_exc:
                if exc is None:
                    raise InstallAtomicError(
                        f"could not remove a staging directory: {cleanup_exc}", None
                    ) from cleanup_exc
