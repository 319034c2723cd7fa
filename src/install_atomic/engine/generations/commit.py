"""A transaction's commit in a generations environment.

:meth:`install_atomic.engine.transaction.Transaction.commit` calls
:func:`apply` under the environment's lock, after recovery, instead of
renaming entries into site-packages:

1. the staged distributions are added to the store (hard links; the staged
   trees stay whole);
2. the new set is the current generation's, minus every distribution the
   transaction names, plus the staged ones; generation ``max + 1`` is built
   from it;
3. the journal names it (and the pending record, if the install was
   deferred, which is removed now: the journal carries it forward), links
   for new scripts are made, and ``current`` is replaced by one rename;
4. stale script links and the journal go.

Many distributions switch at once, all or nothing: a process that started
before step 3 imports only from the old set, one that starts after it only
from the new one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from install_atomic.engine.generations import farm, store, switch
from install_atomic.engine.generations import layout as lay
from install_atomic.engine.generations.layout import Layout, canonical

Logger = Callable[[str], None]


@dataclass
class Applied:
    number: int
    parent: int | None
    reason: str
    #: (name, new version or None, old version or None)
    changes: list[tuple[str, str | None, str | None]]


def describe(changes: Sequence[tuple[str, str | None, str | None]]) -> str:
    words = []
    for name, new, old in changes:
        if new is None:
            words.append(f"remove {name} {old}")
        elif old is None:
            words.append(f"install {name} {new}")
        elif old == new:
            words.append(f"reinstall {name} {new}")
        else:
            words.append(f"install {name} {new} (was {old})")
    return ", ".join(words) or "no change"


def preview(layout: Layout, stages: Mapping[str, str], projects: Sequence[str]
            ) -> list[tuple[str, str | None, str | None]]:
    """What :func:`apply` would change, without changing anything."""
    dists = store.split(stages.get(layout.site, ""), layout.site, stages.get(layout.scripts),
                        layout.scripts, _others(layout, stages)) \
        if layout.site in stages else []
    return _changes(layout, [(d.name, d.version) for d in dists], projects)


def _others(layout: Layout, stages: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(tree, dest) for dest, tree in stages.items()
            if dest not in (layout.site, layout.scripts)]


def _changes(layout: Layout, new: Sequence[tuple[str, str]], projects: Sequence[str]
             ) -> list[tuple[str, str | None, str | None]]:
    current = lay.current(layout)
    names = {canonical(p) for p in projects} | {canonical(n) for n, _ in new}
    old = {k: v for k, v in ((canonical(n), v) for n, v in current.versions.items())
           if k in names}
    out: list[tuple[str, str | None, str | None]] = []
    seen = set()
    for name, version in new:
        out.append((name, version, old.get(canonical(name))))
        seen.add(canonical(name))
    for name, version in sorted(current.versions.items()):
        if canonical(name) in names and canonical(name) not in seen:
            out.append((name, None, version))
    return out


def apply(
    layout: Layout,
    stages: Mapping[str, str],
    projects: Sequence[str],
    *,
    durable: bool,
    warn: Logger,
    pending_path: str | None = None,
) -> Applied:
    """Under the lock: build the next generation from the current one and the staged
    trees (destination -> staging directory), and switch to it."""
    current = lay.current(layout)
    found = store.split(stages[layout.site], layout.site, stages.get(layout.scripts),
                        layout.scripts, _others(layout, stages)) \
        if layout.site in stages else []
    entries = store.add_all(layout, found, durable=durable)
    changes = _changes(layout, [(e.name, e.version) for e in entries], projects)
    gone = {canonical(p) for p in projects} | {canonical(e.name) for e in entries}
    keep = [lay.read_entry(layout, key) for name, key in sorted(current.distributions.items())
            if name not in gone]
    number = max(lay.numbers(layout), default=0) + 1
    reason = describe(changes)
    farm.build(layout, number, current.number, [*keep, *entries], reason=reason,
               durable=durable, warn=warn)
    switch.switch(layout, number, durable=durable, warn=warn, op="build",
                  pending=pending_path)
    if pending_path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pending_path)
    switch.finish(layout)
    return Applied(number, current.number, reason, changes)
