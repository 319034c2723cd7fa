"""Operations on a generations environment's history, each under its lock.

``switch`` (to any generation that exists), ``undo`` (back to the current
generation's parent: the set it was built from), ``gc`` and ``recover``.
Each takes the environment's lock (the one installs take), so it never
interleaves with an install, and recovers an interrupted operation first.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from install_atomic.engine import locking, recovery, staging
from install_atomic.engine.generations import layout as lay
from install_atomic.engine.generations import switch as sw
from install_atomic.engine.generations.layout import GenerationsError, Layout
from install_atomic.errors import UnsafePathError

Logger = Callable[[str], None]


def require(site: str) -> Layout:
    layout = lay.find(site)
    if layout is None:
        raise GenerationsError(
            f"{site} does not use generations. Nothing was changed. Run 'install-atomic init"
            " --generations' on its environment first.",
            site,
        )
    return layout


@contextmanager
def locked(layout: Layout, lock_timeout: float, warn: Logger,
           repair_current: bool = False) -> Iterator[None]:
    lock_path = locking.lock_path_for(layout.site, detached=True)
    with locking.hold(lock_path, lock_timeout):
        if repair_current:
            try:
                lay.current_number(layout)
            except UnsafePathError:
                # 'switch N' replaces a current link that names no generation (it
                # never follows it); every other command refuses it.
                target = os.readlink(layout.current)
                os.unlink(layout.current)
                warn(f"install_atomic: removed {layout.current}, which pointed to"
                     f" {target!r}, not to a generation")
        for item in recovery.recover_locked(layout.site, lock_path):
            if item.outcome not in recovery.LEFT_ALONE:
                warn(f"install_atomic: recovered {item.project}: {item.outcome}")
        for line in sw.recover(layout, warn):
            warn(f"install_atomic: {line}")
        yield


def switch_to(site: str, number: int, *, lock_timeout: float = locking.DEFAULT_LOCK_TIMEOUT,
              durable: bool = True, warn: Logger) -> tuple[int | None, int]:
    """Make generation *number* current; return (previous, new)."""
    layout = require(site)
    with locked(layout, lock_timeout, warn, repair_current=True):
        before = lay.current_number(layout)
        if before != number:
            sw.switch(layout, number, durable=durable, warn=warn)
            sw.finish(layout)
    return before, number


def undo(site: str, *, lock_timeout: float = locking.DEFAULT_LOCK_TIMEOUT,
         durable: bool = True, warn: Logger) -> tuple[int, int]:
    """Go back to the generation the current one was built from; return (from, to)."""
    layout = require(site)
    with locked(layout, lock_timeout, warn):
        current = lay.current(layout)
        if current.parent is None:
            raise GenerationsError(
                f"generation {current.number} of {layout.site} is the first: there is"
                " nothing to undo. Nothing was changed.", layout.current)
        sw.switch(layout, current.parent, durable=durable, warn=warn)
        sw.finish(layout)
    return current.number, current.parent


def gc(site: str, keep: int, *, lock_timeout: float = locking.DEFAULT_LOCK_TIMEOUT,
       durable: bool = True, warn: Logger) -> sw.Collected:
    leftover = Layout(os.path.realpath(site), "")
    if lay.find(site) is None and os.path.isdir(leftover.root) \
            and not os.path.lexists(leftover.config):
        # What a flatten left for processes that still used it: remove what they no
        # longer use, and the directory once empty.
        with locking.hold(locking.lock_path_for(leftover.site, detached=True), lock_timeout):
            collected = sw.gc(leftover, 1, warn=warn, durable=durable, everything=True)
            if not lay.numbers(leftover):
                staging.remove_tree(leftover.root)
        return collected
    layout = require(site)
    with locked(layout, lock_timeout, warn):
        return sw.gc(layout, keep, warn=warn, durable=durable)


def recover(site: str, *, lock_timeout: float = locking.DEFAULT_LOCK_TIMEOUT,
            warn: Logger) -> list[str]:
    """Finish an interrupted build, switch, gc or init; return what was done."""
    layout = require(site)
    done: list[str] = []
    with locking.hold(locking.lock_path_for(layout.site, detached=True), lock_timeout):
        done += sw.recover(layout, warn)
    return done


def history(site: str) -> tuple[int | None, list[lay.Generation], dict[int, bool]]:
    """(current number, every generation oldest first, number -> in use)."""
    layout = require(site)
    generations = [lay.read_generation(layout, n) for n in lay.numbers(layout)]
    return (lay.current_number(layout), generations,
            {g.number: _used_by_others(layout, g.number) for g in generations})


def _used_by_others(layout: Layout, number: int) -> bool:
    """:func:`.switch.in_use`, not counting this process's own pin (the listing
    process runs in a generation too)."""
    if not sw.in_use(layout, number):
        return False
    mine = getattr(sys.modules.get(lay.HOOK_MODULE), "pinned", None)
    path = layout.generation_path(number)
    if not mine or os.path.realpath(str(mine[0])) != os.path.realpath(path):
        return True
    holders = locking.lock_holders(os.path.join(path, "pin"))
    return not holders or any(pid != os.getpid() for pid in holders)
