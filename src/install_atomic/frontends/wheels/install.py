"""``install-atomic install``: many distributions, one transaction.

The order of work (see the explanation page "One transaction for many
distributions"):

1. pip resolves what to install for the target environment and fetches or
   builds one wheel per distribution into a private wheelhouse
   (:mod:`.resolve`); every wheel's ``RECORD`` (hashes, sizes), tags and
   ``Requires-Python`` are checked (:func:`.unpack.check_wheel`);
2. one :class:`~install_atomic.engine.transaction.Transaction` names every
   distribution: each wheel is unpacked into the staging directories inside
   the scheme's directories (:mod:`.unpack`);
3. the staged library directory is byte-compiled once, by every core, for the
   target interpreter, then each ``RECORD`` is written, bytecode included;
4. the import check imports the new set from the staged tree, in a fresh target
   interpreter (new versions first, the rest of the environment after);
5. one commit: one lock, one journal, one rename per top-level entry, every
   distribution's old files removed in the same journal.

A failure at any step before 5 changes nothing in the environment; a failure
or a kill during 5 is rolled back (or forward by ``recover``) as a whole.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from install_atomic import children
from install_atomic.checks import bytecode, verify
from install_atomic.engine import locking, ownership, staging
from install_atomic.engine import pending as pending_mod
from install_atomic.engine.generations import layout as generations
from install_atomic.engine.ownership import canonical_name, installed
from install_atomic.engine.transaction import DEFAULT_LOCK_TIMEOUT, CommitResult, Transaction
from install_atomic.frontends.deferred import commits, hook, loaded
from install_atomic.frontends.wheels import report as report_mod
from install_atomic.frontends.wheels import resolve, target, unpack
from install_atomic.frontends.wheels.progress import Progress

Logger = Callable[[str], None]


@dataclass
class InstallOptions:
    """Everything ``install-atomic install`` accepts."""

    specs: list[str] = field(default_factory=list)
    pip: resolve.PipOptions = field(default_factory=resolve.PipOptions)
    python: str | None = None
    target_dir: str | None = None
    prefix: str | None = None
    user: bool = False
    root: str | None = None
    dry_run: bool = False
    no_verify: bool = False
    verify_deep: bool = False
    verify_command: str | None = None
    verify_timeout: float = 600.0
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    strict: bool = False
    no_fsync: bool = False
    pyc_mode: str = bytecode.DEFAULT_MODE
    compile: bool = True
    report: str | None = None
    quiet: int = 0
    verbose: int = 0
    #: Stage, compile and check now; leave the commit pending (see
    #: :mod:`install_atomic.frontends.deferred`).
    defer: bool = False
    #: With *defer*: keep the staging directories locked by this process until it
    #: exits, so that no one commits them while it runs (the Python API does).
    hold: bool = False
    #: Defer (as *defer*) when a distribution being replaced has modules imported in
    #: this process (the Python API's default).
    auto_defer: bool = False


@dataclass
class Outcome:
    """What :func:`install` did."""

    items: list[resolve.Item]
    old_versions: dict[str, list[str]]
    result: CommitResult | None
    #: Final path -> distribution, for what the new versions install.
    new_files: dict[str, str] = field(default_factory=dict)
    #: Path -> distribution, for what the installed versions list.
    old_files: dict[str, str] = field(default_factory=dict)
    #: The pending record, when the commit was deferred.
    pending: pending_mod.Record | None = None
    #: The deferred transaction, while it holds its staging directories.
    transaction: Transaction | None = None
    #: Where the pending install is committed at the next interpreter start (its hook).
    hooked: bool = False
    #: The library directory installed into.
    destination: str = ""
    #: Top-level modules of replaced distributions that this process has imported.
    loaded_modules: list[str] = field(default_factory=list)


def install(opts: InstallOptions) -> Outcome:
    """Resolve, stage, check and commit; raise InstallAtomicError on any failure."""
    progress = Progress(quiet=opts.quiet, verbose=opts.verbose,
                        stdout_free=opts.report == "-")
    python = target.interpreter_of(opts.python) if opts.python else None
    tgt = target.probe(python, user=opts.user, prefix=opts.prefix, root=opts.root,
                       target_dir=opts.target_dir)
    staging.sweep_build_dirs()  # those of installers killed while building
    workdir = tempfile.mkdtemp(prefix=staging.build_dir_prefix())
    try:
        return _install(opts, tgt, progress, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        progress.done()


def _install(
    opts: InstallOptions, tgt: target.Target, progress: Progress, workdir: str
) -> Outcome:
    if (opts.defer or opts.auto_defer) and generations.find(tgt.lib) is not None:
        # Every running process keeps its generation: nothing to wait for.
        if opts.defer:
            progress.warn(f"install-atomic: {tgt.lib} uses generations: the install is"
                          " committed now (running processes keep the generation they"
                          " started with), not deferred")
        opts = dataclasses.replace(opts, defer=False, auto_defer=False)
    if not opts.defer and not opts.auto_defer and not opts.dry_run:
        _commit_pending(tgt, opts, progress)
    asked = [*opts.specs, *(f"-r {r}" for r in opts.pip.requirements)]
    progress.phase(f"resolving {' '.join(asked)} for {tgt.executable}")
    resolve.check_files(opts.specs)
    if resolve.wheel_files_only(opts.specs, opts.pip):
        versions = _installed_versions(tgt)
        items = resolve.local_wheels(opts.specs, opts.pip,
                                     lambda name: versions.get(canonical_name(name), []))
    else:
        items = resolve.resolve(opts.specs, opts.pip, tgt, workdir)
    old_versions, old_files = _installed(tgt, items)
    loaded_modules = loaded.loaded_from(old_files)
    if opts.auto_defer and loaded_modules:
        opts = dataclasses.replace(opts, defer=True)
    if not items:
        progress.say("install-atomic: nothing to install: every requirement is already satisfied"
                     " (--force-reinstall replaces installed versions)")
        out = Outcome(items, old_versions, None, destination=tgt.lib)
        if opts.report:
            report_mod.write(opts.report, out, tgt, dry_run=opts.dry_run)
        return out
    progress.phase(f"fetching or building {len(items)} wheel{'' if len(items) == 1 else 's'}")
    resolve.fetch(items, opts.pip, tgt, os.path.join(workdir, "wheelhouse"))
    for item in items:
        unpack.check_wheel(item.wheel, item.name, tgt)
    levels = [0] if opts.compile else []
    txn = Transaction(
        [item.name for item in items],
        tgt.lib,
        lock_timeout=opts.lock_timeout,
        lock_path=locking.lock_path_for(tgt.lib, detached=True),
        stops=tgt.stops(),
        strict=opts.strict,
        dry_run=opts.dry_run,
        durable=not opts.no_fsync,
        log=progress.say,
        warn=progress.warn,
    )
    out = Outcome(items, old_versions, None, old_files=old_files, destination=tgt.lib,
                  loaded_modules=loaded_modules)
    with txn:
        claimed: dict[str, str] = {}
        roots = sorted({tgt.strip_root(d) for d in tgt.stops()})
        dests: list[unpack.StagedDestination] = []
        for n, item in enumerate(items, 1):
            progress.phase(f"staging {item.name} {item.version}", n, len(items))
            dest = unpack.StagedDestination(item.name, tgt, txn.stage, claimed, progress.warn)
            unpack.stage_wheel(item.wheel, dest, requested=item.requested,
                               direct_url=item.direct_url, roots=roots)
            dests.append(dest)
        libs = sorted({os.path.normpath(tgt.final(k)) for k in ("purelib", "platlib")})
        if levels:
            for lib in libs:
                stage = txn.stage(lib)
                count = bytecode.count_sources(stage)
                progress.phase(f"compiling {count} module{'' if count == 1 else 's'}")
                foreign = None if tgt.is_running_interpreter else tgt.executable
                ok = bytecode.compile_tree(stage, tgt.strip_root(lib), optimize=levels,
                                           mode=opts.pyc_mode, python=foreign,
                                           cache_tag=tgt.cache_tag)
                if not ok:
                    progress.warn("install_atomic: warning: some files could not be"
                                  " byte-compiled (errors above); they are installed without"
                                  " bytecode")
        for dest in dests:
            for final in dest.write_record(levels):
                out.new_files[final] = dest.dist
        if not opts.no_verify:
            progress.phase(f"checking imports of {_names(items)} from the staged tree")
            removed = _removed_modules(txn, libs)
            for lib in libs:
                names = verify.all_modules(txn.stage(lib)) if opts.verify_deep else None
                verify.check_imports(txn.stage(lib), lib, names, python=tgt.executable,
                                     timeout=opts.verify_timeout,
                                     log=progress.say if opts.verbose else None,
                                     removed=removed)
        if opts.verify_command:
            progress.phase(f"running {opts.verify_command!r} against the staged tree")
            verify.run_command(opts.verify_command, txn.stage(tgt.lib), tgt.lib,
                               timeout=opts.verify_timeout, log=progress.say,
                               python=tgt.executable)
        if opts.defer and not opts.dry_run:
            _defer(txn, opts, tgt, out, progress)
            return out
        progress.phase("committing")
        out.result = txn.commit()
    if opts.report:
        report_mod.write(opts.report, out, tgt, dry_run=opts.dry_run)
    if not opts.dry_run:
        changes = ", ".join(_change(item, old_versions) for item in items)
        if out.result.generation is not None:
            progress.summary(f"installed {changes} into {tgt.lib}: generation"
                             f" {out.result.generation} is current (one rename)")
        else:
            progress.summary(
                f"installed {changes} into {tgt.lib}: {len(out.result.plan.steps)} renames in"
                f" {out.result.swap_seconds * 1e3:.2f} ms"
            )
    return out


def _commit_pending(tgt: target.Target, opts: InstallOptions, progress: Progress) -> None:
    """The next install into a destination commits what is pending there first."""
    for result in commits.commit_all(tgt.lib, lock_timeout=opts.lock_timeout,
                                     log=progress.say, warn=progress.warn):
        if result.outcome in ("held", "failed"):
            progress.warn(f"install_atomic: the pending install of"
                          f" {result.record.description} stays pending: {result.detail}")


def _defer(
    txn: Transaction, opts: InstallOptions, tgt: target.Target, out: Outcome,
    progress: Progress,
) -> None:
    """Leave the checked, staged set pending; install the start-up hook where an
    interpreter start can commit it."""
    progress.phase("deferring the commit")
    changes = [pending_mod.Change(item.name, item.version, out.old_versions.get(item.key, []))
               for item in out.items]
    out.hooked = _hook_applies(tgt)
    record = txn.defer(changes, (lambda _r: hook.install(tgt.lib)) if out.hooked else None)
    out.pending = record
    if opts.report:
        report_mod.write(opts.report, out, tgt, dry_run=False)
    if opts.hold:
        out.transaction = txn
    else:
        txn.release()
    if out.hooked:
        when = ("when this process has exited, the next start of a Python interpreter of"
                f" {tgt.sys_prefix}") if opts.hold else (
                f"the next start of a Python interpreter of {tgt.sys_prefix}")
    else:
        when = f"'install-atomic commit-pending {tgt.lib}'"
    progress.summary(f"deferred the install of {record.description} into {tgt.lib}: it is"
                     f" staged and checked, and is committed by {when}, or by the next"
                     " install there")


def _hook_applies(tgt: target.Target) -> bool:
    """True if interpreters started in the target environment process its library
    directory's ``.pth`` files (its own site-packages), with install_atomic importable."""
    if tgt.root or tgt.target_dir or tgt.prefix or tgt.home:
        return False
    if tgt.is_running_interpreter:
        return True
    status, _out, _err = children.run_in_own_group(
        [tgt.executable, "-c", "import install_atomic"], timeout=120)
    return status == 0


def _removed_modules(txn: Transaction, libs: Sequence[str]) -> list[str]:
    """Top-level modules of the library directories that the plan, as it stands now,
    removes: the import check must not find them (see :func:`verify.check_imports`)."""
    names = set()
    for step in txn.plan(preview=True).steps:
        if step.action != "remove" or os.path.dirname(step.dest) not in libs:
            continue
        entry = os.path.basename(step.dest)
        stem = entry.split(".", 1)[0]
        if stem.isidentifier() and not ownership.is_metadata_name(entry):
            names.add(stem)
    return sorted(names)


def _names(items: Sequence[resolve.Item]) -> str:
    names = [i.name for i in items]
    return ", ".join(names) if len(names) <= 4 else f"{', '.join(names[:4])} and" \
        f" {len(names) - 4} more"


def _change(item: resolve.Item, old: dict[str, list[str]]) -> str:
    before = old.get(item.key)
    if before and before != [item.version]:
        return f"{item.name} {'/'.join(before)} -> {item.version}"
    return f"{item.name} {item.version}"


def _installed_versions(tgt: target.Target) -> dict[str, list[str]]:
    """Every distribution installed in the target's library directory: name -> versions."""
    versions: dict[str, list[str]] = {}
    if os.path.isdir(tgt.lib) and not tgt.target_dir:  # pip --target reinstalls always
        for dist in installed(tgt.lib, tgt.stops()):
            versions.setdefault(canonical_name(dist.name), []).append(dist.version)
    return versions


def _installed(
    tgt: target.Target, items: Sequence[resolve.Item]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The installed versions of *items*' distributions, and the files they list."""
    keys = {item.key for item in items}
    versions: dict[str, list[str]] = {}
    files: dict[str, str] = {}
    if not os.path.isdir(tgt.lib):
        return versions, files
    for dist in installed(tgt.lib, tgt.stops()):
        key = canonical_name(dist.name)
        if key in keys:
            versions.setdefault(key, []).append(dist.version)
            files.update(dict.fromkeys(dist.claimed(), dist.name))
    return versions, files
