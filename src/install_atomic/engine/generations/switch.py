"""Switching ``current``, linking scripts, the journal, and garbage collection.

Every function here runs under the environment's lock (the one installs
take: :func:`install_atomic.engine.locking.lock_path_for` of site-packages).

**Switch.**  ``current`` is a symlink ``generations/<N>``; a switch writes a
new link under a private name and renames it over ``current``: one
``rename``, so an interpreter starting at any instant resolves the old
generation or the new one, whole.

**Scripts.**  Each script of the current generation is a symlink in the
scripts directory (``bin/``) to ``…/install-atomic-generations/current/bin/
<name>``, so every script follows a switch at the instant of that same
rename.  Links for scripts a new generation adds are made (each by one
rename) before the switch, and links whose script the current generation no
longer has are removed after it.  A file there that is not such a link
(another tool's script, the environment's ``python``) is never touched.

**Journal.**  ``journal.json`` says which operation runs and where it goes;
:func:`recover` rolls it forward: a complete generation it names becomes
current, and private leftovers (``.build-*``, ``.tmp-*``, ``.trash-*``,
``.current-*``) are removed.  ``current`` is consistent at every instant, so
a kill anywhere leaves one whole generation current, before and after
``recover``.

**Garbage collection** removes a generation only when it can take an
exclusive ``flock`` on its ``pin`` without waiting (no process uses it: the
start-up hook holds a shared one for the life of each process, and a forked
child shares its parent's), renames it away while holding that lock (a
process that opened ``pin`` just before sees, once it gets its shared lock,
that the path is gone, and pins ``current`` again), then deletes it.  Store
entries no remaining generation links to go next.  ``current`` is never
removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from install_atomic.engine import primitives, staging
from install_atomic.engine.generations import layout as lay
from install_atomic.engine.generations.farm import BUILD_PREFIX
from install_atomic.engine.generations.layout import GenerationsError, Layout
from install_atomic.engine.generations.store import TMP_PREFIX, TRASH_PREFIX
from install_atomic.engine.plan import PRIVATE_PREFIX

Warn = Callable[[str], None]
CURRENT_TMP = ".current-"


def write_journal(layout: Layout, op: str, durable: bool = True, **data: Any) -> None:
    lay.write_json(layout.journal, {"op": op, "pid": os.getpid(), **data}, durable=durable)


def remove_journal(layout: Layout) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(layout.journal)


def point_current(layout: Layout, number: int, durable: bool = True) -> None:
    """Make generation *number* current: one rename."""
    if not os.path.exists(os.path.join(layout.generation_path(number), "generation.json")):
        raise GenerationsError(
            f"generation {number} does not exist in {layout.generations} (removed by"
            " 'install-atomic gc'?). Nothing was changed. 'install-atomic generations' lists"
            " those there are.",
            layout.generation_path(number),
        )
    tmp = os.path.join(layout.root, f"{CURRENT_TMP}{os.getpid()}-{secrets.token_hex(4)}")
    os.symlink(os.path.join("generations", str(number)), tmp)
    try:
        os.replace(tmp, layout.current)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        primitives.fsync_path(layout.root)


def _ours(layout: Layout, name: str) -> bool:
    path = layout.script_link(name)
    try:
        return os.readlink(path) == layout.script_target(name)
    except OSError:
        return False


def link_scripts(layout: Layout, names: Iterable[str], warn: Warn,
                 replace: Iterable[str] = ()) -> None:
    """Make the link for each script in *names* (those in *replace*, regular files
    install-atomic is converting, are replaced too)."""
    replace = set(replace)
    os.makedirs(layout.scripts, exist_ok=True)
    for name in sorted(set(names)):
        path = layout.script_link(name)
        if _ours(layout, name):
            continue
        if os.path.lexists(path) and name not in replace:
            warn(f"warning: {path} is not install-atomic's (another tool installed it);"
                 f" it is left alone, and the script {name} of this generation is reachable"
                 f" as {os.path.join(layout.current, 'bin', name)}")
            continue
        tmp = script_tmp(layout, name)
        os.symlink(layout.script_target(name), tmp)
        try:
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def unlink_stale_scripts(layout: Layout) -> list[str]:
    """Remove our links whose script the current generation does not have."""
    removed: list[str] = []
    try:
        names = os.listdir(layout.scripts)
    except FileNotFoundError:
        return removed
    for name in names:
        if _ours(layout, name) and not os.path.lexists(
                os.path.join(layout.current, "bin", name)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(layout.script_link(name))
            removed.append(name)
    return removed


def scripts_of(layout: Layout, number: int) -> list[str]:
    try:
        return sorted(os.listdir(os.path.join(layout.generation_path(number), "bin")))
    except FileNotFoundError:
        return []


def switch(layout: Layout, number: int, *, durable: bool = True, warn: Warn,
           op: str = "switch", **journal: Any) -> None:
    """Make *number* current: journal, script links, one rename, stale links."""
    if not os.path.exists(os.path.join(layout.generation_path(number), "generation.json")):
        point_current(layout, number, durable)  # raises, naming what is missing
    write_journal(layout, op, durable, to=number, **journal)
    link_scripts(layout, scripts_of(layout, number), warn)
    point_current(layout, number, durable)


def finish(layout: Layout) -> None:
    """After a switch: stale script links go, then the journal."""
    unlink_stale_scripts(layout)
    remove_journal(layout)


#: A script link being made: ``.<name>.install-atomic-<8 hex digits>``.
_SCRIPT_TMP = re.compile(r"^\.(.+)\.install-atomic-[0-9a-f]{8}$")


def script_tmp(layout: Layout, name: str) -> str:
    return os.path.join(layout.scripts, f".{name}.install-atomic-{secrets.token_hex(4)}")


def _leftovers(layout: Layout) -> list[str]:
    found = []
    for directory, prefixes in ((layout.generations, (BUILD_PREFIX, TRASH_PREFIX)),
                                (layout.store, (TMP_PREFIX, TRASH_PREFIX)),
                                (layout.root, (CURRENT_TMP,))):
        with contextlib.suppress(FileNotFoundError):
            found += [os.path.join(directory, n) for n in os.listdir(directory)
                      if n.startswith(prefixes)]
    # write_durably's temporary files, left by a kill before their rename.
    found += [p + ".tmp" for p in (layout.journal, layout.config) if os.path.lexists(p + ".tmp")]
    # Script links killed before their rename: only ours (a link to our target).
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(layout.scripts):
            match = _SCRIPT_TMP.match(name)
            path = os.path.join(layout.scripts, name)
            if match and os.path.islink(path) and \
                    os.readlink(path) == layout.script_target(match.group(1)):
                found.append(path)
    return found


def recover(layout: Layout, warn: Warn) -> list[str]:
    """Under the lock: roll an interrupted operation forward; return what was done."""
    done: list[str] = []
    if os.path.lexists(layout.journal):
        journal = lay.read_json(layout.journal)
        op = str(journal.get("op"))
        target = journal.get("to")
        if op == "flatten":
            raise GenerationsError(
                f"a 'flatten' of {layout.site} was interrupted; nothing can be installed"
                f" there until it is finished: run 'install-atomic flatten {layout.site}'"
                " again.",
                layout.journal,
            )
        if isinstance(target, int) and os.path.exists(
                os.path.join(layout.generation_path(target), "generation.json")):
            if lay.current_number(layout) != target:
                link_scripts(layout, scripts_of(layout, target), warn)
                point_current(layout, target)
                done.append(f"finished the interrupted {op}: generation {target} is current")
            record = journal.get("pending")
            if isinstance(record, str) and os.path.basename(record).endswith(".pending") \
                    and os.path.basename(record).startswith(PRIVATE_PREFIX) \
                    and os.path.dirname(record) == layout.site:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(record)
        elif op in ("build", "switch"):
            done.append(f"the interrupted {op} had not finished building generation"
                        f" {target}: generation {lay.current_number(layout)} stays current")
        for rel in journal.get("remove", []):  # an interrupted init
            path = os.path.normpath(os.path.join(layout.site, str(rel)))
            if path.startswith(layout.site + os.sep) and not path.startswith(layout.root):
                staging.remove_tree(path)
    for path in _leftovers(layout):
        staging.remove_tree(path)
        done.append(f"removed {path}")
    for number in lay.numbers(layout):  # a pin file lost: gc could not see its users
        pin = os.path.join(layout.generation_path(number), "pin")
        if not os.path.lexists(pin):
            with open(pin, "x"):
                pass
            done.append(f"made the missing {pin}")
    if lay.current_number(layout) is not None:
        link_scripts(layout, scripts_of(layout, lay.current_number(layout) or 0), warn)
        unlink_stale_scripts(layout)
    remove_journal(layout)
    return done


def in_use(layout: Layout, number: int) -> bool:
    """True while some process holds generation *number*'s pin."""
    try:
        fd = os.open(os.path.join(layout.generation_path(number), "pin"),
                     os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False
    finally:
        os.close(fd)


@dataclass
class Collected:
    removed: list[int] = field(default_factory=list)
    in_use: list[int] = field(default_factory=list)
    entries: list[str] = field(default_factory=list)


def gc(layout: Layout, keep: int, *, warn: Warn, durable: bool = True,
       everything: bool = False) -> Collected:
    """Remove generations beyond the newest *keep* that no process uses (never
    ``current``), then store entries no generation left links to.  With
    *everything* (``flatten``), every generation no process uses goes."""
    if keep < 1:
        raise ValueError("gc keeps at least one generation (--keep 1 or more)")
    out = Collected()
    current = lay.current_number(layout)
    numbers = lay.numbers(layout)
    kept = set() if everything else \
        set(numbers[-keep:]) | ({current} if current is not None else set())
    # Every generation is read (and so checked) before anything is removed: an
    # untrusted one stops the gc with nothing changed.
    links = {number: set(lay.read_generation(layout, number).distributions.values())
             for number in numbers}
    write_journal(layout, "gc", durable)
    for number in numbers:
        if number in kept:
            continue
        path = layout.generation_path(number)
        try:
            fd = os.open(os.path.join(path, "pin"), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            fd = -1
        try:
            if fd >= 0 and not primitives.flock_nowait(fd):
                out.in_use.append(number)
                continue
            trash = os.path.join(layout.generations,
                                 f"{TRASH_PREFIX}{number}-{secrets.token_hex(4)}")
            os.rename(path, trash)
        finally:
            if fd >= 0:
                os.close(fd)
        staging.remove_tree(trash)
        out.removed.append(number)
    live: set[str] = set()
    for number in numbers:
        if number not in out.removed:
            live |= links[number]
    for key in lay.store_keys(layout):
        if key in live:
            continue
        trash = os.path.join(layout.store, f"{TRASH_PREFIX}{secrets.token_hex(6)}")
        os.rename(layout.entry_path(key), trash)
        staging.remove_tree(trash)
        out.entries.append(key)
    remove_journal(layout)
    return out
