"""Uninstalling distributions by name: one transaction, shared files kept.

Every installed version of every named distribution is removed in one
commit; a file another installed distribution still lists (a shared
namespace ``__init__.py``, say) stays.  Pending installs of those names
deferred before it are dropped (they would bring the distribution back).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from install_atomic.engine import locking
from install_atomic.engine.ownership import canonical_name, installed
from install_atomic.engine.scheme import scheme_dirs
from install_atomic.engine.transaction import DEFAULT_LOCK_TIMEOUT, CommitResult, Transaction
from install_atomic.errors import DestinationError


def uninstall(
    names: Sequence[str],
    target: str,
    *,
    dry_run: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    log: Callable[[str], None] = print,
) -> CommitResult:
    """Remove the distributions *names* from *target* (a library directory)."""
    if not names:
        raise ValueError("uninstall needs at least one distribution name")
    found_all = installed(target)
    dists = []
    for name in names:
        found = [d for d in found_all if d.key == canonical_name(name)]
        if not found:
            raise DestinationError(
                f"{name} is not installed in {target}. Nothing was changed. Check the name"
                " ('pip list' shows it), or pass --target with the directory holding it.",
                target,
            )
        dists += found
    with Transaction(list(names), target, lock_timeout=lock_timeout, dry_run=dry_run, log=log,
                     lock_path=locking.lock_path_for(target, detached=True),
                     stops=scheme_dirs(target, dists)) as txn:
        return txn.commit()
