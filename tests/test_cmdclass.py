"""``setup(cmdclass=install_atomic.cmdclass)``: ``setup.py install`` is atomic, every bdist
(and ``pip wheel``, ``python -m build``) produces exactly what the project without it does.

The project under test is the ``pkg`` fixture with two lines added to its setup.py; the
reference is the untouched fixture, built in the same venv.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from helpers import MakeVenv, Venv, make_project, tree_digest
from test_command import (
    CACHE_TAG,
    Layout,
    check_flat,
    check_install,
    check_scenario_runtime,
    describe,
    leftovers,
    output,
    project_files,
    setup_py,
)

pytestmark = pytest.mark.slow

Members = dict[str, bytes]


def cmdclass_project(dest: Path, version: str) -> Path:
    """A copy of the ``pkg`` fixture whose setup.py passes ``cmdclass=cmdclass``."""
    project = make_project("pkg", dest, version)
    setup = project / "setup.py"
    text = setup.read_text()
    text = text.replace(
        "from setuptools import setup\n",
        "from setuptools import setup\n\nfrom install_atomic import cmdclass\n",
    )
    text = text.replace("    zip_safe=False,\n", "    zip_safe=False,\n    cmdclass=cmdclass,\n")
    assert "cmdclass=cmdclass" in text and "import cmdclass" in text
    setup.write_text(text)
    return project


def members(archive: Path) -> Members:
    with zipfile.ZipFile(archive) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def comparable(data: Members) -> Members:
    """Archive members with the pyc header fields that depend on source mtimes cut off."""
    return {name: (body[16:] if name.endswith(".pyc") else body) for name, body in data.items()}


def only(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    assert len(found) == 1, (directory, pattern, found)
    return found[0]


@pytest.fixture
def projects(tmp_path: Path) -> tuple[Path, Path]:
    """(with cmdclass, without) for pkg 2.0."""
    return cmdclass_project(tmp_path / "with", "2.0"), make_project("pkg", tmp_path / "plain",
                                                                      "2.0")


def test_setup_py_install_is_atomic(flavour: str, make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv(flavour)
    baseline = tree_digest(venv.root)
    for step, version in enumerate(("1.0", "2.0")):
        proc = setup_py(venv, cmdclass_project(tmp_path / str(step), version), command="install")
        assert f"install_atomic: installed demo-pkg {version} into {venv.site_packages}" in (
            proc.stdout
        )
        assert "checking that demo-pkg imports from the staged tree" in proc.stdout
        check_install("pkg", version, Layout.of_venv(venv), project_files(venv.root, baseline))
        assert leftovers(venv.root) == []
        check_flat(venv)
        check_scenario_runtime(venv, "pkg", version)
    assert not (venv.site_packages / "demopkg" / "only_v1.py").exists()


def test_setup_py_install_takes_the_atomic_options(make_venv: MakeVenv, tmp_path: Path) -> None:
    """``setup.py install --dry-run`` plans and changes nothing; ``--pyc-mode`` is known."""
    venv = make_venv("newest")
    setup_py(venv, cmdclass_project(tmp_path / "a", "1.0"), command="install")
    before = tree_digest(venv.root)
    proc = setup_py(venv, cmdclass_project(tmp_path / "b", "2.0"), "--dry-run", "--pyc-mode",
                    "timestamp", command="install")
    assert "would remove" in proc.stdout and "nothing changed" in proc.stdout
    assert tree_digest(venv.root) == before
    proc = setup_py(venv, cmdclass_project(tmp_path / "c", "2.0"), "--pyc-mode", "nope",
                    command="install", check=False)
    assert proc.returncode != 0
    assert "not 'nope'" in output(proc)


def build_all(venv: Venv, project: Path) -> dict[str, Members]:
    """bdist_wheel, bdist_egg and bdist_dumb (zip) of *project*, bytecode writing enabled so
    that bdist_egg and bdist_dumb byte-compile through install_lib."""
    env = {"PYTHONDONTWRITEBYTECODE": None}
    out: dict[str, Members] = {}
    for command, args, pattern in (
        ("bdist_wheel", (), "*.whl"),
        ("bdist_egg", (), "*.egg"),
        ("bdist_dumb", ("--format=zip",), "*.zip"),
    ):
        proc = venv.setup_py(project, command, *args, "--dist-dir", f"dist-{command}", env=env,
                             check=False)
        assert proc.returncode == 0, describe(proc)
        out[command] = members(only(project / f"dist-{command}", pattern))
    return out


def test_bdists_are_unchanged(
    flavour: str, make_venv: MakeVenv, projects: tuple[Path, Path]
) -> None:
    venv = make_venv(flavour)
    before = tree_digest(venv.root)
    with_cmdclass, plain = (build_all(venv, project) for project in projects)
    for command in ("bdist_wheel", "bdist_egg", "bdist_dumb"):
        got, want = with_cmdclass[command], plain[command]
        assert sorted(got) == sorted(want), command
        assert comparable(got) == comparable(want), command
    wheel = with_cmdclass["bdist_wheel"]
    assert "demopkg/only_v2.py" in wheel
    assert "demo_pkg-2.0.dist-info/RECORD" in wheel and "demo_pkg-2.0.dist-info/WHEEL" in wheel
    # install_lib byte-compiles under bdist_egg / bdist_dumb as stock (cmdclass replaces it)
    pyc = f"demopkg/__pycache__/only_v2.{CACHE_TAG}.pyc"
    assert pyc in with_cmdclass["bdist_egg"], sorted(with_cmdclass["bdist_egg"])
    dumb = with_cmdclass["bdist_dumb"]
    assert any(name.endswith(f"site-packages/{pyc}") for name in dumb), sorted(dumb)
    # building installs nothing and leaves nothing behind in the venv
    assert tree_digest(venv.root) == before
    for project in projects:
        assert leftovers(project) == []


def test_pip_wheel_is_unchanged(
    flavour: str, make_venv: MakeVenv, projects: tuple[Path, Path], tmp_path: Path
) -> None:
    venv = make_venv(flavour)
    wheels = []
    for n, project in enumerate(projects):
        out = tmp_path / f"wheelhouse-{n}"
        venv.pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", out, project)
        wheels.append(members(only(out, "*.whl")))
    assert wheels[0] == wheels[1]
    assert "demo_pkg-2.0.dist-info/RECORD" in wheels[0]
    # and pip installs that wheel as usual: a dist-info, no egg-info
    venv.pip("install", "--no-index", only(tmp_path / "wheelhouse-0", "*.whl"))
    names = sorted(p.name for p in venv.site_packages.glob("demo_pkg*"))
    assert names == ["demo_pkg-2.0.dist-info"]


def test_python_m_build_is_unchanged(
    make_venv: MakeVenv, projects: tuple[Path, Path], tmp_path: Path
) -> None:
    venv = make_venv("newest")
    try:
        venv.pip("install", "build", timeout=180)
    except AssertionError as exc:  # no package index: python -m build cannot be tried
        pytest.skip(f"cannot pip-install 'build' (is the package index reachable?):\n{exc}")
    results = []
    for n, project in enumerate(projects):
        out = tmp_path / f"build-{n}"
        proc = venv.run("-m", "build", "--no-isolation", "--wheel", "--outdir", out, project,
                        check=False)
        assert proc.returncode == 0, describe(proc)
        results.append(members(only(out, "*.whl")))
    assert results[0] == results[1]
    assert "demopkg/sub/extra.py" in results[0]
