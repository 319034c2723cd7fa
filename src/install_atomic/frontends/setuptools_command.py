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

import importlib
import os
import re
import runpy
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any, ClassVar

# setuptools first: it makes 'distutils' its own vendored copy.
import setuptools

# isort: split
import distutils.command.install as _orig
from distutils.errors import DistutilsError, DistutilsFileError, DistutilsOptionError
from distutils.util import change_root

from setuptools.command.install import install as _setuptools_install
from setuptools.command.install_egg_info import install_egg_info as _stock_install_egg_info
from setuptools.command.install_lib import install_lib as _stock_install_lib

from install_atomic.checks import bytecode, verify
from install_atomic.engine import locking, staging
from install_atomic.engine.ownership import ROOTS_FILE
from install_atomic.engine.plan import check_inside
from install_atomic.engine.transaction import DEFAULT_LOCK_TIMEOUT, Transaction
from install_atomic.errors import InstallAtomicError
from install_atomic.frontends.deferred import commits

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
    ("verify-deep", None,
     "import every module of the staged tree, not only the top-level ones"),
    ("verify-command=", None,
     "shell command run against the staged tree before the swap; non-zero exit aborts"),
    ("verify-timeout=", None,
     "seconds the import check, and then --verify-command, may each run; -1 for no limit"
     f" [default: {verify.DEFAULT_TIMEOUT:g}]"),
    ("pyc-mode=", None,
     "bytecode invalidation: checked-hash (default), timestamp or unchecked-hash"),
    ("no-fsync", None, "skip fsync of staged files (faster, not power-loss safe)"),
]
ATOMIC_BOOLEANS = ["dry-run", "strict", "no-verify", "verify-deep", "no-fsync"]
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
        self.verify_deep: Any = 0
        self.verify_command: str | None = None
        self.verify_timeout: Any = None
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
        if self.verify_timeout is None:
            self.verify_timeout = verify.DEFAULT_TIMEOUT
        try:
            self.verify_timeout = float(self.verify_timeout)
        except ValueError:
            raise DistutilsOptionError(
                f"--verify-timeout must be a number of seconds, not {self.verify_timeout!r}"
            ) from None
        if self.verify_timeout <= 0 and self.verify_timeout != -1:
            raise DistutilsOptionError(
                f"--verify-timeout must be > 0 (or -1 for no limit), not {self.verify_timeout!r}"
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

    def _refuse_other_backend(self) -> None:
        """Refuse, before anything is built, a project whose ``pyproject.toml`` names a
        build backend other than setuptools: what setuptools would install from it is
        not that project (tomlkit, a poetry-core project, comes out as "tomlkit 0.0.0")."""
        script = getattr(self.distribution, "script_name", None) or ""
        project_dir = os.path.dirname(os.path.abspath(script)) if os.path.isfile(script) \
            else os.getcwd()
        found = other_build_backend(project_dir)
        if found is not None:
            raise DistutilsOptionError(other_backend_message(*found))

    def _header_choices(self) -> bool:
        """Did the user choose where headers go (before ``finalize_options``)?"""
        return any(getattr(self, name, None) for name in _HEADER_CHOICES)

    def _headers_as_pip(self, chosen: bool) -> None:
        """In a virtual environment, without an option choosing the headers' place, put
        them where pip does (after ``finalize_options``; ``--root`` applies)."""
        if chosen or not in_virtual_environment():
            return
        headers = pip_headers_dir(self.distribution.get_name())
        self.install_headers = change_root(self.root, headers) if self.root else headers

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
            if not dist.have_run.get("build_py"):
                _byte_compile_only_if_asked(dist.get_command_obj("build_py"))
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
        txn = Transaction(
            project,
            final["lib"],
            lock_timeout=self.lock_timeout,
            # <venv>/.lock in a virtual environment, else a file outside every tree that
            # could be packaged (--root, --prefix, --home): see engine.locking.
            lock_path=locking.lock_path_for(final["lib"], detached=True),
            stops=list(final.values()),
            strict=bool(self.strict),
            dry_run=bool(self.dry_run),
            durable=not self.no_fsync,
            log=print,
        )
        self._check_data_files(final["data"])  # before anything is created
        if not self.dry_run:  # the next install into a destination commits what waits there
            for done in commits.commit_all(final["lib"], lock_timeout=self.lock_timeout,
                                           log=print, warn=print):
                if done.outcome in ("held", "failed"):
                    print(f"install_atomic: the pending install of {done.record.description}"
                          f" stays pending: {done.detail}")
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
                    cmd = dist.reinitialize_command(name)
                    if name == "install_lib":  # compile and optimize are 0 (see above)
                        _byte_compile_only_if_asked(cmd)
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
                names = verify.all_modules(stage_lib) if self.verify_deep else None
                verify.check_imports(stage_lib, final["lib"], names,
                                     timeout=self.verify_timeout, log=print)
            if self.verify_command:
                print(f"install_atomic: running {self.verify_command!r} against the staged tree")
                verify.run_command(self.verify_command, stage_lib, final["lib"],
                                   timeout=self.verify_timeout, log=print)
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


def _byte_compile_only_if_asked(cmd: Any) -> None:
    """Make *cmd* (``build_py``, ``install_lib``) call its ``byte_compile`` only when its
    own ``compile`` or ``optimize`` option asks for bytecode.  install-atomic compiles
    the staged tree itself, with the final paths; the stock ``byte_compile`` would
    compile nothing but warn "byte-compiling is disabled, skipping" under
    ``PYTHONDONTWRITEBYTECODE`` (every install on some machines)."""
    stock = cmd.byte_compile

    def byte_compile(files: list[str]) -> None:
        if cmd.compile or cmd.optimize:
            stock(files)

    cmd.byte_compile = byte_compile


# -- headers -------------------------------------------------------------------

#: Options that choose where headers go; without any, in a virtual environment,
#: headers go where pip puts them.
_HEADER_CHOICES = ("install_headers", "prefix", "exec_prefix", "home", "install_base",
                   "install_platbase", "user")


def in_virtual_environment() -> bool:
    """True when this interpreter runs in a virtual environment (``venv`` or virtualenv)."""
    return sys.prefix != getattr(sys, "base_prefix", sys.prefix) or hasattr(sys, "real_prefix")


def pip_headers_dir(dist_name: str) -> str:
    """Where pip installs *dist_name*'s headers in this virtual environment:
    ``<venv>/include/site/pythonX.Y/<dist_name>`` (distutils' scheme says
    ``<venv>/include/pythonX.Y/<dist_name>``)."""
    python_xy = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return os.path.join(os.path.normpath(sys.prefix), "include", "site", python_xy, dist_name)


# -- build backends --------------------------------------------------------------

#: What to run for a project that setuptools does not build.
OTHER_BACKEND_WAY_OUT = "install it with `install-atomic install .` (any PEP 517 backend)"


def _load_toml(text: str) -> dict[str, Any] | None:
    """Parse TOML with the standard library's ``tomllib`` (3.11+) or a ``tomli``
    (installed, or setuptools' vendored copy); None when none is available or the
    text is not TOML."""
    for name in ("tomllib", "tomli", "setuptools.extern.tomli", "setuptools._vendor.tomli"):
        try:
            toml = importlib.import_module(name)
        except ImportError:
            continue
        try:
            data = toml.loads(text)
        except ValueError:  # tomllib.TOMLDecodeError
            return None
        return data if isinstance(data, dict) else None
    return None


_BACKEND_LINE = re.compile(r"""^\s*build-backend\s*=\s*["']([^"']+)["']""", re.MULTILINE)
_BUILD_SYSTEM = re.compile(r"^\s*\[\s*build-system\s*\]\s*$", re.MULTILINE)
_TABLE = re.compile(r"^\s*\[", re.MULTILINE)


def _build_system(text: str) -> tuple[str | None, list[str]]:
    """``[build-system]``'s build-backend and backend-path."""
    data = _load_toml(text)
    if data is not None:
        table = data.get("build-system")
        if not isinstance(table, dict):
            return None, []
        backend = table.get("build-backend")
        paths = table.get("backend-path") or []
        return (
            backend if isinstance(backend, str) else None,
            [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else [],
        )
    # No TOML parser (Python < 3.11 without tomli): the build-backend line of the table.
    header = _BUILD_SYSTEM.search(text)
    if header is None:
        return None, []
    following = _TABLE.search(text, header.end())
    body = text[header.end(): following.start() if following else len(text)]
    line = _BACKEND_LINE.search(body)
    return (line.group(1) if line else None), []


def _wraps_setuptools(project_dir: str, backend: str, backend_path: list[str]) -> bool:
    """An in-tree backend (``backend-path``) whose module uses setuptools' backend."""
    parts = backend.split(":")[0].strip().split(".")
    for directory in backend_path:
        base = os.path.join(project_dir, directory, *parts)
        for candidate in (base + ".py", os.path.join(base, "__init__.py")):
            try:
                with open(candidate, "rb") as f:
                    if b"setuptools" in f.read(1 << 20):
                        return True
            except OSError:
                continue
    return False


def other_build_backend(project_dir: str) -> tuple[str, str] | None:
    """(``pyproject.toml`` path, backend) when the project in *project_dir* names a PEP 517
    build backend that is not setuptools (poetry-core, hatchling, flit_core, ...); None
    for setuptools projects (no ``pyproject.toml``, no ``build-backend``,
    ``setuptools.build_meta``, or an in-tree backend wrapping it)."""
    pyproject = os.path.join(os.path.abspath(project_dir), "pyproject.toml")
    try:
        with open(pyproject, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return None
    backend, backend_path = _build_system(text)
    if not backend:
        return None  # PEP 517: no backend means setuptools' legacy one
    if backend.split(":")[0].strip().split(".")[0] == "setuptools":
        return None
    if backend_path and _wraps_setuptools(project_dir, backend, backend_path):
        return None
    return pyproject, backend


def other_backend_message(pyproject: str, backend: str) -> str:
    return (
        f"install_atomic: {pyproject} names the build backend {backend!r} ([build-system]"
        " build-backend), not setuptools: `setup.py install_atomic` installs only setuptools"
        " projects (setuptools would build something else from this tree, or nothing)."
        f" Nothing was built or changed; {OTHER_BACKEND_WAY_OUT}."
    )


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
        self._refuse_other_backend()
        chosen = self._header_choices()
        self._use_private_build()
        _orig.install.finalize_options(self)
        self._headers_as_pip(chosen)
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
        chosen = self._header_choices()
        if self.warn_dir:  # not under a bdist_* command: see run()
            self._refuse_other_backend()
            self._use_private_build()
        _setuptools_install.finalize_options(self)
        if self.warn_dir:
            self._headers_as_pip(chosen)
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



def main(argv: Sequence[str] | None = None) -> int:
    """``python -m install_atomic.frontends.setuptools_command install_atomic [OPTIONS]``.

    Runs the project in the current directory as ``python setup.py ARGS`` would (its
    ``setup.py``, or, without one, ``setuptools.setup()`` reading ``setup.cfg`` and
    ``pyproject.toml``), after checking that setuptools is its build backend: a
    ``pyproject.toml`` that setuptools cannot read (hatchling's ``attrs``) is then
    refused with the way out, not with a traceback from setuptools."""
    args = list(sys.argv[1:] if argv is None else argv)
    found = other_build_backend(os.getcwd())
    if found is not None:
        print(f"error: {other_backend_message(*found)}", file=sys.stderr)
        return 1
    if os.path.isfile("setup.py"):
        sys.argv = ["setup.py", *args]
        runpy.run_path("setup.py", run_name="__main__")
    else:
        setuptools.setup(script_name="setup.py", script_args=args)
    return 0


__all__ = [
    "cmdclass",
    "install",
    "install_atomic",
    "install_egg_info",
    "install_lib",
    "main",
    "other_build_backend",
]

if __name__ == "__main__":
    sys.exit(main())

