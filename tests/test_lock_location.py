"""Where the destination lock lives (``engine.locking.lock_path_for``), and why a lock file
in ``/tmp`` is believed only when this user or root owns it.

Outside a virtual environment the front ends lock ``/tmp/install-atomic-<digest>.lock``:
no lock file is left in a tree that may be packaged (``--prefix``, ``--home``,
``--root``), and every installer into the destination finds the same file, whatever its
``TMPDIR``.  Anyone may create files in ``/tmp``: a lock file another user planted there
could be unlinked by them while an installer holds it, so that the next installer locks
a fresh file and both commit at once; it is refused, with the path and the fix.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path

import pytest

from helpers import MakeVenv, flock_holders, leftovers, make_project, tree_digest
from install_atomic.engine import locking
from install_atomic.errors import DestinationError
from test_command import (
    LOCK,
    Layout,
    describe,
    detached_lock,
    lock_files,
    lock_held,
    output,
    setup_py,
)
from users import other_user, shared_dir


def expected_detached(destination: Path) -> str:
    digest = hashlib.sha256(os.fsencode(os.path.realpath(destination))).hexdigest()[:16]
    return f"/tmp/install-atomic-{digest}.lock"


def test_lock_path_outside_a_virtual_environment(tmp_path: Path) -> None:
    lib = tmp_path / "prefix" / "lib" / "python3" / "site-packages"
    lib.mkdir(parents=True)
    assert locking.lock_path_for(str(lib)) == str(lib / LOCK)  # the engine's default
    assert locking.lock_path_for(str(lib), detached=True) == expected_detached(lib)
    # A link to the destination is the same destination: the same lock.
    link = tmp_path / "link"
    link.symlink_to(lib)
    assert locking.lock_path_for(str(link), detached=True) == expected_detached(lib)
    other = tmp_path / "other"
    other.mkdir()
    assert locking.lock_path_for(str(other), detached=True) != expected_detached(lib)


def test_lock_path_in_a_virtual_environment(tmp_path: Path) -> None:
    """A venv keeps ``<venv>/.lock``, the file uv locks, detached or not."""
    venv = tmp_path / "venv"
    lib = venv / "lib" / "python3" / "site-packages"
    lib.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for detached in (False, True):
        assert locking.lock_path_for(str(lib), detached=detached) == str(venv / LOCK)


def test_a_missing_lock_in_a_shared_directory_is_created_ours(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    lock = shared / "install-atomic-test.lock"
    with locking.hold(str(lock), 10):
        st = os.lstat(lock)
        assert stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()
        assert flock_holders(lock) == [os.getpid()]
    assert flock_holders(lock) == []
    assert lock.is_file()  # never deleted


def _plant(kind: str, path: Path) -> None:
    """Have the unprivileged neighbour create *path* (a file or a FIFO)."""
    user = other_user()
    user.run(["touch" if kind == "file" else "mkfifo", str(path)])
    assert os.lstat(path).st_uid == user.uid


@pytest.mark.parametrize("kind", ["file", "fifo"])
def test_a_lock_planted_in_a_shared_directory_is_refused(kind: str, tmp_path: Path) -> None:
    """In a sticky world-writable directory, a lock file another user made is refused, and
    left alone; a FIFO does not make the installer wait."""
    user = other_user()
    shared = Path(shared_dir(str(tmp_path / "shared"), user))
    lock = shared / "install-atomic-test.lock"
    _plant(kind, lock)
    before = os.lstat(lock)
    with pytest.raises(DestinationError) as info, locking.hold(str(lock), 10):
        pytest.fail("the planted lock file was used")
    message = str(info.value)
    assert info.value.path == str(lock)
    assert f"the lock file {lock} is not trusted" in message
    reason = "not a regular file" if kind == "fifo" else f"owned by uid {user.uid}"
    assert reason in message
    assert f"rm {lock}" in message and "Nothing was changed" in message
    after = os.lstat(lock)
    assert (after.st_ino, after.st_uid, after.st_mode) == (before.st_ino, before.st_uid,
                                                           before.st_mode)


def test_another_users_lock_in_a_private_directory_is_used(tmp_path: Path) -> None:
    """The rule is for directories where anyone may create files: in a directory only its
    users may write to (a venv, a site-packages), whoever may write there may already
    change the destination, so their ``.lock`` is used as before."""
    user = other_user()
    private = Path(shared_dir(str(tmp_path / "venv"), user, mode=0o755))
    os.chown(private, user.uid, user.gid)
    lock = private / LOCK
    _plant("file", lock)
    with locking.hold(str(lock), 10):
        assert flock_holders(lock) == [os.getpid()]


def test_install_refuses_a_planted_detached_lock(make_venv: MakeVenv, tmp_path: Path) -> None:
    """End to end, in the real /tmp: the neighbour plants the lock file of a prefix's
    library directory; ``install_atomic --prefix`` refuses to commit, names the file and
    the fix, and changes nothing; once the file is removed the install goes through."""
    user = other_user()
    venv = make_venv("newest")
    prefix = tmp_path / "prefix"
    lock = detached_lock(Layout.of_prefix(prefix).lib)
    try:
        setup_py(venv, make_project("pkg", tmp_path, "1.0"), "--prefix", prefix)
        assert lock.is_file() and lock.stat().st_uid == os.geteuid()
        lock.unlink()
        _plant("file", lock)
        before = tree_digest(prefix)
        proc = setup_py(venv, make_project("pkg", tmp_path, "2.0"), "--prefix", prefix,
                        check=False)
        assert proc.returncode != 0, describe(proc)
        assert f"the lock file {lock} is not trusted" in output(proc)
        assert f"owned by uid {user.uid}" in output(proc) and f"rm {lock}" in output(proc)
        assert tree_digest(prefix) == before
        assert leftovers(prefix) == []
        assert lock.stat().st_uid == user.uid  # left alone
        lock.unlink()
        proc = setup_py(venv, make_project("pkg", tmp_path / "again", "2.0"), "--prefix",
                        prefix)
        assert "install_atomic: installed demo-pkg 2.0" in proc.stdout
        assert lock_files(prefix) == []
    finally:
        lock.unlink(missing_ok=True)


def test_installers_into_one_prefix_share_the_detached_lock(
    make_venv: MakeVenv, tmp_path: Path
) -> None:
    """Another process holding the detached lock of a prefix (as a second installer would)
    makes the install wait for it and time out, naming that lock and its holder: the
    file is the one every installer into the prefix locks, whatever TMPDIR says."""
    venv = make_venv("newest")
    prefix = tmp_path / "prefix"
    lock = detached_lock(Layout.of_prefix(prefix).lib)
    try:
        setup_py(venv, make_project("pkg", tmp_path, "1.0"), "--prefix", prefix)
        before = tree_digest(prefix)
        with lock_held(venv, lock) as holder:
            proc = setup_py(venv, make_project("pkg", tmp_path, "2.0"), "--prefix", prefix,
                            "--lock-timeout", "1", env={"TMPDIR": str(tmp_path)},
                            check=False)
        assert proc.returncode != 0, describe(proc)
        assert f"waiting for the lock {lock}, held by process {holder.pid}" in output(proc)
        assert tree_digest(prefix) == before
        assert lock_files(prefix) == []
    finally:
        lock.unlink(missing_ok=True)


def test_the_lock_file_is_kept_fresh_while_held(tmp_path: Path) -> None:
    """Taking a lock in a shared directory dates it now, so that a cleaner of old files
    in /tmp (systemd-tmpfiles ages them by date) does not delete it while it is held."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    lock = shared / "install-atomic-test.lock"
    lock.touch()
    old = time.time() - 30 * 24 * 3600
    os.utime(lock, (old, old))
    with locking.hold(str(lock), 10):
        assert lock.stat().st_mtime > old + 29 * 24 * 3600

