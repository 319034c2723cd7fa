"""The Python API: :func:`install` and :func:`uninstall`, from inside a running program.

``install_atomic.install("requests>=2", upgrade=True)`` does what
``install-atomic install -U 'requests>=2'`` does, into the environment of the
running interpreter unless told otherwise (``python=``, ``target=``,
``prefix=``, ``user=``, ``root=``), and returns an :class:`InstallResult`.
Errors are :class:`~install_atomic.errors.InstallAtomicError` subclasses (a
bad argument: ``TypeError`` / ``ValueError``); nothing calls ``sys.exit``.

**Deferred commits.**  A program that has imported a distribution keeps
using that version: it may import more of it later (a submodule loaded
lazily), and a swap under it would load the new version's modules into the
old package.  So when a distribution being replaced has modules imported in
the calling process, :func:`install` builds, stages, byte-compiles and checks
the new set now and *defers* the commit (``defer=True`` forces that,
``now=True`` forbids it).  The staging directories stay locked by this
process until it exits, so nothing it loaded or will load changes under it;
the commit then happens at the next start of an interpreter of that
environment, by ``install-atomic commit-pending``, or by the next install
there.  The result says so (:attr:`InstallResult.deferred`), and a
:class:`PendingInstallWarning` tells the program that a restart picks up the
new version.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from install_atomic.checks import bytecode
from install_atomic.engine.transaction import DEFAULT_LOCK_TIMEOUT, Transaction
from install_atomic.frontends.wheels import install as wheel_install
from install_atomic.frontends.wheels.resolve import PipOptions

__all__ = [
    "DistributionChange",
    "InstallResult",
    "PendingInstallWarning",
    "Rename",
    "UninstallResult",
    "install",
    "uninstall",
]

#: Deferred transactions of this process: they hold their staging directories until
#: it exits (their owner files' locks are released with the process).
_HELD: list[Transaction] = []


class PendingInstallWarning(UserWarning):
    """An install was deferred: this process keeps the versions it has; a restart
    picks up the new ones."""


@dataclass(frozen=True)
class DistributionChange:
    name: str
    #: The versions installed before (empty for a new distribution).
    old_versions: tuple[str, ...]
    new_version: str


@dataclass(frozen=True)
class Rename:
    """One step of a commit: ``add``, ``swap`` or ``remove`` of a top-level entry."""

    action: str
    path: str


@dataclass(frozen=True)
class InstallResult:
    #: The library directory installed into.
    destination: str
    distributions: tuple[DistributionChange, ...]
    #: The renames the commit made (empty when deferred, or for a dry run: planned).
    renames: tuple[Rename, ...]
    #: True when the commit was left pending (see the module docstring).
    deferred: bool
    #: The pending install's id (``install-atomic status`` lists it), when deferred.
    pending_id: str | None
    #: Top-level modules of replaced distributions this process has imported.
    loaded_modules: tuple[str, ...]
    dry_run: bool
    #: In a generations environment: the generation the install built and made
    #: current.  This process stays on the generation it started with.
    generation: int | None = None

    @property
    def restart_needed(self) -> bool:
        """True when this process still runs the old versions of what was installed."""
        if self.generation is not None:  # this process keeps the generation it started with
            import sysconfig

            return os.path.realpath(sysconfig.get_paths()["purelib"]) == \
                os.path.realpath(self.destination)
        return self.deferred or bool(self.loaded_modules)


@dataclass(frozen=True)
class UninstallResult:
    destination: str
    names: tuple[str, ...]
    renames: tuple[Rename, ...]
    dry_run: bool
    #: In a generations environment: the generation made current.
    generation: int | None = None


def install(
    *specs: str,
    requirements: Iterable[str] = (),
    constraints: Iterable[str] = (),
    no_deps: bool = False,
    upgrade: bool = False,
    force_reinstall: bool = False,
    pre: bool = False,
    no_index: bool = False,
    index_url: str | None = None,
    extra_index_urls: Iterable[str] = (),
    find_links: Iterable[str] = (),
    no_build_isolation: bool = False,
    python: str | None = None,
    target: str | None = None,
    prefix: str | None = None,
    user: bool = False,
    root: str | None = None,
    dry_run: bool = False,
    compile: bool = True,
    pyc_mode: str = bytecode.DEFAULT_MODE,
    verify: bool = True,
    verify_deep: bool = False,
    verify_command: str | None = None,
    verify_timeout: float = 600.0,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    strict: bool = False,
    fsync: bool = True,
    report: str | None = None,
    quiet: bool = True,
    verbose: int = 0,
    defer: bool | None = None,
    now: bool = False,
) -> InstallResult:
    """Install *specs* (wheel files, sdists, project directories, requirements, URLs) and
    what they require, as one transaction; the keyword arguments are the options of
    ``install-atomic install``.  *quiet* (the default) prints only warnings.

    *defer*: None (the default) defers the commit when a distribution being replaced
    has modules imported in this process, True always, False never (also *now*).
    """
    if not specs and not requirements:
        raise ValueError("nothing to install: give a wheel, an sdist, a project directory,"
                         " a requirement, or requirements=[FILE]")
    for spec in specs:
        if not isinstance(spec, str):
            raise TypeError(f"a spec is a string, not {type(spec).__name__}: {spec!r}")
    if lock_timeout < 0 and lock_timeout != -1:
        raise ValueError("lock_timeout must be >= 0, or -1 (wait forever)")
    if verify_timeout <= 0 and verify_timeout != -1:
        raise ValueError("verify_timeout must be > 0, or -1 (no limit)")
    if pyc_mode not in bytecode.MODES:
        raise ValueError(f"pyc_mode must be one of {', '.join(sorted(bytecode.MODES))}")
    if now and defer:
        raise ValueError("now=True and defer=True contradict each other")
    opts = wheel_install.InstallOptions(
        specs=list(specs),
        pip=PipOptions(
            requirements=list(requirements), constraints=list(constraints), no_deps=no_deps,
            upgrade=upgrade, force_reinstall=force_reinstall, no_index=no_index,
            index_url=index_url, extra_index_urls=list(extra_index_urls),
            find_links=list(find_links), no_build_isolation=no_build_isolation, pre=pre,
            verbose=verbose,
        ),
        python=python, target_dir=target, prefix=prefix, user=user, root=root,
        dry_run=dry_run, no_verify=not verify, verify_deep=verify_deep,
        verify_command=verify_command, verify_timeout=verify_timeout,
        lock_timeout=lock_timeout, strict=strict, no_fsync=not fsync, pyc_mode=pyc_mode,
        compile=compile, report=report, quiet=1 if quiet else 0, verbose=verbose,
        defer=bool(defer), hold=True,
        auto_defer=defer is None and not now,
    )
    out = wheel_install.install(opts)
    if out.transaction is not None:
        _HELD.append(out.transaction)
    changes = tuple(
        DistributionChange(item.name, tuple(out.old_versions.get(item.key, [])), item.version)
        for item in out.items
    )
    steps = out.result.plan.steps if out.result is not None else []
    result = InstallResult(
        destination=out.destination,
        distributions=changes,
        renames=tuple(Rename(s.action, s.dest) for s in steps),
        deferred=out.pending is not None,
        pending_id=out.pending.txid if out.pending is not None else None,
        loaded_modules=tuple(out.loaded_modules),
        dry_run=dry_run,
        generation=out.result.generation if out.result is not None else None,
    )
    if result.deferred:
        where = ("the next start of a Python interpreter of this environment after this"
                 " process exits" if out.hooked else "'install-atomic commit-pending"
                 f" {out.destination}'")
        what = out.pending.description if out.pending else ""
        kept = ", ".join(out.loaded_modules) or "none"
        warnings.warn(
            f"install-atomic deferred the install of {what}: this process keeps the versions"
            f" it has loaded (of {kept}); restart it to use the new ones. The commit happens"
            f" at {where}, or at the next install there.",
            PendingInstallWarning,
            stacklevel=2,
        )
    elif result.loaded_modules and not dry_run:
        warnings.warn(
            f"install-atomic replaced {', '.join(result.loaded_modules)}, which this process"
            " has imported (now=True): restart it to use the new versions consistently.",
            PendingInstallWarning,
            stacklevel=2,
        )
    return result


def uninstall(
    *names: str,
    target: str | None = None,
    dry_run: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    quiet: bool = True,
) -> UninstallResult:
    """Remove the distributions *names* (as ``pip list`` names them) from *target*
    (default: this interpreter's site-packages) in one transaction."""
    import sysconfig

    from install_atomic.frontends.uninstall import uninstall as run

    directory = os.path.realpath(target or sysconfig.get_paths()["purelib"])
    result = run(list(names), directory, dry_run=dry_run, lock_timeout=lock_timeout,
                 log=_quiet if quiet else print)
    return UninstallResult(directory, tuple(names),
                           tuple(Rename(s.action, s.dest) for s in result.plan.steps), dry_run,
                           result.generation)


def _quiet(_message: str) -> None:
    return None
