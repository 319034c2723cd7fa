"""A merge, or an uninstall by manifest, as one engine transaction.

:func:`merge` stages the tree (:mod:`.tree`), lists its files, stages the
manifest when it lies in the prefix, and commits: under the prefix's lock
(:mod:`.layout`), with a journal in the prefix, one rename per new entry, one
rename per replaced file, directories the prefix has merged into, Python
distributions found in the tree committed as the engine commits them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from install_atomic.engine import journal as journal_mod
from install_atomic.engine import locking, recovery, staging
from install_atomic.engine.journal import Journal
from install_atomic.engine.ownership import InstalledDistribution, scan
from install_atomic.engine.plan import PRIVATE_PREFIX, Plan
from install_atomic.engine.primitives import is_real_dir
from install_atomic.engine.transaction import (
    DEFAULT_LOCK_TIMEOUT,
    CommitResult,
    Logger,
    Transaction,
)
from install_atomic.errors import DestinationError, InstallAtomicError, RecoveryError
from install_atomic.frontends.merge import manifest as manifest_mod
from install_atomic.frontends.merge.layout import Layout, library_dirs
from install_atomic.frontends.merge.tree import Filler, MergeError, Modes

__all__ = ["MergeError", "MergeOptions", "MergeOutcome", "merge", "uninstall"]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass
class MergeOptions:
    """What :func:`merge` does; the command line's options, one field each."""

    staged: str
    prefix: str
    #: The prefix as laid out in *staged* (``DESTDIR/opt/local`` -> ``/opt/local``).
    strip: str | None = None
    manifest: str | None = None
    replace: str | None = None
    name: str | None = None
    version: str = ""
    copy: bool = False
    dry_run: bool = False
    strict: bool = False
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    mode: str = "umask"
    follow_outside_links: bool = False
    durable: bool = True
    log: Logger = print
    warn: Logger = _stderr


@dataclass
class MergeOutcome:
    result: CommitResult
    #: Final paths of every file and symlink the merge installed.
    files: list[str] = field(default_factory=list)
    manifest: str | None = None
    #: True when the staged tree was moved (consumed) rather than copied.
    moved: bool = False


def _source(opts: MergeOptions) -> str:
    source = os.path.abspath(opts.staged)
    if opts.strip:
        source = os.path.join(source, opts.strip.lstrip(os.sep))
    if not os.path.isdir(source):
        raise MergeError(
            f"{source} is not a directory. Give the staged tree (DESTDIR), and with --strip"
            " the prefix it was installed under.", source)
    return source


def _real(path: str) -> str:
    """*path* with its directory resolved (the file itself need not exist)."""
    return os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))),
                        os.path.basename(path))


def _read_manifest(path: str, layout: Layout, name: str) -> InstalledDistribution:
    try:
        dist = manifest_mod.read(path, layout.scheme, name=name)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MergeError(f"cannot read the manifest {path}: {exc}. Nothing was changed.",
                         path) from exc
    return dist


def _library_of(paths: list[str]) -> str | None:
    """The one library directory holding the metadata directories *paths*, if one."""
    parents = {os.path.dirname(p) for p in paths}
    return parents.pop() if len(parents) == 1 else None


#: A name that never exists, "listed" inside each directory that must be merged into,
#: never swapped whole: the prefix's standard and library directories.
KEEP = PRIVATE_PREFIX + "-keep"


def _layout_keeper(stops: list[str]) -> InstalledDistribution:
    """An "other" owning a (never existing) entry inside each of *stops*: the engine then
    merges into those directories even when only the old version has files there."""
    return InstalledDistribution(
        name=f"{PRIVATE_PREFIX} prefix layout", version="", metadata_path=KEEP,
        files=frozenset(os.path.join(s, KEEP) for s in stops), metadata_listed=False)


class _Owners:
    """The other distributions of a merge's transaction, read under the lock each time
    the plan is computed: the prefix layout's keeper, the Python distributions of the
    prefix's library directories, the other manifests, and the replaced manifest
    (``old``: its path and name).

    Each read also warns, once per path, about the files the merge will replace or
    remove that changed since the manifest owning them recorded them
    (:meth:`_warn_changed`): someone wrote them after the merge that installed them.
    """

    def __init__(self, layout: Layout, metadata_dir: str, manifest_dirs: list[str],
                 exclude: list[str], old: tuple[str, str] | None, warn: Logger) -> None:
        self.layout = layout
        self.metadata_dir = metadata_dir
        self.manifest_dirs = manifest_dirs
        self.exclude = exclude
        self.old = old
        self.warn = warn
        #: Final paths of the files the merge installs (set once staged).
        self.new_files: frozenset[str] = frozenset()
        self.warned: set[str] = set()

    def __call__(self) -> list[InstalledDistribution]:
        layout = self.layout
        dists = [_layout_keeper([*layout.stops(self.metadata_dir), *layout.outside])]
        for lib in library_dirs(layout.prefix):
            if lib != self.metadata_dir:
                dists += scan(lib, layout.scheme)
        others = manifest_mod.others(self.manifest_dirs, self.exclude, layout.scheme)
        dists += others
        old = None
        if self.old is not None and os.path.exists(self.old[0]):
            old = _read_manifest(self.old[0], layout, self.old[1])
            dists.append(old)
        self._warn_changed(old, others)
        return dists

    def _warn_changed(self, old: InstalledDistribution | None,
                      others: list[InstalledDistribution]) -> None:
        """Compare with what its manifest recorded each file that will be replaced (a
        file of the old version or of another manifest that the merge installs) or
        removed (a file of the old version the merge lacks and no other manifest
        lists): one ``lstat`` per file of the old version, none for another
        manifest's files unless the merge replaces some."""
        checks: list[tuple[InstalledDistribution, list[str]]] = []
        if old is not None and old.files:
            checks.append((old, sorted(old.files)))
        for dist in others:
            hit = sorted(self.new_files & dist.files) if dist.files else []
            if hit:
                checks.append((dist, hit))
        for dist, paths in checks:
            recorded: dict[str, manifest_mod.Identity] | None = None
            for path in paths:
                if path in self.warned:
                    continue
                if recorded is None:
                    recorded = manifest_mod.identities(dist.metadata_path)
                    if not recorded:
                        break  # an older manifest: it recorded no identity
                want = recorded.get(path)
                now = manifest_mod.current_identity(path) if want is not None else None
                if want is None or now is None or now == want:
                    continue
                replaced = path in self.new_files
                if not replaced and any(d.files and path in d.files for d in others):
                    continue  # another manifest lists it: it stays
                self.warned.add(path)
                self.warn(
                    f"install_atomic: warning: {path} changed since {dist.metadata_path}"
                    f" recorded it (another process wrote it after the merge that installed"
                    f" it); {'replacing' if replaced else 'removing'} it")


def _finish_cleanup(layout: Layout, txn: Transaction, exc: InstallAtomicError,
                    opts: MergeOptions) -> CommitResult:
    """The merge is in place but removing what it replaced failed (another process, a
    ``compileall`` of the whole prefix say, wrote into an old directory while it was
    being deleted).  Every rename is done: finish the cleanup at once, under the lock,
    rolling forward (never back: the backups are already partly deleted)."""
    journal_path = Journal.path_for(layout.prefix, txn.txid)
    try:
        journal = journal_mod.load(journal_path)
    except (OSError, ValueError, KeyError, TypeError):
        raise exc from None
    for _ in range(ROLL_FORWARD_TRIES):
        try:
            with locking.hold(layout.lock_path, opts.lock_timeout):
                if not os.path.lexists(journal_path):
                    break  # finished by another transaction's recovery
                recovery.cleanup(journal)
        except (OSError, InstallAtomicError):
            continue
        break
    else:
        raise exc
    opts.warn(f"install_atomic: removing the replaced files took more than one try ({exc})")
    return CommitResult(Plan())


#: How often a merge tries again to delete what it replaced.
ROLL_FORWARD_TRIES = 20
#: How often a merge tries its commit again when recovering another, interrupted
#: transaction failed (nothing of this merge was changed then).
COMMIT_TRIES = 5


_BACKUP = re.compile(re.escape(PRIVATE_PREFIX) + r"-(\d+-[0-9a-f]{8})-\d+\.bak(-old)?")


def _bytecode_only(path: str) -> bool:
    for _dirpath, _dirnames, filenames in os.walk(path):
        if any(not f.endswith((".pyc", ".tmp")) and ".pyc." not in f for f in filenames):
            return False
    return True


def sweep_resurrected(directories: Iterable[str], layout: Layout, metadata_dir: str) -> list[str]:
    """Remove, from *directories*, backup names of finished transactions that hold only
    bytecode; return their paths.  Call with the prefix's lock held.

    ``compileall`` walking the prefix during a commit can list a replaced directory at
    its backup name and write a ``.pyc`` there after the cleanup deleted it: its
    ``makedirs`` then recreates the backup's name.  Such a directory belongs to no
    transaction (none of its journals exists in the prefix or its ``site-packages``,
    where every transaction into the prefix keeps it) and holds nothing but bytecode.
    """
    removed = []
    for directory in sorted(set(directories)):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            match = _BACKUP.fullmatch(name)
            path = os.path.join(directory, name)
            if match is None or not is_real_dir(path):
                continue
            txid = match.group(1)
            if any(os.path.lexists(Journal.path_for(d, txid))
                   for d in (layout.prefix, metadata_dir, layout.site_packages)):
                continue
            if _bytecode_only(path):
                with contextlib.suppress(OSError):
                    staging.remove_tree(path)
                    removed.append(path)
    return removed


def _commit(txn: Transaction, layout: Layout, opts: MergeOptions) -> CommitResult:
    for attempt in range(COMMIT_TRIES):
        try:
            return txn.commit()
        except RecoveryError as exc:
            # Finishing another, interrupted transaction failed before anything of this
            # one changed: its cleanup raced a writer; try again.
            if txn.committed or attempt == COMMIT_TRIES - 1:
                raise
            opts.warn(f"install_atomic: warning: {exc}; trying again")
        except InstallAtomicError as exc:
            if not txn.committed:
                raise
            return _finish_cleanup(layout, txn, exc, opts)
    raise AssertionError("unreachable")


def merge(opts: MergeOptions) -> MergeOutcome:
    """Merge the staged tree into the prefix as one transaction; raise
    :class:`~install_atomic.errors.InstallAtomicError` on any failure, the prefix
    then being as it was."""
    source = _source(opts)
    modes = Modes.parse(opts.mode)
    if not opts.dry_run:
        os.makedirs(opts.prefix, exist_ok=True)
    layout = Layout.of(opts.prefix, [source])
    if layout.prefix == source or layout.prefix.startswith(source + os.sep):
        raise MergeError(f"the prefix {layout.prefix} lies inside the staged tree {source}.")
    manifest = _real(opts.manifest) if opts.manifest else None
    replace = _real(opts.replace) if opts.replace else None
    name = opts.name or (os.path.splitext(os.path.basename(manifest))[0] if manifest
                         else os.path.basename(os.path.normpath(opts.staged)))
    # Python distributions in the staged tree, and those the replaced version listed.
    staged_files = [os.path.join(d, f) for d, _, fs in os.walk(source)
                    if manifest_mod.in_library(d + os.sep) for f in fs]
    staged_dists = manifest_mod.python_distributions(staged_files)
    projects = [name, *staged_dists.values()]
    if replace is not None:
        old = _read_manifest(replace, layout, name)
        if old.outside:
            opts.warn(f"install_atomic: warning: {replace} names files outside {layout.prefix}"
                      f" ({', '.join(old.outside[:3])}); they are left alone")
        projects += manifest_mod.python_distributions(sorted(old.files or ())).values()
    finals = [os.path.realpath(os.path.join(layout.prefix, os.path.relpath(m, source)))
              for m in staged_dists]
    metadata_dir = _library_of(finals) or layout.site_packages
    if manifest is not None and not opts.dry_run:
        os.makedirs(os.path.dirname(manifest), exist_ok=True)
    manifest_dirs = [os.path.dirname(p) for p in (manifest, replace) if p]
    exclude = [p for p in (manifest, replace) if p]
    owners = _Owners(layout, metadata_dir, manifest_dirs, exclude,
                     (replace, name) if replace else None, opts.warn)
    txn = Transaction(
        list(dict.fromkeys(projects)), layout.prefix, lock_timeout=opts.lock_timeout,
        lock_path=layout.lock_path, stops=layout.stops(metadata_dir), strict=opts.strict,
        dry_run=opts.dry_run, durable=opts.durable, log=opts.log, warn=opts.warn,
        metadata_dir=metadata_dir,
        distributions=owners,
    )
    with txn:
        stage = txn.stage(layout.prefix)
        filler = Filler(source, stage, layout.prefix, copy=opts.copy or opts.dry_run,
                        modes=modes, allow_outside=opts.follow_outside_links,
                        stage_for=txn.stage)
        try:
            filler.fill()
            for _, dest in filler.outside:
                layout.outside.append(dest)
                txn.stops.append(dest)
            listed, identity = set(), {}
            for path, staged, st in filler.entries():
                listed.add(path)
                ident = manifest_mod.identity_of(staged, st)
                if ident is not None:
                    identity[path] = ident
            files = sorted(listed)
            owners.new_files = frozenset(files)
            content = manifest_mod.render(name, opts.version, layout.prefix, files, identity)
            in_prefix = manifest is not None and manifest.startswith(layout.prefix + os.sep)
            if manifest is not None and in_prefix:
                staged_manifest = os.path.join(stage, os.path.relpath(manifest, layout.prefix))
                if os.path.basename(manifest).startswith(PRIVATE_PREFIX):
                    raise MergeError(f"{manifest}: that name is reserved by install-atomic")
                try:
                    os.makedirs(os.path.dirname(staged_manifest), exist_ok=True)
                    manifest_mod.write_file(staged_manifest, content,
                                            modes.wanted(0o100644) or 0o644)
                except OSError as exc:
                    fix = ("free space on the filesystem of" if exc.errno in (
                        errno.ENOSPC, errno.EDQUOT) else "fix the cause for")
                    raise MergeError(
                        f"cannot write the manifest {manifest} into the staging directory:"
                        f" {exc.strerror} ({exc.filename or staged_manifest}). Nothing was"
                        f" changed; {fix} {layout.prefix} and run the merge again.",
                        manifest,
                    ) from exc
            started = time.monotonic()
            result = _commit(txn, layout, opts)
            if not opts.dry_run and result.plan.steps:
                touched = {os.path.dirname(step.dest) for step in result.plan.steps}
                with contextlib.suppress(InstallAtomicError), locking.hold(
                        layout.lock_path, opts.lock_timeout):
                    sweep_resurrected(touched, layout, metadata_dir)
        except BaseException:
            if filler.moved and not txn.committed:
                if os.path.isdir(stage) and filler.restore():
                    opts.warn(f"install_atomic: the staged tree {source} was put back")
                elif filler.moves:
                    opts.warn(f"install_atomic: the staged tree {source} was consumed;"
                              " stage it again (or merge with --copy to keep it)")
            raise
    if opts.dry_run:
        return MergeOutcome(result, files, manifest, filler.moved)
    if manifest is not None and not in_prefix:
        try:
            manifest_mod.write_file(manifest, content)
        except OSError as exc:
            raise InstallAtomicError(
                f"{name} is merged into {layout.prefix}, but its manifest {manifest} could not"
                f" be written: {exc.strerror}.", manifest) from exc
    if replace is not None and replace != manifest and not replace.startswith(
            layout.prefix + os.sep) and os.path.exists(replace):
        os.unlink(replace)
    renames = f"{len(result.plan.steps)} renames" if result.plan.steps else "renames"
    opts.log(f"merged {name} into {layout.prefix}: {len(files)} files, {renames} in"
             f" {result.swap_seconds * 1e3:.2f} ms"
             f" (commit {(time.monotonic() - started) * 1e3:.0f} ms)")
    return MergeOutcome(result, files, manifest, filler.moved)


def uninstall(
    manifest: str, *, dry_run: bool = False, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    log: Logger = print, warn: Logger = _stderr,
) -> CommitResult:
    """Remove what the manifest lists (and the Python distributions it installed) in
    one transaction, keeping every file another manifest or distribution lists."""
    path = _real(manifest)
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read()
        data = json.loads(head)
        prefix, name = str(data["prefix"]), str(data.get("name") or "")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MergeError(f"cannot read the manifest {path}: {exc}. Nothing was changed.",
                         path) from exc
    if not os.path.isdir(prefix):
        raise DestinationError(f"{prefix}, the prefix {path} names, is not a directory.", prefix)
    layout = Layout.of(prefix)
    name = name or os.path.splitext(os.path.basename(path))[0]
    old = _read_manifest(path, layout, name)
    dists = manifest_mod.python_distributions(sorted(old.files or ()))
    metadata_dir = _library_of(sorted(dists)) or layout.site_packages
    txn = Transaction(
        list(dict.fromkeys([name, *dists.values()])), layout.prefix,
        lock_timeout=lock_timeout, lock_path=layout.lock_path,
        stops=layout.stops(metadata_dir), dry_run=dry_run, log=log, warn=warn,
        metadata_dir=metadata_dir,
        distributions=_Owners(layout, metadata_dir, [os.path.dirname(path)], [path],
                              (path, name), warn),
    )
    with txn:
        result = txn.commit()
    if not dry_run and not old.metadata_listed and os.path.exists(path):
        os.unlink(path)
    if not dry_run:
        log(f"uninstalled {name} from {layout.prefix}: {len(result.plan.steps)} removals")
    return result
