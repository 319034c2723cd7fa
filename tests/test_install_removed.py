"""The import check sees the environment as it will be after the install: an old
version's top-level module that the install removes is not importable in the check."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import MakeVenv, ia_run, make_wheel, tree_digest

pytestmark = pytest.mark.slow


def test_new_code_importing_a_module_the_install_removes_is_refused(
    make_venv: MakeVenv, tmp_path: Path
) -> None:
    """legacydemo 1.0 ships ``legacydemo_compat.py``; 2.0 drops it but still imports it.
    pip would install 2.0 and leave a package that fails on import; install-atomic
    refuses, names the module, and leaves 1.0 as it was."""
    venv = make_venv("newest")
    old = make_wheel(tmp_path, "legacydemo", "1.0", {
        "legacydemo/__init__.py": "V = 1\n", "legacydemo_compat.py": "X = 1\n"})
    new = make_wheel(tmp_path / "new", "legacydemo", "2.0", {
        "legacydemo/__init__.py": "import legacydemo_compat\nV = 2\n"})
    ia_run(venv, "install", "-q", old)
    before = tree_digest(venv.site_packages)
    proc = ia_run(venv, "install", new, status=1)
    assert "No module named 'legacydemo_compat' (this install removes it)" in proc.stderr, (
        proc.stderr)
    assert "requires legacydemo_compat" not in proc.stderr  # not a missing dependency
    assert tree_digest(venv.site_packages) == before


def test_a_module_the_new_version_still_ships_is_found(
    make_venv: MakeVenv, tmp_path: Path
) -> None:
    """The control: when 2.0 ships the module itself, the same import passes."""
    venv = make_venv("newest")
    old = make_wheel(tmp_path, "legacydemo", "1.0", {
        "legacydemo/__init__.py": "V = 1\n", "legacydemo_compat.py": "X = 1\n"})
    new = make_wheel(tmp_path / "new", "legacydemo", "2.0", {
        "legacydemo/__init__.py": "import legacydemo_compat\nV = 2\n",
        "legacydemo_compat.py": "X = 2\n"})
    ia_run(venv, "install", "-q", old)
    ia_run(venv, "install", "-q", new)
    out = venv.run("-c", "import legacydemo, legacydemo_compat as c; print(legacydemo.V, c.X)")
    assert out.stdout.split() == ["2", "2"]


def test_verify_deep_imports_submodules_the_default_check_does_not(
    make_venv: MakeVenv, tmp_path: Path
) -> None:
    """A submodule that fails on import passes the default check (pip would install it
    too) and is refused with ``--verify-deep``, leaving the environment unchanged."""
    venv = make_venv("newest")
    wheel = make_wheel(tmp_path, "deepdemo", "1.0", {
        "deepdemo/__init__.py": "", "deepdemo/lazy.py": "raise ImportError('lazy is broken')\n"})
    before = tree_digest(venv.site_packages)
    proc = ia_run(venv, "install", "--verify-deep", wheel, status=1)
    assert "lazy is broken" in proc.stderr and "deepdemo.lazy" in proc.stderr, proc.stderr
    assert tree_digest(venv.site_packages) == before
    ia_run(venv, "install", "-q", wheel)
    assert (venv.site_packages / "deepdemo" / "lazy.py").is_file()
