"""Projects that setuptools does not build: ``install_atomic`` refuses them, before anything
is built or changed, naming the backend, the ``pyproject.toml`` and the way out
(``install-atomic install .``).

Real sdists from PyPI (exact versions): tomlkit 0.13.2 (poetry-core; setuptools would
read its ``pyproject.toml`` and install an empty "tomlkit 0.0.0"), attrs 24.2.0
(hatchling; setuptools itself fails on its ``pyproject.toml``, so only the checked entry
point, ``python -m install_atomic.frontends.setuptools_command``, can say what is wrong)
and flit_core 3.9.0 (an in-tree backend, ``backend-path = ["."]``, that is not
setuptools).  Setuptools projects, with ``setuptools.build_meta`` or an in-tree backend
wrapping it, install as before.
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import pytest

from helpers import REPO_ROOT, MakeVenv, Venv, leftovers, make_project, run, tree_digest
from test_command import describe, output, setup_py

pytestmark = pytest.mark.slow

#: requirement -> (sdist file name stem, its build backend).
SDISTS = {
    "tomlkit==0.13.2": ("tomlkit-0.13.2", "poetry.core.masonry.api"),
    "attrs==24.2.0": ("attrs-24.2.0", "hatchling.build"),
    "flit_core==3.9.0": ("flit_core-3.9.0", "flit_core.buildapi"),
}
WAY_OUT = "install it with `install-atomic install .` (any PEP 517 backend)"
INLINE_SETUP = "from setuptools import setup; setup()"
CHECKED = "install_atomic.frontends.setuptools_command"


@pytest.fixture(scope="session")
def sdists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("backends")
    run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-binary",
         ":all:", "--no-deps", "-d", str(base), *SDISTS], timeout=600)
    found = {}
    for req, (stem, _) in SDISTS.items():
        matches = sorted(base.glob(f"{stem}.tar.gz"))
        assert len(matches) == 1, f"pip download {req} gave {sorted(base.iterdir())}"
        found[req] = matches[0]
    return found


def unpack(sdist: Path, dest: Path) -> Path:
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python < 3.11.4 (sdists downloaded from PyPI just now)
            tar.extractall(dest)
    project = dest / sdist.name.removesuffix(".tar.gz")
    assert (project / "pyproject.toml").is_file(), project
    return project


def assert_refused_before_anything(
    venv: Venv, project: Path, backend: str, run_it: list[str]
) -> str:
    """Run *run_it* (arguments of the venv's python) in *project*: refused, exit status 1,
    one error naming the backend, the pyproject.toml and the way out; neither the venv
    nor the project tree (no build/, no .egg-info) changed."""
    venv_before = tree_digest(venv.root)
    project_before = tree_digest(project)
    proc = venv.run(*run_it, cwd=project, check=False)
    assert proc.returncode == 1, describe(proc)
    errors = [line for line in output(proc).splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output(proc)
    assert f"{project / 'pyproject.toml'} names the build backend {backend!r}" in errors[0]
    assert "not setuptools" in errors[0] and "Nothing was built or changed" in errors[0]
    assert errors[0].endswith(WAY_OUT + "."), errors[0]
    assert "Traceback" not in output(proc)
    assert tree_digest(venv.root) == venv_before
    assert tree_digest(project) == project_before
    assert leftovers(venv.root) == []
    return errors[0]


@pytest.mark.parametrize("req", ["tomlkit==0.13.2", "attrs==24.2.0", "flit_core==3.9.0"])
def test_checked_entry_point_refuses_other_backends(
    req: str, sdists: dict[str, Path], make_venv: MakeVenv, tmp_path: Path
) -> None:
    venv = make_venv("newest")
    project = unpack(sdists[req], tmp_path / "src")
    assert not (project / "setup.py").exists()
    assert_refused_before_anything(venv, project, SDISTS[req][1],
                                   ["-m", CHECKED, "install_atomic"])


@pytest.mark.parametrize("flavour_name", ["newest", "66"])
def test_inline_setup_refuses_a_poetry_project(
    flavour_name: str, sdists: dict[str, Path], make_venv: MakeVenv, tmp_path: Path
) -> None:
    """The documented one-liner for projects without setup.py: setuptools reads tomlkit's
    pyproject.toml without complaint (it would install "tomlkit 0.0.0"), so the command
    itself must refuse, before building."""
    venv = make_venv(flavour_name)
    project = unpack(sdists["tomlkit==0.13.2"], tmp_path / "src")
    assert_refused_before_anything(venv, project, "poetry.core.masonry.api",
                                   ["-c", INLINE_SETUP, "install_atomic"])


def test_setup_py_with_another_backend_is_refused(make_venv: MakeVenv, tmp_path: Path) -> None:
    """A project with a setup.py whose pyproject.toml names hatchling: ``python setup.py
    install_atomic`` refuses it too (the same check, in the command)."""
    venv = make_venv("newest")
    project = make_project("pkg", tmp_path, "1.0")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n')
    before = tree_digest(venv.root)
    proc = setup_py(venv, project, check=False)
    assert proc.returncode != 0, describe(proc)
    assert "names the build backend 'hatchling.build'" in output(proc)
    assert WAY_OUT in output(proc)
    assert not (project / "build").exists()
    assert tree_digest(venv.root) == before


SETUPTOOLS_WRAPPER = '''
"""An in-tree backend that wraps setuptools' (as Pillow's _custom_build does)."""
from setuptools.build_meta import *  # noqa: F401,F403
'''


@pytest.mark.parametrize("how", ["build_meta", "in-tree-wrapper", "no-backend"])
def test_setuptools_projects_still_install(
    how: str, make_venv: MakeVenv, tmp_path: Path
) -> None:
    """``setuptools.build_meta``, an in-tree backend wrapping it, and no ``build-backend``
    at all (PEP 517's legacy setuptools) are setuptools projects: installed, through
    setup.py and through the checked entry point."""
    venv = make_venv("newest")
    project = make_project("pkg", tmp_path, "1.0")
    table = '[build-system]\nrequires = ["setuptools"]\n'
    if how == "build_meta":
        table += 'build-backend = "setuptools.build_meta"\n'
    elif how == "in-tree-wrapper":
        table += 'build-backend = "wrapper"\nbackend-path = ["_build"]\n'
        (project / "_build").mkdir()
        (project / "_build" / "wrapper.py").write_text(SETUPTOOLS_WRAPPER)
    (project / "pyproject.toml").write_text(table)
    setup_py(venv, project)
    assert venv.import_version("demopkg") == "1.0"
    proc = venv.run("-m", CHECKED, "install_atomic", cwd=make_project("pkg", tmp_path, "2.0"))
    assert "install_atomic: installed demo-pkg 2.0" in proc.stdout
    assert venv.import_version("demopkg") == "2.0"


PYPROJECTS = {
    "poetry": ('[build-system]\nrequires = ["poetry-core"]\n'
               'build-backend = "poetry.core.masonry.api"\n', "poetry.core.masonry.api"),
    "pdm": ("[project]\nname = 'x'\n\n[build-system]\nrequires = ['pdm-backend']\n"
            "build-backend = 'pdm.backend'  # a comment\n\n[tool.pdm]\n", "pdm.backend"),
    "setuptools": ('[build-system]\nbuild-backend = "setuptools.build_meta:__legacy__"\n', None),
    "no-build-system": ("[tool.black]\nline-length = 100\n", None),
    "backend-in-another-table": ('[tool.x]\nbuild-backend = "hatchling.build"\n', None),
}


#: Prints other_build_backend(argv[2]), with the TOML parser or (argv[1] == "fallback")
#: without one.  In a child: importing setuptools here would change this test process.
DECIDE = """
import json, sys
from install_atomic.frontends import setuptools_command
if sys.argv[1] == "fallback":
    setuptools_command._load_toml = lambda text: None
print(json.dumps(setuptools_command.other_build_backend(sys.argv[2])))
"""


@pytest.mark.parametrize("toml", ["parser", "fallback"])
@pytest.mark.parametrize("name", sorted(PYPROJECTS))
def test_other_build_backend(name: str, toml: str, tmp_path: Path) -> None:
    """The decision for various ``pyproject.toml`` files, with a TOML parser and with the
    fallback used where there is none (Python < 3.11 without tomli)."""
    text, backend = PYPROJECTS[name]
    (tmp_path / "pyproject.toml").write_text(text)
    proc = run([sys.executable, "-c", DECIDE, toml, str(tmp_path)],
               env={"PYTHONPATH": str(REPO_ROOT / "src")})
    expected = [str(tmp_path / "pyproject.toml"), backend] if backend else None
    assert json.loads(proc.stdout) == expected
