"""Fixtures: per-session toolsets and fast real virtual environments.

* ``toolsets`` (session): for every flavour in ``helpers.FLAVOURS`` one
  ``pip install --target`` directory holding pip, setuptools, wheel, filelock and
  install-atomic built from this repository.  Built once per session, in parallel.
* ``make_venv`` (function): factory of real venvs (``python -m venv --without-pip``, well
  under a second) that see a toolset through a ``.pth`` file.
* ``flavour`` / ``venv``: parametrized over all flavours, for tests that want both.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import itertools
import re
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

_TESTS_DIR = Path(__file__).resolve().parent
if str(_TESTS_DIR) not in sys.path:  # e.g. under --import-mode=importlib
    sys.path.insert(0, str(_TESTS_DIR))

from helpers import (  # noqa: E402
    COMMON_TOOLS,
    FLAVOURS,
    REPO_ROOT,
    MakeVenv,
    Toolset,
    Venv,
    create_venv,
    run,
)

_PIP_TIMEOUT = 600.0

# Not needed to build the install-atomic wheel (and possibly big, busy or stale): these
# top-level entries of the repository, and the _ANYWHERE patterns at any depth.
_REPO_COPY_SKIP_TOP = frozenset(
    {
        ".git",
        "tests",
        "benchmarks",
        "docs",
        "examples",
        "build",
        "dist",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".benchmarks",
    }
)
_ANYWHERE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _repo_copy_ignore(directory: str, names: list[str]) -> set[str]:
    ignored = set(_ANYWHERE(directory, names))
    if Path(directory) == REPO_ROOT:
        ignored |= _REPO_COPY_SKIP_TOP.intersection(names)
    return ignored


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--no-input"]


def _failed(what: str, exc: AssertionError) -> str:
    return f"{what}\n{exc}"


def _install_tools(flavour: str, target: Path) -> str | None:
    """pip-install the flavour's tools into *target*; return an error message or None."""
    requirements = [*COMMON_TOOLS, *FLAVOURS[flavour]]
    try:
        run(
            _pip("install", "--no-warn-script-location", "--target", str(target), *requirements),
            timeout=_PIP_TIMEOUT,
        )
    except AssertionError as exc:
        return _failed(
            f"Could not pip-install the {flavour!r} toolset ({' '.join(requirements)}). "
            "Is PyPI reachable (pip's index / proxy configuration)?",
            exc,
        )
    return None


def _build_repo_wheel(work: Path) -> tuple[Path | None, str | None]:
    """Build this repository's wheel from a snapshot copy (never builds inside the repo)."""
    source = work / "repo-snapshot"
    wheelhouse = work / "wheelhouse"
    try:
        shutil.copytree(REPO_ROOT, source, ignore=_repo_copy_ignore, symlinks=True)
    except (OSError, shutil.Error) as exc:  # e.g. a file vanished during the copy
        return None, f"Could not snapshot the repository {REPO_ROOT} to build it: {exc}"
    try:
        run(
            _pip("wheel", "--no-deps", "--wheel-dir", str(wheelhouse), str(source)),
            timeout=_PIP_TIMEOUT,
        )
    except AssertionError as exc:
        return None, _failed(
            "install-atomic (this repository) could not be built as a wheel, so it is missing "
            "from the test toolsets; pip, setuptools, wheel and filelock are there. "
            "Fix the repository (src/, setup.cfg, pyproject.toml) and rerun.",
            exc,
        )
    wheels = sorted(wheelhouse.glob("*.whl"))
    if len(wheels) != 1:
        return None, f"expected one install-atomic wheel in {wheelhouse}, found {wheels}"
    return wheels[0], None


def _install_repo_wheel(wheel: Path, target: Path) -> str | None:
    try:
        run(
            _pip(
                "install",
                "--no-warn-script-location",
                "--no-deps",
                "--target",
                str(target),
                str(wheel),
            ),
            timeout=300,
        )
    except AssertionError as exc:
        return _failed(f"Could not install {wheel.name} into {target}.", exc)
    return None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_versions(target: Path) -> dict[str, str]:
    return {
        _canonical(dist.metadata["Name"]): dist.version
        for dist in importlib.metadata.distributions(path=[str(target)])
    }


def build_toolsets(base: Path) -> dict[str, Toolset]:
    """Create one toolset per flavour under *base* (see module docstring)."""
    if importlib.util.find_spec("pip") is None:
        pytest.fail(
            f"{sys.executable} has no pip; it is needed to create the test toolsets "
            "(python -m pip install --target ...).",
            pytrace=False,
        )
    targets = {flavour: base / f"tools-{flavour}" for flavour in FLAVOURS}
    with ThreadPoolExecutor(max_workers=len(targets) + 1) as pool:
        wheel_future = pool.submit(_build_repo_wheel, base)
        tool_futures = {f: pool.submit(_install_tools, f, t) for f, t in targets.items()}
        tool_errors = {f: future.result() for f, future in tool_futures.items()}
        wheel, wheel_error = wheel_future.result()
        errors = [error for error in tool_errors.values() if error]
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)
        repo_errors: dict[str, str | None] = dict.fromkeys(targets, wheel_error)
        if wheel is not None:
            repo_futures = {
                f: pool.submit(_install_repo_wheel, wheel, t) for f, t in targets.items()
            }
            repo_errors = {f: future.result() for f, future in repo_futures.items()}

    toolsets = {}
    for flavour, target in targets.items():
        versions = _installed_versions(target)
        missing = {"pip", "setuptools", "wheel", "filelock"} - set(versions)
        if missing:
            pytest.fail(f"toolset {flavour!r} at {target} lacks {sorted(missing)}", pytrace=False)
        toolsets[flavour] = Toolset(
            flavour=flavour,
            path=target,
            versions=versions,
            install_atomic_error=repo_errors[flavour],
        )
    return toolsets


@pytest.fixture(scope="session")
def toolsets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Toolset]:
    """Flavour name -> :class:`helpers.Toolset`, built once per session."""
    return build_toolsets(tmp_path_factory.mktemp("toolsets"))


@pytest.fixture
def make_venv(toolsets: dict[str, Toolset], tmp_path: Path) -> MakeVenv:
    """Factory: ``make_venv(flavour="newest", *, name=None, require_install_atomic=True)``.

    Creates ``tmp_path/<name>`` (default ``venv``, ``venv-2``, ...).  With
    *require_install_atomic* the test fails with the build error if this repository could
    not be built into the toolset.
    """
    counter = itertools.count(1)

    def factory(
        flavour: str = "newest",
        *,
        name: str | None = None,
        require_install_atomic: bool = True,
    ) -> Venv:
        try:
            toolset = toolsets[flavour]
        except KeyError:
            raise ValueError(f"unknown flavour {flavour!r}; known: {', '.join(toolsets)}") from None
        if require_install_atomic and toolset.install_atomic_error:
            pytest.fail(toolset.install_atomic_error, pytrace=False)
        if name is None:
            number = next(counter)
            name = "venv" if number == 1 else f"venv-{number}"
        return create_venv(tmp_path / name, toolset.path, flavour=flavour)

    return factory


@pytest.fixture(params=list(FLAVOURS))
def flavour(request: pytest.FixtureRequest) -> str:
    """Each setuptools flavour in turn ("newest", "66")."""
    param: str = request.param
    return param


@pytest.fixture
def venv(make_venv: MakeVenv, flavour: str) -> Venv:
    """A fresh venv of each flavour in turn (install-atomic required)."""
    return make_venv(flavour)


#: uv, installed once per session with pip into a temporary directory (the tests that
#: use it are skipped without it).
UV_PIN = "uv==0.13.9"

@pytest.fixture(scope="session")
def uv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("uv")
    proc = run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", target,
                UV_PIN], check=False, timeout=600)
    executable = target / "bin" / "uv"
    if proc.returncode != 0 or not executable.is_file():
        pytest.skip(f"uv could not be installed with pip ({UV_PIN}): {proc.stderr[-500:]}")
    return executable
