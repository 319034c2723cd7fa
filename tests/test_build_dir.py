"""The private build directory: a stale ``build/`` cannot leak into a downgrade, and the
build directories of killed installers are swept."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import MakeVenv, make_project
from install_atomic.engine import staging
from test_command import setup_py


@pytest.mark.slow
def test_stale_build_dir_does_not_leak_into_a_downgrade(
    make_venv: MakeVenv, tmp_path: Path
) -> None:
    """One checkout, built at 2.0, then switched to 1.0 (as a git checkout would):
    ``build/lib`` still holds 2.0's only_v2.py, which must not be installed."""
    venv = make_venv("newest")
    v2 = make_project("pkg", tmp_path / "v2", "2.0")
    setup_py(venv, v2, command="build")
    assert (v2 / "build" / "lib" / "demopkg" / "only_v2.py").is_file()
    setup_py(venv, v2)
    checkout = tmp_path / "checkout"
    shutil.copytree(make_project("pkg", tmp_path / "v1", "1.0"), checkout)
    shutil.copytree(v2 / "build", checkout / "build")  # the stale build/ of 2.0
    setup_py(venv, checkout)
    pkg = venv.site_packages / "demopkg"
    assert (pkg / "only_v1.py").is_file()
    assert not (pkg / "only_v2.py").exists(), "a stale build/lib file was installed"
    assert not (pkg / "sub" / "extra.py").exists()
    # --skip-build installs build/ as it is: the user asked for it.
    setup_py(venv, checkout, "--skip-build")
    assert (pkg / "only_v2.py").is_file()


def test_sweep_removes_only_build_dirs_of_dead_installers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    gone = tmp_path / f"{staging.BUILD_PREFIX}{dead_pid}-abc"
    (gone / "lib").mkdir(parents=True)
    (gone / "lib" / "mod.py").write_text("x = 1\n")
    (gone / "lib").chmod(0o555)
    alive = tmp_path / f"{staging.build_dir_prefix()}xyz"
    alive.mkdir()
    unrelated = tmp_path / "install-atomic-build-notapid"
    unrelated.mkdir()
    try:
        removed = staging.sweep_build_dirs()
    finally:
        if (gone / "lib").exists():
            (gone / "lib").chmod(0o755)
    assert removed == [str(gone)]
    assert not gone.exists()
    assert alive.is_dir(), "the build directory of a live installer is kept"
    assert unrelated.is_dir(), "a name without a pid is not ours to judge"
    assert staging.build_dir_prefix() == f"{staging.BUILD_PREFIX}{os.getpid()}-"
