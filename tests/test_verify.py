"""The checks of the staged tree before the swap: byte-compiled with final paths, imported
in a fresh interpreter, ``--verify-command``; ``--no-verify`` skips the import check.

A refused release leaves the destination exactly as it was (digest of the whole venv) and
no ``.install-atomic*`` entry anywhere.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from helpers import MakeVenv, Venv, make_project, tree_digest
from test_command import (
    Layout,
    check_install,
    check_pyc,
    describe,
    dist_version,
    leftovers,
    output,
    project_files,
    pyc_of,
    run_in,
    setup_py,
)

pytestmark = pytest.mark.slow


def python_c(venv: Venv, code: str) -> str:
    """A shell command running *code* with the venv's interpreter."""
    return f"{shlex.quote(str(venv.python))} -c {shlex.quote(code)}"


@pytest.fixture
def venv_with_pkg_1(make_venv: MakeVenv, tmp_path: Path) -> Venv:
    venv = make_venv("newest")
    setup_py(venv, make_project("pkg", tmp_path / "old", "1.0"))
    return venv


def assert_refused(
    venv: Venv, before: dict[str, str], proc: subprocess.CompletedProcess[str]
) -> str:
    """*proc* (an install) was refused by a check, with the venv left exactly *before*."""
    assert proc.returncode != 0, describe(proc)
    message = output(proc)
    assert "nothing was installed and the installed version is unchanged" in message
    assert "install_atomic: installed" not in message
    assert tree_digest(venv.root) == before
    assert leftovers(venv.root) == []
    return message


def test_pycs_exist_and_name_the_final_path(make_venv: MakeVenv, tmp_path: Path) -> None:
    """Right after the install every module has a pyc, valid for its source, whose code
    objects name the installed file (not the staging directory), and imports use it."""
    venv = make_venv("newest")
    baseline = tree_digest(venv.root)
    setup_py(venv, make_project("pkg", tmp_path, "2.0"))
    present = project_files(venv.root, baseline)
    check_install("pkg", "2.0", Layout.of_venv(venv), present)
    sources = sorted(p for p in present if p.suffix == ".py")
    assert len(sources) == 4
    for source in sources:
        check_pyc(pyc_of(source), source)
    # a traceback out of installed code names the installed file
    code = (
        "import traceback, demopkg.sub.extra as m\n"
        "try:\n    m.undefined\nexcept AttributeError:\n    pass\n"
        "print(m.__spec__.cached); print(m.__spec__.origin)"
    )
    cached, origin = run_in(venv, code).splitlines()
    extra = venv.site_packages / "demopkg" / "sub" / "extra.py"
    assert (cached, origin) == (str(pyc_of(extra)), str(extra))


def test_release_that_raises_at_import_is_refused(
    venv_with_pkg_1: Venv, tmp_path: Path
) -> None:
    venv = venv_with_pkg_1
    before = tree_digest(venv.root)
    proc = setup_py(venv, make_project("broken_import", tmp_path), check=False)
    message = assert_refused(venv, before, proc)
    assert "RuntimeError: demo-pkg 9.0 is broken on purpose" in message
    assert "importing 'demopkg' from the staged tree failed" in message
    assert "pass --no-verify to install it anyway" in message
    assert venv.import_version("demopkg") == "1.0"


def test_no_verify_installs_a_broken_release(venv_with_pkg_1: Venv, tmp_path: Path) -> None:
    venv = venv_with_pkg_1
    proc = setup_py(venv, make_project("broken_import", tmp_path), "--no-verify")
    assert "checking that" not in proc.stdout
    assert "install_atomic: installed demo-pkg 9.0" in proc.stdout
    assert leftovers(venv.root) == []
    broken = venv.run("-c", "import demopkg", check=False)
    assert "demo-pkg 9.0 is broken on purpose" in broken.stderr
    assert dist_version(venv, "demo-pkg") == "9.0"
    sub = venv.site_packages / "demopkg" / "sub" / "__init__.py"
    assert sub.read_text() == 'VERSION = "9.0"\n'
    assert not (venv.site_packages / "demopkg" / "only_v1.py").exists()


def test_failing_verify_command_is_refused(venv_with_pkg_1: Venv, tmp_path: Path) -> None:
    venv = venv_with_pkg_1
    before = tree_digest(venv.root)
    command = python_c(venv, "print('checking...'); raise SystemExit(3)")
    proc = setup_py(venv, make_project("pkg", tmp_path, "2.0"), "--verify-command", command,
                    check=False)
    message = assert_refused(venv, before, proc)
    assert f"--verify-command {command!r} failed (exit status 3)" in message
    assert "checking..." in message  # the command's own output is shown
    assert venv.import_version("demopkg") == "1.0"


def test_verify_command_sees_the_staged_version(venv_with_pkg_1: Venv, tmp_path: Path) -> None:
    """With 1.0 installed, the command imports 2.0 from the staging directory, from a
    working directory that is not the project's, and bytecode writing is off there."""
    venv = venv_with_pkg_1
    project = make_project("pkg", tmp_path, "2.0")
    code = (
        "import os, sys, demopkg, demopkg.sub.extra\n"
        "assert demopkg.VERSION == '2.0', demopkg.VERSION\n"
        "stage = os.environ['INSTALL_ATOMIC_STAGE']\n"
        "assert demopkg.__file__.startswith(stage + os.sep), demopkg.__file__\n"
        "assert '.install-atomic-' in stage, stage\n"
        f"assert os.getcwd() != {str(project)!r}\n"
        "assert sys.dont_write_bytecode\n"
        "print('verified', demopkg.VERSION)\n"
    )
    proc = setup_py(venv, project, "--verify-command", python_c(venv, code))
    assert "running" in proc.stdout and "against the staged tree" in proc.stdout
    assert venv.import_version("demopkg") == "2.0"
    assert leftovers(venv.root) == []
    # the checks left no bytecode naming the staging directory behind
    for pyc in venv.site_packages.rglob("*.pyc"):
        if "demopkg" in pyc.parts:
            source = pyc.parent.parent / (pyc.name.split(".")[0] + ".py")
            check_pyc(pyc, source)


def test_verify_command_with_plain_python(venv_with_pkg_1: Venv, tmp_path: Path) -> None:
    """``python`` in the command is the interpreter doing the install (the venv's), even
    when the venv's bin is not on PATH; the staged tree comes first on its sys.path."""
    venv = venv_with_pkg_1
    path = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    command = (
        "python -c \"import sys, demopkg; assert demopkg.VERSION == '2.0';"
        f" assert sys.prefix == {str(venv.root)!r}, sys.prefix\""
    )
    setup_py(venv, make_project("pkg", tmp_path, "2.0"), "--verify-command", command, env=path)
    assert venv.import_version("demopkg") == "2.0"
    before = tree_digest(venv.root)
    command = "python -c \"import demopkg; assert demopkg.VERSION == '2.0', demopkg.VERSION\""
    proc = setup_py(venv, make_project("pkg", tmp_path, "3.0"), "--verify-command", command,
                    env=path, check=False)
    message = assert_refused(venv, before, proc)
    assert "AssertionError: 3.0" in message
    assert "Fix the release or the command, or leave out --verify-command." in message


EXT_UNDEFINED_SYMBOL = """
extern int demoext_missing_symbol(void);

PyMODINIT_FUNC
"""


def broken_ext(tmp_path: Path, imported_by_package: bool) -> Path:
    """ext 2.0 whose extension links but cannot load: it needs an undefined symbol."""
    project = make_project("ext", tmp_path, "2.0")
    source = project / "demoext" / "_speed.c"
    text = source.read_text()
    text = text.replace("PyMODINIT_FUNC\n", EXT_UNDEFINED_SYMBOL.lstrip("\n"), 1)
    text = text.replace(
        "    PyObject *m = PyModule_Create",
        "    if (demoext_missing_symbol() != 42) {\n        return NULL;\n    }\n"
        "    PyObject *m = PyModule_Create",
    )
    assert "demoext_missing_symbol() != 42" in text
    source.write_text(text)
    if imported_by_package:
        init = project / "demoext" / "__init__.py"
        init.write_text(init.read_text() + "\nfrom demoext import _speed  # noqa\n")
    return project


@pytest.mark.parametrize(
    "imported_by_package", [True, False], ids=["imported-by-init", "submodule-only"]
)
def test_extension_that_fails_to_load_is_refused(
    imported_by_package: bool, make_venv: MakeVenv, tmp_path: Path
) -> None:
    """demoext 1.0 is installed; 2.0's ``_speed`` extension builds and links but fails to
    load (undefined symbol).  Whether or not ``demoext/__init__.py`` imports it, the
    import check must load it and refuse the release."""
    venv = make_venv("newest")
    setup_py(venv, make_project("ext", tmp_path / "old", "1.0"))
    before = tree_digest(venv.root)
    proc = setup_py(venv, broken_ext(tmp_path, imported_by_package), check=False)
    message = assert_refused(venv, before, proc)
    assert "undefined symbol: demoext_missing_symbol" in message
    assert run_in(venv, "import demoext._speed as s; print(s.version())") == "1.0"
