"""Committing and dropping the pending installs of a destination.

:func:`commit_all` is what ``install-atomic commit-pending``, the start-up
hook (:mod:`.hook`) and the next install into a destination call: under the
destination's lock, each pending install, oldest first, is resumed and
committed (:meth:`~install_atomic.engine.transaction.Transaction.resume`).
One whose staging directories are still held by the process that deferred it
(the Python API holds them while that process, which has the old version
loaded, runs) is left pending.  Interrupted transactions of the destination
(a commit killed at an earlier start) are recovered first.  Once nothing is
pending, the hook files go.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from install_atomic.engine import locking, pending, recovery, staging
from install_atomic.engine.transaction import DEFAULT_LOCK_TIMEOUT, CommitResult, Transaction
from install_atomic.errors import InstallAtomicError
from install_atomic.frontends.deferred import hook

Logger = Callable[[str], None]
Outcome = Literal["committed", "held", "failed", "stale", "discarded"]


def _silent(_message: str) -> None:
    return None


@dataclass
class Result:
    record: pending.Record
    outcome: Outcome
    #: For "held": the pid holding it; for "failed": the reason.
    detail: str = ""
    commit: CommitResult | None = None


def commit_all(
    destination: str,
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    log: Logger = _silent,
    warn: Logger = _silent,
    hold_hook: bool = True,
) -> list[Result]:
    """Commit every pending install in *destination* that no live process holds.

    Raises :class:`~install_atomic.errors.LockTimeout` when the lock is not
    free within *lock_timeout* (0: never wait).  A failing commit does not stop
    the others: its reason is kept in its record and returned.  With
    *hold_hook* (all but the start-up hook, which holds it already), the hook
    file's ``flock`` is held during the commits: interpreters starting
    meanwhile wait for them (:mod:`.hook`), so they see the new versions whole.
    """
    destination = os.path.realpath(destination)
    hooked = any(os.path.exists(p) for p in hook.hook_paths(destination))
    if not pending.find(destination) and not hooked:
        return []
    results: list[Result] = []
    lock = locking.lock_path_for(destination, detached=True)
    with locking.hold(lock, lock_timeout), _holding_hook(destination, hold_hook):
        # A commit killed half-way (at an earlier start, say) left a journal and no
        # record: finish it first, so that the environment holds one version.
        for item in recovery.recover_locked(destination, lock):
            if item.outcome not in recovery.LEFT_ALONE:
                warn(f"install_atomic: recovered an interrupted install of {item.project}:"
                     f" {item.outcome} ({item.journal})")
        records, _ = pending.load_all(destination)
        for record in records:
            results.append(_commit_one(record, log, warn))
        if not pending.find(destination):
            hook.remove(destination)
    return results


@contextlib.contextmanager
def _holding_hook(destination: str, hold: bool) -> Iterator[None]:
    """Hold the hook file's ``flock`` (see :func:`commit_all`), if there is one.  Its holder
    only ever waits for it under the environment's lock, and a starting interpreter
    holding it never waits for that lock: no deadlock."""
    fd = -1
    if hold:
        with contextlib.suppress(OSError):
            fd = os.open(hook.hook_paths(destination)[0],
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd >= 0:
            os.close(fd)


def _commit_one(record: pending.Record, log: Logger, warn: Logger) -> Result:
    if record.stale():
        return Result(record, "stale", "a staging directory is gone; 'recover' removes it")
    try:
        # The lock is held (reentrant): the commit never waits for it.
        txn = Transaction.resume(record, lock_timeout=0, log=log, warn=warn)
    except InstallAtomicError as exc:
        return _failed(record, str(exc))
    if txn is None:
        holder = next((staging.creator_pid(s) for s in record.stages.values()), None)
        return Result(record, "held", f"process {holder} that deferred it still runs")
    with txn:
        try:
            result = txn.commit()
        except InstallAtomicError as exc:
            return _failed(record, str(exc))
    log(f"committed the pending install of {record.description} into {record.primary}:"
        f" {len(result.plan.steps)} renames")
    return Result(record, "committed", commit=result)


def _failed(record: pending.Record, reason: str) -> Result:
    record.last_error = reason
    with contextlib.suppress(OSError):
        if os.path.exists(record.path):
            record.write()
    return Result(record, "failed", reason)


def discard(
    destination: str,
    txids: Sequence[str] = (),
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> list[Result]:
    """Drop the pending installs of *destination* (those in *txids*, or all): their
    staging directories and records go, the installed versions stay."""
    destination = os.path.realpath(destination)
    results: list[Result] = []
    with locking.hold(locking.lock_path_for(destination, detached=True), lock_timeout):
        records, _ = pending.load_all(destination)
        for record in records:
            if txids and record.txid not in txids:
                continue
            for stage in record.stages.values():
                if os.path.lexists(stage) and staging.distrust_stage(stage) is None:
                    staging.remove_tree(stage)
            record.remove()
            results.append(Result(record, "discarded"))
        if not pending.find(destination):
            hook.remove(destination)
    return results

