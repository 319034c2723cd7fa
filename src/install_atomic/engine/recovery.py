"""Finishing interrupted transactions.

A journal left in a destination means its installer stopped between the
journal's write and the end of its cleanup.  Recovery decides by one rule:

* **every step done** (the last rename of the commit happened): roll
  **forward**, that is, delete the backups and staging directories;
* otherwise roll **back**: undo the steps in reverse, so the old version is
  in place exactly, then delete the staging directories.

Either way code and metadata agree afterwards and nothing named
``.install-atomic*`` is left.  Staging directories without a journal (an
installer killed while building) are removed when their owner lock is free.

What recovery never touches:

* a **live** transaction.  The caller holds the destination's lock; a journal
  names the lock its installer took (``--root`` installs lock a file outside
  the tree), and recovery takes that one too, without waiting.  A journal
  whose lock is held, or whose staging directories are still locked by their
  owner (which survives a deleted ``.lock`` file), is left alone;
* anything it does not **trust** (:mod:`install_atomic.engine.trust`): a
  journal, staging directory or owner file another user could have planted or
  changed, or a journal naming a path outside its own directories.  ``status``
  reports those with the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from install_atomic.engine import journal as journal_mod
from install_atomic.engine import locking, pending, staging, steps, trust
from install_atomic.engine.journal import Journal
from install_atomic.engine.plan import PRIVATE_PREFIX
from install_atomic.engine.primitives import flock_nowait, fsync_path
from install_atomic.errors import RecoveryError, UntrustedError

Outcome = Literal[
    "rolled back",
    "rolled forward",
    "removed abandoned staging directory",
    "in progress, left alone",
    "not trusted, left alone",
    "removed stale pending install",
]
#: Outcomes that changed nothing.
LEFT_ALONE: frozenset[Outcome] = frozenset({"in progress, left alone", "not trusted, left alone"})


@dataclass
class Recovered:
    journal: str
    project: str
    outcome: Outcome
    #: Why it was left alone (for the two outcomes in :data:`LEFT_ALONE`).
    reason: str = ""


def resolve(journal: Journal) -> Outcome:
    """Roll *journal*'s transaction back or forward and remove every leftover."""
    outcome: Outcome
    # Once committed, the cleanup may have deleted part of a backup: never undo then.
    if journal.committed or all(steps.is_done(s) for s in journal.steps):
        outcome = "rolled forward"
    else:
        for step in reversed(journal.steps):
            try:
                steps.undo(step)
            except OSError as exc:
                raise RecoveryError(
                    f"cannot roll back the interrupted install of {journal.project}: restoring"
                    f" {step.dest} failed ({exc}). Nothing else was changed; the journal"
                    f" {journal.path} is kept. Fix the cause (permissions, space) and run"
                    " 'python -m install_atomic recover' again.",
                    step.dest,
                ) from exc
        outcome = "rolled back"
    try:
        cleanup(journal)
    except OSError as exc:
        raise RecoveryError(
            f"the interrupted install of {journal.project} was {outcome}, but removing its"
            f" leftovers failed: {exc}. The journal {journal.path} is kept; fix the cause and"
            " run 'python -m install_atomic recover' again.",
            exc.filename or journal.path,
        ) from exc
    return outcome


def cleanup(journal: Journal) -> None:
    """Delete backups and staging directories, fsync what changed, then the journal."""
    parents = set()
    for step in journal.steps:
        for spare in (step.backup, step.aside):
            if spare and os.path.lexists(spare):
                staging.remove_tree(spare)
        parents.add(os.path.dirname(step.dest))
    for stage in journal.stages:
        # A stage another user swapped in under the journaled name is not ours.
        if not os.path.lexists(stage) or staging.distrust_stage(stage) is None:
            staging.remove_tree(stage)
        parents.add(os.path.dirname(stage))
    for parent in sorted(parents):
        if os.path.isdir(parent):
            fsync_path(parent)
    journal.remove()


def stray_stages(destination: str) -> list[str]:
    """Staging directories whose installer is gone: in *destination*, and in every
    other destination such a dead installer recorded (its scripts, data, headers)."""
    found = _dead_stages_in(destination)
    others: list[str] = []
    for stage in found:
        for other in staging.recorded_destinations(stage):
            others.extend(s for s in _dead_stages_in(other) if s not in found + others)
    return found + others


def _dead_stages_in(destination: str) -> list[str]:
    out = []
    for path in _private_dirs(destination):
        if (
            staging.distrust_stage(path) is None
            and not _journaled(path, destination)
            and not _pending(path, destination)
            and not staging.is_live(path)
        ):
            out.append(path)
    return out


def _private_dirs(destination: str) -> list[str]:
    """Staging directories in *destination*: private names that are no journal or
    backup (backups and journals belong to a journal: only resolving it may touch them)."""
    try:
        names = os.listdir(destination)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        os.path.join(destination, name)
        for name in sorted(names)
        if name.startswith(staging.PREFIX)
        and not name.endswith((journal_mod.SUFFIX, ".bak", ".bak-old", ".tmp"))
        and os.path.isdir(os.path.join(destination, name))
        and not os.path.islink(os.path.join(destination, name))
    ]


def _journaled(stage: str, destination: str) -> bool:
    """True if a trusted journal (in *destination*, or in the primary destination the
    stage names) lists *stage*: then only resolving that journal may remove it, since
    after an exchange it holds the previous version."""
    places = {destination}
    primary = staging.recorded_primary(stage)
    if primary:
        places.add(primary)
    for place in places:
        for path in journal_mod.find(place):
            try:
                if stage in journal_mod.load(path).stages:
                    return True
            except UntrustedError:
                continue  # not ours: it protects nothing, and is never obeyed
            except (OSError, ValueError, KeyError, TypeError):
                return True  # ours but unreadable: keep everything until it is dealt with
    return False


def _pending(stage: str, destination: str) -> bool:
    """True if a trusted pending record (in *destination*, or in the primary destination
    the stage names) lists *stage*: it waits for its commit."""
    places = {destination}
    primary = staging.recorded_primary(stage)
    if primary:
        places.add(primary)
    return any(stage in pending.listed_stages(place) for place in places)


def _live_reason(journal: Journal, held: str | None) -> tuple[str, int | None]:
    """Why *journal*'s transaction is still running ("" if it is not), and the lock fd
    taken on its behalf (the caller closes it once done with the journal)."""
    for stage in journal.stages:
        why = _owner_holds(stage)
        if why:
            return why, None
    if held is not None and os.path.realpath(journal.lock_path) == os.path.realpath(held):
        return "", None
    fd = locking.try_lock(journal.lock_path)
    if fd is None:
        return f"its lock {journal.lock_path} is held", None
    return "", fd


def _owner_holds(stage: str) -> str:
    """Why the installer of a journaled *stage* may still be running ("" if it is not).

    Its owner file was made (and locked) before the journal was written, so only
    the lock counts here: a missing owner file means its installer was already
    cleaning up, whatever the pid in the stage's name.
    """
    try:
        fd = trust.open_trusted(os.path.join(stage, staging.OWNER), "file")
    except (FileNotFoundError, NotADirectoryError):
        return ""
    except OSError as exc:
        return f"the owner file of its staging directory {stage} cannot be judged: {exc}"
    try:
        if not flock_nowait(fd):
            return f"its staging directory {stage} is still locked by its installer"
    finally:
        os.close(fd)
    return ""


def _load_for_recovery(path: str) -> Journal | Recovered:
    try:
        return journal_mod.load(path)
    except UntrustedError as exc:
        return Recovered(path, "(unknown)", "not trusted, left alone", str(exc))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RecoveryError(
            f"cannot read the journal {path}: {exc}. Nothing was changed.", path
        ) from exc


def recover_locked(destination: str, held: str | None = None) -> list[Recovered]:
    """Recover every interrupted transaction in *destination*.

    The caller holds a lock of that destination: *held* is its path (default:
    the destination's default lock).  Live and untrusted transactions and
    staging directories are reported with an outcome in :data:`LEFT_ALONE`.
    """
    destination = os.path.realpath(destination)
    held = held if held is not None else locking.lock_path_for(destination)
    done = []
    reported: set[str] = set()  # untrusted stages already named through their journal
    for path in journal_mod.find(destination):
        loaded = _load_for_recovery(path)
        if isinstance(loaded, Recovered):
            done.append(loaded)
            continue
        tampered = {
            stage: why
            for stage in loaded.stages
            if os.path.lexists(stage) and (why := staging.distrust_stage(stage))
        }
        if tampered:  # a stage of ours that someone else could have swapped or changed
            stage, why = next(iter(tampered.items()))
            done.append(Recovered(path, loaded.project, "not trusted, left alone",
                                  f"{stage} is not trusted: {why}"))
            reported.update(tampered)
            continue
        reason, fd = _live_reason(loaded, held)
        if reason:
            done.append(Recovered(path, loaded.project, "in progress, left alone", reason))
            continue
        try:
            done.append(Recovered(path, loaded.project, resolve(loaded)))
        finally:
            if fd is not None and fd >= 0:
                os.close(fd)
    for record in pending.load_all(destination)[0]:
        # Its stages are gone (a rolled-back commit): it can never be committed.
        if record.stale():
            try:
                record.remove()
            except OSError as exc:
                raise RecoveryError(f"cannot remove {record.path}: {exc}.", record.path) from exc
            done.append(Recovered(record.path, ", ".join(record.projects),
                                  "removed stale pending install"))
    try:
        for stage in stray_stages(destination):
            staging.remove_tree(stage)
            done.append(Recovered(stage, "(unknown)", "removed abandoned staging directory"))
        for stage in _private_dirs(destination):
            why = staging.distrust_stage(stage)
            if why is not None and stage not in reported:
                done.append(Recovered(stage, "(unknown)", "not trusted, left alone", why))
        for name in os.listdir(destination) if os.path.isdir(destination) else ():
            path = os.path.join(destination, name)
            if (
                name.startswith(PRIVATE_PREFIX)
                and name.endswith((journal_mod.SUFFIX + ".tmp", pending.SUFFIX + ".tmp"))
                and trust.distrust_path(path, "file") is None
            ):
                os.unlink(path)
    except OSError as exc:
        raise RecoveryError(
            f"cannot remove leftovers in {destination}: {exc}.", exc.filename or destination
        ) from exc
    return done


def recover(
    destination: str, timeout: float = locking.DEFAULT_LOCK_TIMEOUT, *, detached: bool = False
) -> list[Recovered]:
    """Take *destination*'s lock and recover what was interrupted there.  *detached*
    takes the lock the front ends take (:func:`~install_atomic.engine.locking.lock_path_for`),
    so that a recovery waits for an install into the same directory; either way, a
    journal whose own lock is held is left alone."""
    destination = os.path.realpath(destination)
    lock = locking.lock_path_for(destination, detached=detached)
    with locking.hold(lock, timeout):
        return recover_locked(destination, lock)


@dataclass
class Status:
    journal: str
    project: str
    pid: int
    steps: int
    done: int
    live: bool


def status(destination: str) -> list[Status]:
    """In-flight or interrupted transactions in *destination*; changes nothing.

    Journals that are not trusted are not listed here: see :func:`untrusted`.
    """
    destination = os.path.realpath(destination)
    out = []
    for path in journal_mod.find(destination):
        try:
            journal = journal_mod.load(path)
        except UntrustedError:
            continue
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RecoveryError(
                f"cannot read the journal {path}: {exc}. Move it aside only if you know the"
                " install it describes is complete; otherwise report it.",
                path,
            ) from exc
        done = sum(1 for s in journal.steps if steps.is_done(s))
        # Never takes the journal's lock, even for an instant: an installer trying it
        # with --lock-timeout 0 must not fail because someone ran status.
        live = any(_owner_holds(stage) for stage in journal.stages) or bool(
            locking.lock_holders(journal.lock_path))
        out.append(Status(path, journal.project, journal.pid, len(journal.steps), done, live))
    return out


@dataclass
class PendingStatus:
    record: pending.Record
    #: The pid of the live process that holds its staging directories, if any.
    held_by: int | None


def pending_status(destination: str) -> list[PendingStatus]:
    """Pending (deferred) installs in *destination*, oldest first; changes nothing."""
    out = []
    for record in pending.load_all(os.path.realpath(destination))[0]:
        holder = None
        for stage in record.stages.values():
            if _owner_holds(stage):
                holder = staging.creator_pid(stage)
                break
        out.append(PendingStatus(record, holder))
    return out


def untrusted(destination: str) -> list[tuple[str, str]]:
    """Journals and staging directories in *destination* that install-atomic will not act
    on, each with the reason; changes nothing."""
    destination = os.path.realpath(destination)
    out = []
    for path in journal_mod.find(destination):
        try:
            journal_mod.load(path)
        except UntrustedError as exc:
            out.append((path, str(exc)))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # reported by status()
    for stage in _private_dirs(destination):
        why = staging.distrust_stage(stage)
        if why is not None:
            out.append((stage, why))
    out.extend(pending.load_all(destination)[1])
    return out
