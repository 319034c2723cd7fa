"""Doing and undoing one step of a plan.

:func:`apply` makes the step's rename.  :func:`is_done` and :func:`undo` look
only at the filesystem (inode identities recorded in the step), so they work
the same in the installer that failed and in a later ``recover`` after a
crash at any instant: the entries of a step are always at one of ``dest``,
``source`` or ``backup``.
"""

from __future__ import annotations

import os
import stat

from install_atomic.engine import primitives
from install_atomic.engine.plan import Step


def _id(path: str) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def apply(step: Step) -> None:
    """Make the step's rename(s).  Each is atomic; see :mod:`install_atomic.engine.primitives`."""
    if step.action == "add":
        primitives.rename_noreplace(step.source, step.dest)
    elif (
        step.action == "swap"
        and primitives.is_real_dir(step.source)
        and primitives.is_real_dir(step.dest)
    ):
        # Bring the new directory next to the old one first: an exchange of two
        # entries of one directory never needs write access to the old directory
        # itself (moving a directory to another parent rewrites its '..').
        primitives.rename_noreplace(step.source, step.backup)
        if not primitives.exchange(step.backup, step.dest):
            primitives.rename_noreplace(step.dest, step.aside)
            os.rename(step.backup, step.dest)
    elif step.action == "swap":
        primitives.swap_into(step.source, step.dest, step.backup)
    else:
        primitives.rename_noreplace(step.dest, step.backup)


def is_done(step: Step) -> bool:
    """True when the step's final state is on disk."""
    if step.action == "remove":
        return _id(step.dest) != step.old_id
    return _id(step.dest) == step.new_id


def locate(step: Step, ident: tuple[int, int] | None) -> str | None:
    """Which of the step's paths holds the entry *ident* now (None: none of them)."""
    if ident is None:
        return None
    for path in (step.dest, step.source, step.backup, step.aside):
        if path and _id(path) == ident:
            return path
    return None


def _free_spot(step: Step) -> str:
    for path in (step.backup, step.aside, step.source):
        if path and not os.path.lexists(path):
            return path
    raise FileExistsError(f"no free place to move {step.dest} aside")


def undo(step: Step) -> None:
    """Put the old entry (or nothing, for an add) back at ``dest``.

    The new entry goes back to a private place and is deleted with the
    staging directory.  Idempotent: undoing an undone step does nothing.
    """
    dest_id = _id(step.dest)
    if step.old_id is None:  # an add: dest must be empty again
        if dest_id is not None and dest_id == step.new_id:
            os.rename(step.dest, _free_spot(step))
        return
    if dest_id == step.old_id:
        return  # old entry in place (also: a file's backup link made, replace not yet)
    old_at = locate(step, step.old_id)
    if old_at is None:
        raise FileNotFoundError(
            f"the previous version of {step.dest} is neither in place nor at {step.backup}"
        )
    if dest_id is None:
        primitives.rename_noreplace(old_at, step.dest)
        return
    if primitives.exchange(old_at, step.dest):
        return
    if not stat.S_ISDIR(os.lstat(old_at).st_mode) and not os.path.isdir(step.dest):
        os.replace(old_at, step.dest)
        return
    os.rename(step.dest, _free_spot(step))
    os.rename(old_at, step.dest)
