"""``init --generations`` and ``flatten``: into the generations layout and back.

**init**, under the environment's lock:

1. every distribution of site-packages with ``.dist-info`` metadata whose
   ``RECORD`` lists files only in site-packages and the scripts directory is
   added to the store (hard links to the installed files: nothing is copied);
   the others (egg-info, files elsewhere, no ``RECORD``) stay where they are,
   plain, and are named;
2. generation 1 is built from them, the hook is written (:mod:`.startup`, its
   bytecode, ``.pth`` and ``.start``), the journal (listing the installed
   copies to remove), then ``layout.json`` (from here, recovery rolls forward
   to generation 1; before it, the next ``init`` starts again);
3. the scripts become links and ``current`` is made (from here, a start sees
   generation 1);
4. the installed copies are removed from site-packages, each top-level entry
   whole where the managed distributions own all of it.

Between 3 and 4 an interpreter that starts sees each distribution twice
(site-packages first, then the generation): the same files.  Processes
started before ``init`` keep ``sys.path`` without the generation: what they
had not imported yet is gone for them after 4, as after an uninstall.
``recover`` finishes an interrupted step 4.

**flatten** copies the current generation's files into site-packages
(``RECORD`` included, so pip owns them again), replaces the script links by
copies, removes the hook and then ``layout.json``: the environment is plain.
Generations still pinned by running processes stay (with the store entries
they link to) until ``install-atomic gc`` finds them unused.  An interrupted
flatten is finished by running it again; until then installs refuse.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from install_atomic import children
from install_atomic.engine import locking, pending, primitives, recovery, staging
from install_atomic.engine.generations import farm, store, switch
from install_atomic.engine.generations import layout as lay
from install_atomic.engine.generations.layout import (
    HOOK_MODULE,
    HOOK_NAME,
    GenerationsError,
    Layout,
)
from install_atomic.engine.ownership import InstalledDistribution, scan

Logger = Callable[[str], None]


@dataclass
class Converted:
    generation: int
    managed: list[str] = field(default_factory=list)
    #: name -> why it stays plain
    plain: dict[str, str] = field(default_factory=dict)


def _why_plain(dist: InstalledDistribution, layout: Layout) -> str | None:
    if not dist.metadata_path.endswith(".dist-info"):
        return "egg-info metadata (setup.py install): its files are not listed exactly"
    if dist.files is None:
        return "its .dist-info has no RECORD"
    if dist.outside:
        return "its RECORD names paths outside the environment"
    for path in dist.files:
        if not (path.startswith(layout.site + os.sep)
                or os.path.dirname(path) == layout.scripts):
            return f"it installs {path}, outside site-packages and the scripts directory"
        if path.startswith(layout.root + os.sep):
            return "it lists files of install-atomic-generations"
    return None


def _found(dist: InstalledDistribution, layout: Layout) -> store.Found:
    assert dist.files is not None
    meta_rel = os.path.relpath(dist.metadata_path, layout.site)
    with open(os.path.join(dist.metadata_path, "RECORD"), "rb") as f:
        record = f.read()
    found = store.Found(dist.name, dist.version, meta_rel, record)
    listed = {p for p in dist.files if os.path.lexists(p)}
    for path in sorted(listed):
        if os.path.dirname(path) == layout.scripts:
            found.scripts.append((path, os.path.basename(path)))
        else:
            found.files.append((path, os.path.relpath(path, layout.site)))
            stem, ext = os.path.splitext(path)
            if ext == ".py":  # bytecode written after the install (not in RECORD)
                cache = os.path.join(os.path.dirname(path), "__pycache__")
                prefix = os.path.basename(stem) + "."
                try:
                    names = os.listdir(cache)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                for name in names:
                    pyc = os.path.join(cache, name)
                    if name.startswith(prefix) and name.endswith(".pyc") \
                            and name.count(".") == 2 and pyc not in listed:
                        found.files.append((pyc, os.path.relpath(pyc, layout.site)))
    return found


def _removals(layout: Layout, managed: Sequence[store.Found],
              plain: Sequence[InstalledDistribution]) -> list[str]:
    """Site-packages paths (relative) to remove once generation 1 is current: each
    top-level entry whole unless a plain distribution or an unlisted file lives in it."""
    ours: set[str] = set()
    for found in managed:
        ours |= {source for source, _ in found.files}
        ours.add(os.path.join(layout.site, found.metadata))
    theirs: set[str] = set()
    for dist in plain:
        theirs |= set(dist.claimed())
    out: list[str] = []
    tops = sorted({os.path.relpath(p, layout.site).split(os.sep, 1)[0] for p in ours})
    for top in tops:
        path = os.path.join(layout.site, top)
        if not os.path.isdir(path) or os.path.islink(path):
            out.append(top)
            continue
        everything = []
        for dirpath, dirnames, filenames in os.walk(path):
            for name in filenames + [d for d in dirnames
                                     if os.path.islink(os.path.join(dirpath, d))]:
                everything.append(os.path.join(dirpath, name))
        strays = [p for p in everything if p not in ours]
        if path in ours or (not strays and not any(t.startswith(path + os.sep) or t == path
                                                   for t in theirs)):
            out.append(top)
        else:
            out += [os.path.relpath(p, layout.site) for p in everything if p in ours]
    return out


def hook_source() -> str:
    with open(os.path.join(os.path.dirname(__file__), "startup.py"), encoding="utf-8") as f:
        return f.read()


def install_hook(layout: Layout, python: str | None) -> None:
    """Write the hook module, its bytecode (for *python*), ``.pth`` and ``.start``."""
    module = os.path.join(layout.site, HOOK_MODULE + ".py")
    primitives.write_durably(module, hook_source().encode())
    if python is None or os.path.realpath(python) == os.path.realpath(sys.executable):
        import py_compile

        cache = importlib.util.cache_from_source(module)
        py_compile.compile(module, cfile=cache, doraise=True)
    else:
        # In its own process group, killed with this installer (install_atomic.children).
        status, _, err = children.run_in_own_group(
            [python, "-I", "-S", "-c",
             "import py_compile, sys; py_compile.compile(sys.argv[1], doraise=True)", module],
            timeout=600)
        if status != 0:
            raise GenerationsError(f"{python} could not byte-compile the start-up hook"
                                   f" {module} (exit status {status}): {err.strip()[-500:]}. The"
                                   " environment stays plain; fix the interpreter and run"
                                   " init again.",
                                   module)
    primitives.write_durably(os.path.join(layout.site, HOOK_NAME + ".start"),
                             f"{HOOK_MODULE}:run\n".encode())
    primitives.write_durably(os.path.join(layout.site, HOOK_NAME + ".pth"),
                             f"import {HOOK_MODULE}\n".encode())


def remove_hook(layout: Layout) -> None:
    for path in (os.path.join(layout.site, HOOK_NAME + ".pth"),
                 os.path.join(layout.site, HOOK_NAME + ".start"),
                 os.path.join(layout.site, HOOK_MODULE + ".py")):
        staging.remove_tree(path)
    cache = os.path.join(layout.site, "__pycache__")
    if os.path.isdir(cache):
        for name in os.listdir(cache):
            if name.startswith(HOOK_MODULE + "."):
                staging.remove_tree(os.path.join(cache, name))


def init(
    site: str,
    scripts: str,
    *,
    python: str | None = None,
    lock_timeout: float = locking.DEFAULT_LOCK_TIMEOUT,
    durable: bool = True,
    log: Logger,
    warn: Logger,
) -> Converted:
    """Put the environment of *site* (scripts in *scripts*) under generations."""
    layout = Layout(os.path.realpath(site), os.path.realpath(scripts))
    if not os.path.isdir(layout.site):
        raise GenerationsError(f"{site} is not a directory. Nothing was changed. Pass the"
                               " environment to convert (a virtual environment's"
                               " directory).", site)
    lock_path = locking.lock_path_for(layout.site, detached=True)
    with locking.hold(lock_path, lock_timeout):
        for item in recovery.recover_locked(layout.site, lock_path):
            if item.outcome not in recovery.LEFT_ALONE:
                warn(f"install_atomic: recovered {item.project}: {item.outcome}")
        if lay.find(layout.site) is not None:
            raise GenerationsError(
                f"{layout.site} already uses generations. Nothing was changed.",
                layout.root)
        if pending.find(layout.site):
            raise GenerationsError(
                f"installs are pending in {layout.site}. Nothing was changed. Run"
                f" 'install-atomic commit-pending {layout.site}' (or discard-pending) first.",
                layout.site)
        if os.path.lexists(layout.root):  # an init killed before layout.json: unused
            staging.remove_tree(layout.root)
        dists = scan(layout.site, [layout.site, layout.scripts])
        managed, plain = [], []
        out = Converted(1)
        for dist in dists:
            why = _why_plain(dist, layout)
            if why is None:
                managed.append(dist)
                out.managed.append(f"{dist.name} {dist.version}")
            else:
                plain.append(dist)
                out.plain[f"{dist.name} {dist.version}"] = why
        log(f"adding {len(managed)} distributions to the store")
        os.mkdir(layout.root, 0o755)
        os.mkdir(layout.store, 0o755)
        founds = [_found(d, layout) for d in managed]
        entries = store.add_all(layout, founds, durable=durable)
        farm.build(layout, 1, None, entries, reason=f"init: {len(entries)} distributions",
                   durable=durable, warn=warn)
        install_hook(layout, python)
        removals = _removals(layout, founds, plain)
        # The journal first: once layout.json exists, recovery rolls forward to 1.
        switch.write_journal(layout, "init", durable, to=1, remove=removals)
        lay.write_json(layout.config, {"format": lay.FORMAT, "site": layout.site,
                                       "scripts": layout.scripts}, durable=durable)
        scripts_1 = switch.scripts_of(layout, 1)
        converted = {os.path.basename(p) for d in managed for p in d.files or ()
                     if os.path.dirname(p) == layout.scripts}
        switch.link_scripts(layout, scripts_1, warn, replace=converted)
        switch.point_current(layout, 1, durable)
        for rel in removals:
            staging.remove_tree(os.path.join(layout.site, rel))
        switch.finish(layout)
    return out


def flatten(
    site: str,
    *,
    lock_timeout: float = locking.DEFAULT_LOCK_TIMEOUT,
    durable: bool = True,
    log: Logger,
    warn: Logger,
) -> lay.Generation:
    """Copy the current generation back into site-packages and drop the layout."""
    layout = lay.find(site)
    if layout is None:
        raise GenerationsError(f"{site} does not use generations. Nothing was changed.", site)
    lock_path = locking.lock_path_for(layout.site, detached=True)
    with locking.hold(lock_path, lock_timeout):
        recovery.recover_locked(layout.site, lock_path)
        if os.path.lexists(layout.journal) and \
                lay.read_json(layout.journal).get("op") != "flatten":
            for line in switch.recover(layout, warn):
                warn(f"install_atomic: {line}")
        generation = lay.current(layout)
        switch.write_journal(layout, "flatten", durable, to=generation.number)
        stage = staging.Stage(layout.site)
        try:
            for entry in lay.entries(layout, generation):
                source = os.path.join(layout.entry_path(entry.key), "site")
                if os.path.isdir(source):
                    shutil.copytree(source, stage.path, symlinks=True, dirs_exist_ok=True)
            if durable:
                primitives.fsync_tree(stage.path)
            for name in sorted(os.listdir(stage.path)):
                if not name.startswith(staging.PREFIX):
                    _move_in(os.path.join(stage.path, name), os.path.join(layout.site, name),
                             warn)
        finally:
            stage.remove()
        for entry in lay.entries(layout, generation):
            for script in entry.scripts:
                path = os.path.join(layout.scripts, script)
                if os.path.lexists(path) and not os.path.islink(path):
                    continue  # another tool's
                tmp = switch.script_tmp(layout, script)  # a fresh, unguessable name
                shutil.copy2(os.path.join(layout.entry_path(entry.key), "bin", script), tmp)
                os.replace(tmp, path)
        remove_hook(layout)
        staging.remove_tree(layout.current)
        staging.remove_tree(layout.config)
        _release_own_pin(layout)
        collected = switch.gc(layout, 1, warn=warn, durable=durable, everything=True)
        if collected.in_use:
            warn(f"install_atomic: generations {collected.in_use} are still used by running"
                 f" processes (this one, if install-atomic runs from one); they stay in"
                 f" {layout.root} until 'install-atomic gc' finds them unused")
        else:
            staging.remove_tree(layout.root)
    log(f"{layout.site} is a plain environment again (generation {generation.number}'s"
        " distributions)")
    return generation


def _release_own_pin(layout: Layout) -> None:
    """Unpin this process's generation, unless this very code was imported from it."""
    hook = sys.modules.get(HOOK_MODULE)
    pinned = getattr(hook, "pinned", None)
    if not pinned or not str(pinned[0]).startswith(layout.root + os.sep):
        return
    if os.path.abspath(__file__).startswith(layout.root + os.sep):
        return  # install-atomic runs from the generation: it stays until gc
    os.close(pinned[1])
    hook.pinned = None  # type: ignore[union-attr]


def _move_in(src: str, dst: str, warn: Logger) -> None:
    try:
        primitives.rename_noreplace(src, dst)  # never over what another tool put there
        return
    except FileExistsError:
        pass
    if os.path.isdir(src) and not os.path.islink(src) and os.path.isdir(dst) \
            and not os.path.islink(dst):
        for name in sorted(os.listdir(src)):
            _move_in(os.path.join(src, name), os.path.join(dst, name), warn)
        return
    if not dst.endswith(".pyc"):
        warn(f"warning: {dst} exists (another tool's?); it is kept")
