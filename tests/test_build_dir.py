"""The private build directory: a stale ``build/`` cannot leak into a downgrade, and the
build directories of killed installers are swept."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from helpers import MakeVenv, make_project
from install_atomic.engine import staging
from test_command import setup_py
from test_staging_safety import (
    PROBE,
    assert_untouched,
    awkward_tree,
    dead_pid,
    make_victim,
    run_with_modes_binding,
)
from users import other_user, shared_dir


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


@pytest.mark.parametrize("mode", [0o1777, 0o2775], ids=["sticky-world-writable", "group-writable"])
def test_sweep_leaves_other_users_build_dirs_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    """In a temp dir others may write to, another user's dead build directory (with a
    symlink to a root-owned directory in it) and a symlink planted under a build
    directory's name are left alone by root's sweep; root's own dead build directory,
    read-only with a mode-000 subdirectory, is removed completely.  The old code
    removed the other user's directory, and the planted symlink."""
    user = other_user()
    tmp = Path(shared_dir(str(tmp_path / "tmp"), user, mode))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    victim = make_victim(tmp_path / "victim")
    pid = dead_pid()
    theirs = tmp / f"{staging.BUILD_PREFIX}{pid}-theirs"
    user.run(["mkdir", "-p", str(theirs / "lib")])
    user.run(["touch", str(theirs / "lib" / "mod.py")])
    user.run(["ln", "-s", str(victim), str(theirs / "lib" / "escape")])
    user.run(["chmod", "a-w", str(theirs / "lib")])
    link = tmp / f"{staging.BUILD_PREFIX}{pid}-link"
    user.run(["ln", "-s", str(victim), str(link)])
    mine = tmp / f"{staging.BUILD_PREFIX}{pid}-mine"
    awkward_tree(mine, victim)

    assert staging.dead_build_dirs() == [str(mine)], "what status lists: only root's own"
    assert staging.sweep_build_dirs() == [str(mine)]
    assert not os.path.lexists(mine), "root's own dead build directory is removed"
    assert staging.dead_build_dirs() == []
    assert (theirs / "lib" / "mod.py").is_file(), "another user's directory is not ours"
    assert (theirs / "lib" / "escape").is_symlink()
    assert link.is_symlink()
    assert_untouched(victim)


def test_sweep_never_raises(tmp_path: Path) -> None:
    """As an installer bound by file modes: another user's dead build directory (mode
    0700, so it cannot even be opened) and names that only look like build directories
    are skipped silently; its own dead one, read-only with a mode-000 subdirectory, is
    removed.  The old code died with ``TypeError: open() missing required argument
    'flags'``, failing the install it was cleaning up for."""
    user = other_user()
    tmp = Path(shared_dir(str(tmp_path / "tmp"), user, 0o1777))
    pid = dead_pid()
    theirs = tmp / f"{staging.BUILD_PREFIX}{pid}-theirs"
    user.run(["mkdir", "-m", "700", str(theirs)])
    user.run(["touch", str(theirs / "mod.py")])
    odd = [tmp / f"{staging.BUILD_PREFIX}{name}-x" for name in ("\u00b2", "9" * 30)]
    for path in odd:
        user.run(["mkdir", str(path)])
    mine = tmp / f"{staging.BUILD_PREFIX}{pid}-mine"
    locked = awkward_tree(mine, make_victim(tmp_path / "victim"))
    try:
        result = run_with_modes_binding(
            PROBE + """
import json, tempfile
from install_atomic.engine import staging
tempfile.tempdir = sys.argv[2]
print(json.dumps({"modes_bind": modes_bind, "removed": staging.sweep_build_dirs()}))
""",
            str(locked), str(tmp),
        )
    finally:
        if mine.exists():  # so that pytest can clean up after a failure
            for path in [mine, *mine.rglob("*")]:
                if not path.is_symlink():
                    path.chmod(0o700)
    assert result == {"removed": [str(mine)]}
    assert not os.path.lexists(mine)
    assert (theirs / "mod.py").is_file()
    assert all(path.is_dir() for path in odd)


def test_two_sweeps_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another installer's sweep removes the directory this one is walking, just before
    this one opens a subdirectory: what vanished is skipped, nothing is raised, and both
    report the directory gone.  (The old code died with a TypeError from its retry
    handler.)"""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = tmp_path / f"{staging.BUILD_PREFIX}{dead_pid()}-abc"
    (gone / "sub" / "deeper").mkdir(parents=True)
    (gone / "sub" / "deeper" / "mod.py").write_text("x = 1\n")
    (gone / "top.py").write_text("y = 2\n")
    real_open = os.open
    other: list[list[str]] = []

    def racing_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if path == "sub" and not other:
            other.append([])
            other[0] = staging.sweep_build_dirs()  # the other installer, run to the end
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", racing_open)
    ours = staging.sweep_build_dirs()
    monkeypatch.undo()
    assert other == [[str(gone)]], "the other sweep ran in the middle of this one"
    assert ours == [str(gone)], "vanishing entries are no error"
    assert not os.path.lexists(gone)


def test_sweep_judges_the_directory_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the sweep's ``lstat`` of root's dead build directory and its ``open``, the
    name comes to hold another user's directory: the ``fstat`` of what was opened shows
    it, and nothing of it is removed."""
    user = other_user()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    name = f"{staging.BUILD_PREFIX}{dead_pid()}-abc"
    (tmp_path / name / "lib").mkdir(parents=True)
    theirs = tmp_path / "theirs"
    (theirs / "lib").mkdir(parents=True)
    (theirs / "lib" / "mod.py").write_text("x = 1\n")
    for path in (theirs, theirs / "lib", theirs / "lib" / "mod.py"):
        os.chown(path, user.uid, user.gid)
    real_open = os.open
    swapped: list[str] = []

    def swapping_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if os.path.basename(os.fspath(path)) == name and not swapped:
            swapped.append(name)
            os.rename(tmp_path / name, tmp_path / "aside")
            os.rename(theirs, tmp_path / name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", swapping_open)
    removed = staging.sweep_build_dirs()
    monkeypatch.undo()
    assert swapped, "the swap was not injected"
    assert removed == []
    assert (tmp_path / name / "lib" / "mod.py").is_file(), "the other user's files are kept"
