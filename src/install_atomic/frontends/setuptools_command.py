"""The setuptools adapter: ``python setup.py install_atomic`` and :data:`cmdclass`.

``install_atomic`` runs the stock sub-commands of ``install`` (``install_lib``,
``install_headers``, ``install_data``, ``install_egg_info``,
``install_scripts``) with every install directory pointed at a staging
directory inside the real one, then byte-compiles, writes
``installed-files.txt``, verifies and commits through
:class:`install_atomic.engine.transaction.Transaction`.

:data:`cmdclass` makes a project's own ``python setup.py install`` atomic
while leaving every ``bdist_*`` command (and so ``pip wheel``, ``pip install .``
and ``python -m build``) exactly as without it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from typing import Any, ClassVar

# setuptools first: it makes 'distutils' its own vendored copy.
import setuptools  # noqa: F401

# isort: split
import distutils.command.install as _orig
from distutils.errors import DistutilsError, DistutilsFileError, DistutilsOptionError
from distutils.util import change_root

from setuptools.command.install import install as _setuptools_install
from setuptools.command.install_egg_info import install_egg_info as _stock_install_egg_info
from setuptools.command.install_lib import install_lib as _stock_install_lib

from install_atomic.checks import bytecode, verify
from install_atomic.engine import staging
from install_atomic.engine.ownership import ROOTS_FILE
from install_atomic.engine.plan import check_inside
from install_atomic.engine.transaction import DEFAULT_LOCK_TIMEOUT, Transaction
from install_atomic.errors import InstallAtomicError

_ACTIVE = "_install_atomic_active"
#: Where the install directories a project does not use point (inside the lib stage).
UNUSED = ".install-atomic-unused"

ATOMIC_OPTIONS = [
    ("lock-timeout=", None,
     "seconds to wait for the destination lock; -1 waits forever"
     f" [default: {DEFAULT_LOCK_TIMEOUT:g}]"),
    ("dry-run", None, "print every planned move, swap and removal; change nothing"),
    ("strict", None, "refuse to replace files that another installed distribution owns"),
    ("no-verify", None, "skip the import check of the staged tree"),
    ("verify-command=", None,
     "shell command run against the staged tree before the swap; non-zero exit aborts"),
    ("pyc-mode=", None,
     "bytecode invalidation: checked-hash (default), timestamp or unchecked-hash"),
    ("no-fsync", None, "skip fsync of staged files (faster, not power-loss safe)"),
]
ATOMIC_BOOLEANS = ["dry-run", "strict", "no-verify", "no-fsync"]
SETUPTOOLS_OPTIONS = [
    ("old-and-unmanageable", None, "accepted for compatibility; always a flat install"),
    ("single-version-externally-managed", None,
     "accepted for compatibility; always a flat install"),
]


class _AtomicInstallMixin:
    """The atomic ``run`` shared by ``install_atomic`` and ``cmdclass['install']``."""

    distribution: Any
    install_lib: str | None
    install_scripts: str | None
    install_data: str | None
    install_headers: str | None
    root: str | None
    record: str | None
    single_version_externally_managed: bool | None
    skip_build: Any
    compile: int | None
    optimize: int | None
    warn_dir: Any

    def _init_atomic_options(self) -> None:
        self.lock_timeout: Any = None
        self.dry_run: Any = 0
        self.strict: Any = 0
        self.no_verify: Any = 0
        self.verify_command: str | None = None
        self.pyc_mode: str | None = None
        self.no_fsync: Any = 0

    def _finalize_atomic_options(self) -> None:
        if self.lock_timeout is None:
            self.lock_timeout = DEFAULT_LOCK_TIMEOUT
        try:
            self.lock_timeout = float(self.lock_timeout)
        except ValueError:
            raise DistutilsOptionError(
                f"--lock-timeout must be a number of seconds, not {self.lock_timeout!r}"
            ) from None
        if self.lock_timeout < 0 and self.lock_timeout != -1:
            raise DistutilsOptionError(
                f"--lock-timeout must be >= 0 (or -1 to wait forever), not {self.lock_timeout!r}"
            )
        self.pyc_mode = self.pyc_mode or bytecode.DEFAULT_MODE
        if self.pyc_mode not in bytecode.MODES:
            choices = ", ".join(sorted(bytecode.MODES))
            raise DistutilsOptionError(
                f"--pyc-mode must be one of {choices}, not {self.pyc_mode!r}"
            )
        if self.optimize is not None:
            given = self.optimize
            try:
                self.optimize = int(given)
            except ValueError:
                self.optimize = -1
            if self.optimize not in (0, 1, 2):
                raise DistutilsOptionError(f"--optimize must be 0, 1 or 2, not {given!r}")
        if not self.dry_run and getattr(self.distribution, "dry_run", False):
            self.dry_run = 1  # the global 'setup.py --dry-run' of older setuptools

    # -- the run ---------------------------------------------------------------
    def _atomic_run(self) -> None:
        try:
            self._atomic_run_inner()
        except InstallAtomicError as exc:
            raise DistutilsError(str(exc)) from exc

    def _levels(self) -> list[int]:
        levels = [0] if self.compile is None or self.compile else []
        if self.optimize:
            levels.append(int(self.optimize))
        return levels

    def _atomic_run_inner(self) -> None:
        dist = self.distribution
        if getattr(dist, "dry_run", 0):
            dist.dry_run = 0  # build for real, into a throw-away staging directory
        try:
            self._build_and_commit()
        finally:
            if self._private_build is not None:
                shutil.rmtree(self._private_build, ignore_errors=True)

    def _use_private_build(self) -> None:
        """Build into a fresh directory, so that files left in ``build/`` by another
        version of the project cannot sneak into this one (exact downgrades).  Not
        with ``--skip-build`` or when the user chose build directories.  Called before
        ``install.finalize_options``, which finalizes ``build``."""
        self._private_build: str | None = None
        dist = self.distribution
        build = dist.get_command_obj("build")
        chosen = set(dist.get_option_dict("build")) & {
            "build_base", "build_lib", "build_purelib", "build_platlib", "build_scripts"
        }
        if self.skip_build or chosen or build.finalized or dist.have_run.get("build"):
            return
        staging.sweep_build_dirs()  # those of installers killed while building
        self._private_build = tempfile.mkdtemp(prefix=staging.build_dir_prefix())
        build.build_base = self._private_build

    def _build_and_commit(self) -> None:
        dist = self.distribution
        if not self.skip_build:
            self.run_command("build")  # type: ignore[attr-defined]
        final = {
            key: os.path.normpath(os.path.abspath(str(value)))
            for key, value in (
                ("lib", self.install_lib),
                ("scripts", self.install_scripts),
                ("data", self.install_data),
                ("headers", self.install_headers),
            )
        }
        root, levels = self.root, self._levels()
        project = dist.get_name()
        lock_path = None
        if root:  # DESTDIR: keep the lock file out of the tree being packaged
            digest = hashlib.sha256(final["lib"].encode()).hexdigest()[:16]
            lock_path = os.path.join(tempfile.gettempdir(), f"install-atomic-{digest}.lock")
        txn = Transaction(
            project,
            final["lib"],
            lock_timeout=self.lock_timeout,
            lock_path=lock_path,
            stops=list(final.values()),
            strict=bool(self.strict),
            dry_run=bool(self.dry_run),
            durable=not self.no_fsync,
            log=print,
        )
        self._check_data_files(final["data"])  # before anything is created
        with txn:
            stage_lib = txn.stage(final["lib"])
            self.install_lib = stage_lib
            self.install_scripts = self._stage_if(txn, final["scripts"], self._has_scripts())
            self.install_data = self._stage_if(txn, final["data"], bool(dist.data_files))
            self.install_headers = self._stage_if(txn, final["headers"], bool(dist.headers))
            self._stage_absolute_data_files(txn, root)
            self.root = None
            self.compile, self.optimize = 0, 0
            # Flat install as pip's legacy path did: pkg_resources-style namespace
            # __init__.py files are replaced by the egg-info's -nspkg.pth.
            self.single_version_externally_managed = True
            setattr(dist, _ACTIVE, True)
            previous = dist.command_obj.get("install")
            dist.command_obj["install"] = self  # sub-commands read their dirs from 'install'
            try:
                names = self.get_sub_commands()  # type: ignore[attr-defined]
                for name in names:
                    dist.reinitialize_command(name)
                self._check_staged(txn, names)
                for name in names:
                    self.run_command(name)  # type: ignore[attr-defined]
            except (OSError, DistutilsFileError) as exc:  # DistutilsFileError: "could not write"
                reason = (
                    f"{exc.strerror} ({exc.filename or final['lib']})"
                    if isinstance(exc, OSError)
                    else str(exc)
                )
                raise DistutilsError(
                    f"install_atomic: staging the new version failed: {reason}. Nothing was"
                    " changed in the destination. Free space or fix permissions on that"
                    " filesystem, then run the install again."
                ) from exc
            finally:
                setattr(dist, _ACTIVE, False)
                if previous is not None:
                    dist.command_obj["install"] = previous
            unused = os.path.join(stage_lib, UNUSED)
            if os.path.isdir(unused) and os.listdir(unused):
                raise DistutilsError(
                    f"install_atomic: a sub-command wrote {os.listdir(unused)} although the"
                    " project declares no scripts, data_files or headers for it; refusing to"
                    " drop them. Please report this with the project's setup.py."
                )
            if levels:
                # Code objects name the path the file has at run time: without DESTDIR.
                code_path = _strip_root(final["lib"], root)
                ok = bytecode.compile_tree(stage_lib, code_path, optimize=levels,
                                           mode=str(self.pyc_mode))
                if not ok:
                    print("install_atomic: warning: some files could not be byte-compiled"
                          " (errors above); they are installed without bytecode",
                          file=sys.stderr)
            self._write_installed_files(txn, [_strip_root(d, root) for d in final.values()])
            if not self.no_verify:
                print(f"install_atomic: checking that {project} imports from the staged tree")
                verify.check_imports(stage_lib, final["lib"])
            if self.verify_command:
                print(f"install_atomic: running {self.verify_command!r} against the staged tree")
                verify.run_command(self.verify_command, stage_lib, final["lib"])
            outputs = [final_path for _, final_path in txn.staged_files()]
            result = txn.commit()
        if self.record and not self.dry_run:
            self._write_record(outputs, root)
        if not result.dry_run:
            version = dist.get_version()
            print(
                f"install_atomic: installed {project} {version} into {final['lib']}:"
                f" {len(result.plan.steps)} renames in {result.swap_seconds * 1e3:.2f} ms"
            )

    def _check_staged(self, txn: Transaction, names: list[str]) -> None:
        """Refuse to run a sub-command that would write outside the staging directories."""
        stages = [stage for stage, _ in txn.roots]
        for name in names:
            cmd = self.get_finalized_command(name)  # type: ignore[attr-defined]
            for attr in ("install_dir", "target"):
                path = getattr(cmd, attr, None)
                if not isinstance(path, str):
                    continue
                path = os.path.abspath(path)
                if not any(path == s or path.startswith(s + os.sep) for s in stages):
                    raise DistutilsError(
                        f"install_atomic: {name}.{attr} is {path}, outside the staging"
                        " directories; refusing to write into the live destination. This is a"
                        " bug in install-atomic or a conflicting custom command: please report"
                        " it with the project's setup.py."
                    )

    def _has_scripts(self) -> bool:
        dist = self.distribution
        eps = getattr(dist, "entry_points", None) or {}
        if isinstance(eps, dict):
            has_eps = bool(eps.get("console_scripts") or eps.get("gui_scripts"))
        else:
            has_eps = True
        return bool(dist.scripts) or has_eps

    def _stage_if(self, txn: Transaction, destination: str, needed: bool) -> str:
        if needed:
            return txn.stage(destination)
        return os.path.join(txn.stage(txn.primary), UNUSED)

    def _check_data_files(self, data_dir: str) -> None:
        """Refuse relative ``data_files`` directories that lead out of the data directory
        (``..``, or a symlink there), naming the real destination, before any staging
        directory exists."""
        for item in self.distribution.data_files or []:
            if isinstance(item, tuple) and not os.path.isabs(item[0]):
                check_inside(os.path.join(data_dir, item[0]), data_dir)

    def _stage_absolute_data_files(self, txn: Transaction, root: str | None) -> None:
        """Point absolute ``data_files`` directories at staging directories of their own."""
        data_files = self.distribution.data_files or []
        rewritten = []
        for item in data_files:  # relative ones were checked by _check_data_files
            if isinstance(item, tuple) and os.path.isabs(item[0]):
                target = change_root(root, item[0]) if root else item[0]
                rewritten.append((txn.stage(target), item[1]))
                continue
            rewritten.append(item)
        self.distribution.data_files = rewritten

    def _write_installed_files(self, txn: Transaction, roots: list[str]) -> None:
        """Write ``installed-files.txt`` (every file, relative to the egg-info, as pip
        expects) and ``install-atomic-roots.txt`` (the install directories, so that
        an uninstall never removes them) into the staged egg-info."""
        egg_info = self.get_finalized_command("install_egg_info").target  # type: ignore[attr-defined]
        with open(os.path.join(egg_info, ROOTS_FILE), "w", encoding="utf-8") as f:
            f.write("".join(r + "\n" for r in sorted(set(roots))))
        listing = os.path.join(egg_info, "installed-files.txt")
        final_egg_info = txn.final_path(egg_info)
        lines = sorted(
            os.path.relpath(final_path, final_egg_info)
            for _, final_path in txn.staged_files()
        )
        lines.append(os.path.relpath(txn.final_path(listing), final_egg_info))
        with open(listing, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in sorted(set(lines))))

    def _write_record(self, outputs: list[str], root: str | None) -> None:
        outputs = [_strip_root(o, root) for o in outputs]
        assert self.record is not None
        with open(self.record, "w", encoding="utf-8") as f:
            f.write("".join(o + "\n" for o in sorted(outputs)))


def _strip_root(path: str, root: str | None) -> str:
    """*path* as it will be seen at run time, without ``--root`` (DESTDIR)."""
    if not root:
        return path
    root_n = os.path.normpath(os.path.abspath(root))
    if path.startswith(root_n + os.sep):
        return path[len(root_n):]
    return path


class install_atomic(_AtomicInstallMixin, _orig.install):  # noqa: N801 - setuptools naming
    """``python setup.py install_atomic``: everything ``install`` installs, atomically."""

    description = "install everything atomically: stage, verify, lock, swap into place"
    user_options: ClassVar[list[tuple[str, str | None, str]]] = [
        *_orig.install.user_options,
        *SETUPTOOLS_OPTIONS,
        *ATOMIC_OPTIONS,
    ]
    boolean_options: ClassVar[list[str]] = (
        [
            *_orig.install.boolean_options,
            "old-and-unmanageable",
            "single-version-externally-managed",
            *ATOMIC_BOOLEANS,
        ]
    )
    sub_commands = _setuptools_install.sub_commands

    def initialize_options(self) -> None:
        _orig.install.initialize_options(self)
        self.old_and_unmanageable = None
        self.single_version_externally_managed = None
        self._init_atomic_options()

    def finalize_options(self) -> None:
        self._use_private_build()
        _orig.install.finalize_options(self)
        self._finalize_atomic_options()

    def run(self) -> None:
        self._atomic_run()


class install(_AtomicInstallMixin, _setuptools_install):  # noqa: N801
    """``cmdclass['install']``: atomic when a user runs ``setup.py install``.

    Under ``bdist_wheel`` / ``bdist_dumb`` (which set ``warn_dir`` false on the
    install command they reinitialise) it is setuptools' own ``install``.
    """

    user_options: ClassVar[list[tuple[str, str | None, str]]] = (
        _setuptools_install.user_options + ATOMIC_OPTIONS
    )
    boolean_options: ClassVar[list[str]] = _setuptools_install.boolean_options + ATOMIC_BOOLEANS

    def initialize_options(self) -> None:
        _setuptools_install.initialize_options(self)
        self._init_atomic_options()

    def finalize_options(self) -> None:
        self._private_build = None
        if self.warn_dir:  # not under a bdist_* command: see run()
            self._use_private_build()
        _setuptools_install.finalize_options(self)
        self._finalize_atomic_options()

    def run(self) -> None:
        if not self.warn_dir:  # reinitialised by a bdist_* command: stock behaviour
            _setuptools_install.run(self)
            return
        self._atomic_run()


class install_lib(_stock_install_lib):  # noqa: N801
    """``cmdclass['install_lib']``: inside an atomic install, byte-compilation is
    deferred to the staged tree (so ``co_filename`` is the final path); anywhere
    else (``bdist_egg`` calls it directly) it is setuptools' own."""

    def byte_compile(self, files: list[str]) -> None:
        if getattr(self.distribution, _ACTIVE, False):
            return
        _stock_install_lib.byte_compile(self, files)


class install_egg_info(_stock_install_egg_info):  # noqa: N801
    """``cmdclass['install_egg_info']``: inside an atomic install the egg-info is
    written only into the staging directory, fresh (a stale one left there is
    an error, not something to delete); anywhere else setuptools' own."""

    def run(self) -> None:
        if getattr(self.distribution, _ACTIVE, False) and os.path.lexists(self.target):
            raise DistutilsError(
                f"install_atomic: {self.target} already exists in the staging directory;"
                " refusing to overwrite it"
            )
        _stock_install_egg_info.run(self)


#: ``setup(cmdclass=cmdclass)``: atomic ``setup.py install``, stock bdists.
cmdclass: dict[str, type] = {
    "install": install,
    "install_lib": install_lib,
    "install_egg_info": install_egg_info,
}

__all__ = ["cmdclass", "install", "install_atomic", "install_egg_info", "install_lib"]

