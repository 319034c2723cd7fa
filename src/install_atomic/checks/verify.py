"""Checks run against the staged tree before anything is swapped in.

Both run in a fresh interpreter whose ``sys.path`` starts with the staged
library directory and then has the destination (so the new version's other
dependencies resolve as they will after the install).  Bytecode writing is
disabled (``PYTHONDONTWRITEBYTECODE``), so the checks cannot leave pycs with
staging paths behind, and the working directory is a private empty one, so a
project's source checkout cannot shadow the staged tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from importlib.machinery import EXTENSION_SUFFIXES

from install_atomic.errors import VerificationError

_IMPORT_ALL = r"""
import importlib, sys, traceback
failed = 0
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except BaseException:
        failed += 1
        print(f"install_atomic: importing {name!r} from the staged tree failed:", file=sys.stderr)
        traceback.print_exc()
sys.exit(1 if failed else 0)
"""


def _declares_namespace(init: str) -> bool:
    try:
        with open(init, encoding="utf-8", errors="replace") as f:
            text = f.read(4096)
    except OSError:
        return False
    return "extend_path" in text or "declare_namespace" in text


def importable_names(stage_lib: str) -> list[str]:
    """Top-level modules and packages in *stage_lib*; namespace dirs are descended into."""
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
                    suffix == "py" or entry.endswith((".so", ".pyd"))
                ):
                    names.append(prefix + stem)

    visit(stage_lib, "")
    # Extension modules anywhere in a package: a package's __init__ need not import them.
    for dirpath, dirnames, filenames in os.walk(stage_lib):
        dirnames[:] = [d for d in dirnames if d.isidentifier()]
        rel = os.path.relpath(dirpath, stage_lib)
        if rel == ".":
            continue
        prefix = rel.replace(os.sep, ".") + "."
        for entry in sorted(filenames):
            suffix = next((s for s in EXTENSION_SUFFIXES if entry.endswith(s)), None)
            if suffix is None:
                continue
            stem = entry[: -len(suffix)]
            if stem.isidentifier() and prefix + stem not in names:
                names.append(prefix + stem)
    return names


def environment(stage_lib: str, destination: str) -> dict[str, str]:
    env = dict(os.environ)
    path = [stage_lib, destination]
    if env.get("PYTHONPATH"):
        path.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(path)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # 'python' in a --verify-command is the interpreter doing the install.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env["INSTALL_ATOMIC_STAGE"] = stage_lib
    return env


def check_imports(
    stage_lib: str,
    destination: str,
    names: Sequence[str] | None = None,
    *,
    python: str = sys.executable,
    timeout: float = 600.0,
) -> None:
    """Import every name (default: :func:`importable_names`) from the staged tree.

    Raises :class:`VerificationError` with the tracebacks on failure.
    """
    names = list(names) if names is not None else importable_names(stage_lib)
    if not names:
        return
    _run([python, "-c", _IMPORT_ALL, *names], stage_lib, destination, timeout,
         what=f"the import check of {', '.join(names)}", shell=False,
         advice="Fix the release, or pass --no-verify to install it anyway.")


def run_command(command: str, stage_lib: str, destination: str, timeout: float = 3600.0) -> None:
    """Run the user's ``--verify-command`` (a shell command) against the staged tree."""
    what = f"--verify-command {command!r}"
    advice = "Fix the release or the command, or leave out --verify-command."
    _run(command, stage_lib, destination, timeout, what=what, shell=True,  # noqa: S604
         advice=advice)


def _run(cmd: object, stage_lib: str, destination: str, timeout: float, *, what: str,
         shell: bool, advice: str) -> None:
    # An empty directory inside the staging directory: nothing there to import, and
    # whatever a check leaves (a .pytest_cache, say) goes with the stage, even if this
    # process is killed.
    cwd = os.path.join(stage_lib, ".install-atomic-verify")
    os.makedirs(cwd, exist_ok=True)
    try:
        proc = subprocess.run(
            cmd,  # type: ignore[call-overload]
            cwd=cwd,
            env=environment(stage_lib, destination),
            shell=shell,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise VerificationError(
            f"{what} did not finish within {timeout:g}s; nothing was installed and the"
            f" installed version is unchanged. {advice}",
            stage_lib,
        ) from exc
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        raise VerificationError(
            f"{what} failed (exit status {proc.returncode}); nothing was installed and the"
            f" installed version is unchanged. Output:\n{output}\n{advice}",
            stage_lib,
        )
