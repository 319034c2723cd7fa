"""Finishing interrupted transactions.

A journal left in a destination means its installer stopped between the
journal's write and the end of its cleanup.  Under the destination lock (so
never while that installer still runs) recovery decides by one rule:

* **every step done** (the last rename of the commit happened): roll
  **forward**, that is, delete the backups and staging directories;
* otherwise roll **back**: undo the steps in reverse, so the old version is
  in place exactly, then delete the staging directories.

Either way code and metadata agree afterwards and nothing named
``.install-atomic*`` is left.  Staging directories without a journal (an
installer killed while building) are removed when their owner lock is free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from install_atomic.engine import journal as journal_mod
from install_atomic.engine import locking, staging, steps
from install_atomic.engine.journal import Journal
from install_atomic.engine.plan import PRIVATE_PREFIX
from install_atomic.engine.primitives import fsync_path
from install_atomic.errors import RecoveryError

Outcome = Literal["rolled back", "rolled forward", "removed abandoned staging directory"]


@dataclass
class Recovered:
    journal: str
    project: str
    outcome: Outcome


def resolve(journal: Journal) -> Outcome:
    """Roll *journal*'s transaction back or forward and remove every leftover."""
    outcome: Outcome
    if all(steps.is_done(s) for s in journal.steps):
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
    try:
        names = os.listdir(destination)
    except FileNotFoundError:
        return []
    out = []
    for name in sorted(names):
        path = os.path.join(destination, name)
        if (
            name.startswith(staging.PREFIX)
            # Backups and journals belong to a journal: only resolving it may touch them.
            and not name.endswith((journal_mod.SUFFIX, ".bak", ".bak-old", ".tmp"))
            and os.path.isdir(path)
            and not os.path.islink(path)
            and not _journaled(path, destination)
            and not staging.is_live(path)
        ):
            out.append(path)
    return out


def _journaled(stage: str, destination: str) -> bool:
    """True if a journal (in *destination*, or in the primary destination the stage
    names) lists *stage*: then only resolving that journal may remove it, since after
    an exchange it holds the previous version."""
    places = {destination}
    primary = staging.recorded_primary(stage)
    if primary:
        places.add(primary)
    for place in places:
        for path in journal_mod.find(place):
            try:
                if stage in journal_mod.load(path).stages:
                    return True
            except (OSError, ValueError, KeyError):
                return True  # unreadable: keep everything until it is dealt with
    return False


def recover_locked(destination: str) -> list[Recovered]:
    """Recover every interrupted transaction in *destination*; the caller holds its lock."""
    done = []
    for path in journal_mod.find(destination):
        if path.endswith(".tmp"):
            os.unlink(path)
            continue
        try:
            journal = journal_mod.load(path)
        except (OSError, ValueError, KeyError) as exc:
            raise RecoveryError(
                f"cannot read the journal {path}: {exc}. Nothing was changed.", path
            ) from exc
        done.append(Recovered(path, journal.project, resolve(journal)))
    try:
        for stage in stray_stages(destination):
            staging.remove_tree(stage)
            done.append(Recovered(stage, "(unknown)", "removed abandoned staging directory"))
        for name in os.listdir(destination) if os.path.isdir(destination) else ():
            if name.startswith(PRIVATE_PREFIX) and name.endswith(journal_mod.SUFFIX + ".tmp"):
                os.unlink(os.path.join(destination, name))
    except OSError as exc:
        raise RecoveryError(
            f"cannot remove leftovers in {destination}: {exc}.", exc.filename or destination
        ) from exc
    return done


def recover(destination: str, timeout: float = 60.0) -> list[Recovered]:
    """Take *destination*'s lock and recover what was interrupted there."""
    destination = os.path.abspath(destination)
    with locking.hold(locking.lock_path_for(destination), timeout):
        return recover_locked(destination)


@dataclass
class Status:
    journal: str
    project: str
    pid: int
    steps: int
    done: int
    live: bool


def status(destination: str) -> list[Status]:
    """In-flight or interrupted transactions in *destination*; changes nothing."""
    destination = os.path.abspath(destination)
    holders = locking.lock_holders(locking.lock_path_for(destination))
    out = []
    for path in journal_mod.find(destination):
        if path.endswith(".tmp"):
            continue
        try:
            journal = journal_mod.load(path)
        except (OSError, ValueError, KeyError) as exc:
            raise RecoveryError(
                f"cannot read the journal {path}: {exc}. Move it aside only if you know the"
                " install it describes is complete; otherwise report it.",
                path,
            ) from exc
        done = sum(1 for s in journal.steps if steps.is_done(s))
        out.append(
            Status(path, journal.project, journal.pid, len(journal.steps), done,
                   journal.pid in holders)
        )
    return out
