"""Checks run against the staged tree before anything is swapped in.

Both run in a fresh interpreter that sees the staged library directory and
then the destination (so the new version's other dependencies resolve as
they will after the install): ``--verify-command`` through ``PYTHONPATH``,
first; the import check in the interpreter's order, standard library first,
the staged tree where the site directory would be.  Bytecode writing is
disabled (``PYTHONDONTWRITEBYTECODE``), so the checks cannot leave pycs with
staging paths behind, and the working directory is a private empty one, so a
project's source checkout cannot shadow the staged tree.

A ``--verify-command`` may still put a source checkout first on ``sys.path``
(``cd src && python -c ...``; pytest inserting a test file's directory).  So
the project's modules are pinned to the staged tree: every Python process the
command starts imports a ``sitecustomize`` from a private directory first on
``PYTHONPATH``, which puts a finder at the head of ``sys.meta_path`` that
resolves the staged top-level modules (and the modules inside their
namespace packages) from the staged tree only, records which file each came
from, and then hands over to the environment's own ``sitecustomize``.  The
import check and the command both report where the project was imported
from.  Processes started with ``-S``, ``-I`` or ``-E`` skip the hook, and
standard-library names are never pinned.

Each check is stopped after *timeout* seconds (default
:data:`DEFAULT_TIMEOUT`; a negative timeout means no limit).

Neither may outlive the installer: each runs through
:func:`install_atomic.children.run_in_own_group` (a session and process group
of its own, killed whole on a timeout, on an exception such as Ctrl-C, and
once the check has exited; on Linux the direct child also gets ``SIGKILL``
from the kernel the moment the installer dies).  The limits are that
module's: when the installer itself is killed, the processes that a
``--verify-command`` shell command started survive it unless the command
``exec``-s its last program (its own children survive all the same); the
same holds for processes started by modules the import check imports.
Being in a session of its own, a check has no controlling terminal.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from importlib.machinery import EXTENSION_SUFFIXES

from install_atomic import children
from install_atomic.errors import VerificationError

#: Seconds each check (the import check, ``--verify-command``) may run.
DEFAULT_TIMEOUT = 600.0

_MISSING = re.compile(r"install_atomic: missing dependency: (\S+)")
#: How the import check reports where it imported a module from (one JSON list a line).
_ORIGIN = "install_atomic-imported-from:"
#: The command's working directory, and the directory of its ``sitecustomize`` hook.
WORKDIR = ".install-atomic-verify"
HOOK_DIR = ".install-atomic-verify-hook"
_IMPORTED = "imported.jsonl"

_IMPORT_ALL = r"""
import importlib, importlib.machinery, json, os, site, sys, traceback
stage, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
# Top-level names of the destination that the install removes: found in the staged
# tree or nowhere, as after the install.
hidden = set(json.loads(os.environ.pop("INSTALL_ATOMIC_REMOVED", "[]")))


class _Removed:
    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if path is not None or fullname not in hidden:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, [stage])
        if spec is None:
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (this install removes it)", name=fullname)
        return spec


sys.meta_path.insert(0, _Removed)
# The interpreter's order: the standard library first, then the staged tree where the
# destination will be (a stale statistics.py in site-packages must not shadow the
# standard library's, as it does not after the install).
sys.path[:] = [p for p in sys.path if p not in (stage, dest)]
sites = set(site.getsitepackages()) | {site.getusersitepackages()}
at = next((i for i, p in enumerate(sys.path) if p in sites), len(sys.path))
sys.path[at:at] = [stage, dest]
tops = {n.split(".")[0] for n in names}
failed = 0
for name in names:
    try:
        module = importlib.import_module(name)
        where = getattr(module, "__file__", None) or list(getattr(module, "__path__", [""]))[0]
        print("install_atomic-imported-from:" + json.dumps([name, where]), flush=True)
    except ModuleNotFoundError as exc:
        failed += 1
        missing = (exc.name or "").split(".")[0]
        if missing and missing not in tops and missing not in hidden:
            print(f"install_atomic: missing dependency: {missing} (imported by {name})",
                  file=sys.stderr)
        else:
            print(f"install_atomic: importing {name!r} from the staged tree failed:",
                  file=sys.stderr)
            traceback.print_exc()
    except BaseException:
        failed += 1
        print(f"install_atomic: importing {name!r} from the staged tree failed:", file=sys.stderr)
        traceback.print_exc()
sys.exit(1 if failed else 0)
"""

#: Packages that hold a project's tests: their extension modules are not imported (a
#: test package may need test-only dependencies, as greenlet's imports psutil).
TEST_PACKAGES = frozenset({"test", "tests", "testing"})


def _is_extension_module(path: str, stem: str) -> bool:
    """True if the shared library *path* exports ``PyInit_<stem>``: only then does the
    import system load it as an extension module.  Libraries loaded with ctypes
    (pycryptodome's ``_raw_aes.abi3.so``) do not, and are not imported."""
    try:
        with open(path, "rb") as f:
            return b"PyInit_" + stem.encode() in f.read()
    except OSError:
        return True  # let the import say what is wrong


def _declares_namespace(init: str) -> bool:
    try:
        with open(init, encoding="utf-8", errors="replace") as f:
            text = f.read(4096)
    except OSError:
        return False
    return "extend_path" in text or "declare_namespace" in text


def importable_names(stage_lib: str) -> list[str]:
    """Top-level modules and packages in *stage_lib*; namespace dirs are descended into.

    Then every extension module at any depth (see :func:`project_modules` for the
    first part alone)."""
    names = project_modules(stage_lib)
    # Extension modules anywhere in a package: a package's __init__ need not import them.
    for dirpath, dirnames, filenames in os.walk(stage_lib):
        dirnames[:] = [d for d in dirnames if d.isidentifier() and d not in TEST_PACKAGES]
        rel = os.path.relpath(dirpath, stage_lib)
        if rel == ".":
            continue
        prefix = rel.replace(os.sep, ".") + "."
        for entry in sorted(filenames):
            suffix = next((s for s in EXTENSION_SUFFIXES if entry.endswith(s)), None)
            if suffix is None:
                continue
            stem = entry[: -len(suffix)]
            if (
                stem.isidentifier()
                and prefix + stem not in names
                and _is_extension_module(os.path.join(dirpath, entry), stem)
            ):
                names.append(prefix + stem)
    return names


def project_modules(stage_lib: str) -> list[str]:
    """The project's own modules in *stage_lib*: top-level modules and packages, and,
    inside namespace packages (PEP 420 directories, pkgutil or pkg_resources
    ``__init__.py``), the modules and packages there.  These are what the checks
    report the origin of and what a ``--verify-command`` imports from the stage."""
    names: list[str] = []

    def visit(directory: str, prefix: str) -> None:
        for entry in sorted(os.listdir(directory)):
            path = os.path.join(directory, entry)
            if entry.startswith(".") or entry == "__pycache__":
                continue
            if os.path.isdir(path):
                if not entry.isidentifier():
                    continue
                init = os.path.join(path, "__init__.py")
                if not os.path.exists(init):  # PEP 420 namespace: check what is inside
                    visit(path, prefix + entry + ".")
                    continue
                names.append(prefix + entry)
                if _declares_namespace(init):  # pkgutil / pkg_resources style
                    visit(path, prefix + entry + ".")
            else:
                stem, _, suffix = entry.partition(".")
                if stem.isidentifier() and stem != "__init__" and (
                    suffix == "py"
                    or (entry.endswith((".so", ".pyd")) and _is_extension_module(path, stem))
                ):
                    names.append(prefix + stem)

    visit(stage_lib, "")
    return names


#: Module names the deep check never imports: importing them runs a program
#: (``__main__``) or needs a test runner (``conftest``).
_NOT_IMPORTED = frozenset({"__main__", "conftest", "setup"})


def all_modules(stage_lib: str) -> list[str]:
    """Every module of the staged tree, for ``--verify-deep``: the names of
    :func:`importable_names`, then every submodule and subpackage of their packages
    (``.py`` files and extension modules the import system loads), test packages
    (:data:`TEST_PACKAGES`) and ``__main__``/``conftest`` modules left out."""
    names = importable_names(stage_lib)
    seen = set(names)
    for top in list(names):
        directory = os.path.join(stage_lib, *top.split("."))
        if not os.path.isdir(directory):
            continue
        for dirpath, dirnames, filenames in os.walk(directory):
            dirnames[:] = sorted(d for d in dirnames if d.isidentifier()
                                 and d not in TEST_PACKAGES and d != "__pycache__")
            rel = os.path.relpath(dirpath, stage_lib).replace(os.sep, ".")
            for entry in sorted(filenames):
                suffix = next((x for x in (".py", *EXTENSION_SUFFIXES) if entry.endswith(x)),
                              None)
                if suffix is None:
                    continue
                stem = entry[: -len(suffix)]
                if not stem.isidentifier() or stem in _NOT_IMPORTED or stem == "__init__":
                    continue
                if suffix != ".py" and not _is_extension_module(
                        os.path.join(dirpath, entry), stem):
                    continue
                name = f"{rel}.{stem}"
                if name not in seen:
                    seen.add(name)
                    names.append(name)
            for d in dirnames:
                name = f"{rel}.{d}"
                if name not in seen and os.path.exists(os.path.join(dirpath, d, "__init__.py")):
                    seen.add(name)
                    names.append(name)
    return names


def environment(stage_lib: str, destination: str, python: str = sys.executable) -> dict[str, str]:
    env = dict(os.environ)
    path = [stage_lib, destination]
    if env.get("PYTHONPATH"):
        path.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(path)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # 'python' in a --verify-command is the interpreter installed for (by default, the
    # one doing the install).
    env["PATH"] = os.pathsep.join([os.path.dirname(python), env.get("PATH", "")])
    env["INSTALL_ATOMIC_STAGE"] = stage_lib
    return env


Logger = Callable[[str], None]


def check_imports(
    stage_lib: str,
    destination: str,
    names: Sequence[str] | None = None,
    *,
    python: str = sys.executable,
    timeout: float = DEFAULT_TIMEOUT,
    log: Logger | None = None,
    removed: Sequence[str] = (),
) -> dict[str, str]:
    """Import every name (default: :func:`importable_names`) from the staged tree.

    *removed* lists top-level module names of the destination that the install
    removes (an old version's module the new one dropped): the check finds them
    in the staged tree or not at all, so that new code still importing one fails
    here rather than after the install.

    Returns where each of the project's modules (:func:`project_modules`) was
    imported from, and with *log* also says so, one line each
    (``install_atomic: six imported from <stage>/six.py``).  Raises
    :class:`VerificationError` with the tracebacks on failure, or when the check
    runs longer than *timeout* seconds (negative: no limit).
    """
    names = list(names) if names is not None else importable_names(stage_lib)
    if not names:
        return {}
    what = f"the import check of {', '.join(names)}"
    try:
        stdout = _run([python, "-c", _IMPORT_ALL, stage_lib, destination, *names], stage_lib,
                      destination, timeout, what=what, shell=False,
                      advice="Fix the release, or pass --no-verify to install it anyway.",
                      extra_env={"INSTALL_ATOMIC_REMOVED": json.dumps(sorted(removed))})
    except VerificationError as exc:
        missing = sorted(set(_MISSING.findall(str(exc))))
        if not missing:
            raise
        which = ", ".join(missing)
        raise VerificationError(
            f"{what} failed: it requires {which}, which {'is' if len(missing) == 1 else 'are'}"
            f" not installed in {destination}. Nothing was installed and the installed"
            f" version is unchanged. Install {which} first, or pass --no-verify to install"
            " it anyway.",
            stage_lib,
        ) from exc
    reported = set(project_modules(stage_lib))
    origins = {
        name: where for name, where in _origins(stdout.splitlines()) if name in reported
    }
    if log is not None:
        for name, where in origins.items():
            log(f"install_atomic: {name} imported from {where}")
    return origins


def run_command(
    command: str,
    stage_lib: str,
    destination: str,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    log: Logger | None = None,
    python: str = sys.executable,
) -> dict[str, str]:
    """Run the user's ``--verify-command`` (a shell command) against the staged tree.

    The project's modules are imported from the staged tree whatever the command
    puts first on ``sys.path`` (see the module docstring).  Returns where the
    command's processes imported each of them from (the first import of each
    name), and with *log* also says so (``install_atomic: the verify command
    imported six from <stage>/six.py``), or that it imported none of them.
    Raises :class:`VerificationError` when the command fails or runs longer than
    *timeout* seconds (negative: no limit).
    """
    what = f"--verify-command {command!r}"
    advice = "Fix the release or the command, or leave out --verify-command."
    hook = _write_hook(stage_lib)
    record = os.path.join(hook, _IMPORTED)
    try:
        _run(command, stage_lib, destination, timeout, what=what, shell=True,  # noqa: S604
             advice=advice, hook=hook, python=python)
    finally:
        origins = _read_record(record)
        if log is not None:
            for name, where in origins.items():
                log(f"install_atomic: the verify command imported {name} from {where}")
            if not origins and _pinned(stage_lib):
                tops = ", ".join(sorted(_pinned(stage_lib)))
                log(f"install_atomic: note: the verify command imported none of {tops}")
    return origins


def _origins(lines: Sequence[str]) -> list[tuple[str, str]]:
    found = []
    for line in lines:
        if line.startswith(_ORIGIN):
            with contextlib.suppress(ValueError):
                name, where = json.loads(line[len(_ORIGIN):])
                found.append((str(name), str(where)))
    return found


def _pinned(stage_lib: str) -> dict[str, str]:
    """Module name -> the staged directory holding it, for the ``--verify-command`` hook:
    the project's modules, except standard-library names (those the interpreter's own
    win after the install too) and test packages (a project's tests run from its
    checkout may import their own ``tests`` package)."""
    stdlib = frozenset(getattr(sys, "stdlib_module_names", ()))
    pinned = {}
    for name in project_modules(stage_lib):
        top, *rest = name.split(".")
        if top in stdlib or top in TEST_PACKAGES:
            continue
        pinned[name] = os.path.join(stage_lib, *name.split(".")[:-1]) if rest else stage_lib
    return pinned


_HOOK = r"""# Written by install-atomic for a --verify-command: the project's modules come from
# the staged tree, whatever is first on sys.path.  Then the environment's own
# sitecustomize, if any, runs as usual.
import importlib.machinery
import json
import os
import sys

_PINNED = {pinned!r}
_RECORD = {record!r}
_HERE = os.path.dirname(os.path.abspath(__file__))


class _StagedFirst(object):
    @staticmethod
    def find_spec(fullname, path=None, target=None):
        where = _PINNED.get(fullname)
        if where is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, [where])
        if spec is not None:
            origin = spec.origin or list(spec.submodule_search_locations or [""])[0]
            try:
                with open(_RECORD, "a", encoding="utf-8") as f:
                    f.write(json.dumps([fullname, origin]) + "\n")
            except OSError:
                pass
        return spec


sys.meta_path.insert(0, _StagedFirst)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
_SELF = sys.modules.pop("sitecustomize")
try:
    import sitecustomize  # noqa: F401 - the environment's own, if there is one
except ImportError as exc:
    sys.modules["sitecustomize"] = _SELF
    if exc.name != "sitecustomize":
        raise
"""


def _write_hook(stage_lib: str) -> str:
    """Write the ``sitecustomize`` of the ``--verify-command`` hook; return its directory."""
    hook = os.path.join(stage_lib, HOOK_DIR)
    os.makedirs(hook, exist_ok=True)
    record = os.path.join(hook, _IMPORTED)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(record)
    with open(os.path.join(hook, "sitecustomize.py"), "w", encoding="utf-8") as f:
        f.write(_HOOK.format(pinned=_pinned(stage_lib), record=record))
    return hook


def _read_record(record: str) -> dict[str, str]:
    try:
        with open(record, encoding="utf-8") as f:
            lines = [_ORIGIN + line for line in f.read().splitlines()]
    except OSError:
        return {}
    origins: dict[str, str] = {}
    for name, where in _origins(lines):
        origins.setdefault(name, where)
    return origins


def _run(cmd: str | Sequence[str], stage_lib: str, destination: str, timeout: float, *, what: str,
         shell: bool, advice: str, hook: str | None = None,
         python: str = sys.executable, extra_env: dict[str, str] | None = None) -> str:
    """Run a check; return its standard output, or raise :class:`VerificationError`."""
    # An empty directory inside the staging directory: nothing there to import, and
    # whatever a check leaves (a .pytest_cache, say) goes with the stage, even if this
    # process is killed.
    cwd = os.path.join(stage_lib, WORKDIR)
    os.makedirs(cwd, exist_ok=True)
    env = environment(stage_lib, destination, python)
    env.update(extra_env or {})
    if hook is not None:
        env["PYTHONPATH"] = os.pathsep.join([hook, env["PYTHONPATH"]])
    try:
        returncode, stdout, stderr = children.run_in_own_group(
            cmd, cwd=cwd, env=env, shell=shell, timeout=None if timeout < 0 else timeout)
    except subprocess.TimeoutExpired as exc:
        raise VerificationError(
            f"{what} did not finish within {timeout:g}s; nothing was installed and the"
            f" installed version is unchanged. {advice} If it needs longer, raise"
            " --verify-timeout.",
            stage_lib,
        ) from exc
    if returncode != 0:
        shown = "".join(
            line for line in stdout.splitlines(keepends=True) if not line.startswith(_ORIGIN))
        output = (shown + stderr).strip()
        raise VerificationError(
            f"{what} failed (exit status {returncode}); nothing was installed and the"
            f" installed version is unchanged. Output:\n{output}\n{advice}",
            stage_lib,
        )
    return stdout
