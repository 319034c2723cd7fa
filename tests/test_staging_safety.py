"""Staging against other users and concurrent actors: ``remove_tree`` never follows a
symlink nor changes a mode through a path; an owner file is locked before its name
appears; stages and owner files another user planted are never judged dead, and
never make the installer wait."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from install_atomic.engine import staging
from users import other_user, run_without_dac, shared_dir

SRC_DIR = Path(staging.__file__).resolve().parents[2]


def dead_pid() -> int:
    """The pid of a process that has exited (reused only after the pid space wraps)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def run_with_modes_binding(code: str, *args: str) -> Any:
    """Run *code* in a child for which file modes bind as for an unprivileged owner (root
    without the DAC capabilities); return the JSON it prints, skipping where modes do not
    bind after all."""
    result = run_without_dac(code, *args)
    if not result.pop("modes_bind"):
        pytest.skip("file modes do not bind in the child: the DAC capabilities stayed")
    return result


#: For run_with_modes_binding's *code*: sets modes_bind, True if a mode-000 directory
#: (sys.argv[1]) refuses this process.
PROBE = """
import os
try:
    os.listdir(sys.argv[1])
    modes_bind = False
except PermissionError:
    modes_bind = True
"""


def awkward_tree(root: Path, victim: Path) -> Path:
    """A tree its owner can only remove by changing modes, with symlinks to *victim* in
    it: read-only directories and files, a mode-000 directory with content, one that
    can be read but not searched, one that can be searched but not read, and the tree
    itself read-only.  Returns the mode-000 directory."""
    (root / "ro" / "deeper").mkdir(parents=True)
    (root / "ro" / "mod.py").write_text("x = 1\n")
    (root / "ro" / "deeper" / "data.txt").write_text("data\n")
    (root / "ro" / "escape").symlink_to(victim)
    (root / "ro" / "file-link").symlink_to(victim / "precious.txt")
    (root / "ro" / "dangling").symlink_to("no-such-target")
    (root / "locked" / "inner").mkdir(parents=True)
    (root / "locked" / "inner" / "f.py").write_text("f = 1\n")
    (root / "locked" / "escape").symlink_to(victim)
    (root / "noexec").mkdir()
    (root / "noexec" / "f.txt").write_text("f\n")
    (root / "noread").mkdir()
    (root / "noread" / "f.txt").write_text("f\n")
    for path in sorted(root.rglob("*"), reverse=True):
        if not path.is_symlink():
            path.chmod(0o555 if path.is_dir() else 0o444)
    (root / "locked").chmod(0o000)
    (root / "noexec").chmod(0o600)
    (root / "noread").chmod(0o300)
    root.chmod(0o555)
    return root / "locked"


def make_victim(path: Path) -> Path:
    """A directory a symlink in a removed tree points to: it must survive unchanged."""
    (path / "sub").mkdir(parents=True)
    (path / "precious.txt").write_text("precious\n")
    path.chmod(0o700)
    return path


def assert_untouched(victim: Path) -> None:
    assert stat.S_IMODE(victim.stat().st_mode) == 0o700, "the victim's mode was changed"
    assert (victim / "precious.txt").read_text() == "precious\n"
    assert (victim / "sub").is_dir()


# -- remove_tree --------------------------------------------------------------------------


def test_remove_tree_removes_read_only_and_unreadable_trees_of_its_owner(tmp_path: Path) -> None:
    """As an owner bound by file modes: read-only and mode-000 directories are made
    accessible through descriptors and removed; the symlinks in them are unlinked, and
    their target keeps its mode and content.  The old code crashed with a TypeError
    (its retry handler called ``os.open(path)``)."""
    victim = make_victim(tmp_path / "victim")
    tree = tmp_path / "tree"
    locked = awkward_tree(tree, victim)
    try:
        result = run_with_modes_binding(
            PROBE + """
import json
from install_atomic.engine import staging
staging.remove_tree(sys.argv[2])
print(json.dumps({"modes_bind": modes_bind, "left": os.path.lexists(sys.argv[2])}))
""",
            str(locked), str(tree),
        )
    finally:
        if tree.exists():  # so that pytest can clean up after a failure
            for path in [tree, *tree.rglob("*")]:
                if not path.is_symlink():
                    path.chmod(0o700)
    assert result == {"left": False}
    assert_untouched(victim)


def test_remove_tree_unlinks_symlinks_and_never_follows_them(tmp_path: Path) -> None:
    victim = make_victim(tmp_path / "victim")
    tree = tmp_path / "tree"
    awkward_tree(tree, victim)
    staging.remove_tree(str(tree))
    assert not os.path.lexists(tree)
    assert_untouched(victim)
    # The top-level path itself: a symlink is unlinked, a file too, missing is fine.
    link = tmp_path / "link"
    link.symlink_to(victim)
    staging.remove_tree(str(link))
    assert not os.path.lexists(link)
    assert_untouched(victim)
    file = tmp_path / "file.txt"
    file.write_text("x\n")
    staging.remove_tree(str(file))
    assert not os.path.lexists(file)
    staging.remove_tree(str(tmp_path / "missing"))
    staging.remove_tree(str(tmp_path / "missing" / "below"))


def test_remove_tree_never_changes_a_mode_through_a_swapped_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack on the old code: an unlink in a read-only directory fails, and before
    the retry the directory has been swapped for a symlink to a victim.  The old code
    then chmod-ed the victim to 0777 and unlinked the victim's file, by path.  Now the
    mode is changed on the descriptor held, and the symlink is only unlinked."""
    victim = make_victim(tmp_path / "victim")
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "precious.txt").write_text("x\n")
    (tree / "d").chmod(0o555)
    moved = tmp_path / "moved"
    real_unlink = os.unlink
    swapped: list[str] = []

    def unlink(path: Any, *, dir_fd: int | None = None) -> None:
        if path == "precious.txt" and not swapped:
            swapped.append(path)
            os.rename(tree / "d", moved)
            os.symlink(victim, tree / "d")
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", unlink)
    error: OSError | None = None
    try:
        staging.remove_tree(str(tree))
    except OSError as exc:
        error = exc
    finally:
        monkeypatch.undo()
    assert swapped, "the fault was not injected"
    assert_untouched(victim)
    assert error is None
    assert not os.path.lexists(tree)
    assert list(moved.iterdir()) == [], "the directory held open was emptied"


# -- owner files --------------------------------------------------------------------------


def test_owner_file_is_locked_before_its_name_appears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recovery that looks at a stage just before its owner file is locked must find
    it alive.  The old code created ``.install-atomic-owner`` and only then locked it:
    in between, the stage looked dead and could be deleted under its installer."""
    dest = tmp_path / "dest"
    dest.mkdir()
    real_flock = fcntl.flock
    seen: list[tuple[str, bool]] = []

    def flock(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX and not seen:  # the Stage is about to lock its owner
            (stage,) = [p for p in dest.iterdir() if p.name.startswith(staging.PREFIX)]
            seen.append((stage.name, staging.is_live(str(stage))))
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    stage = staging.Stage(str(dest))
    monkeypatch.undo()
    try:
        assert seen == [(os.path.basename(stage.path), True)], "a live stage looked dead"
        assert os.listdir(stage.path) == [staging.OWNER]
        assert staging.is_live(stage.path)
        assert staging.distrust_stage(stage.path) is None
        stage.release()
        assert not staging.is_live(stage.path), "released: its installer is done with it"
    finally:
        stage.remove()
    assert not os.path.lexists(stage.path)


def test_a_stage_its_process_could_only_partly_remove_is_dead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last ``rmdir`` of a stage fails (EIO): its installer, still running, has
    released it, so recovery may finish the job.  The pid in its name is this live
    process's: judged by it, the stage (its owner file removed) looked alive for as
    long as the process ran, and a later install in it waited for it forever."""
    dest = tmp_path / "dest"
    dest.mkdir()
    stage = staging.Stage(str(dest))
    (Path(stage.path) / "mod.py").write_text("x = 1\n")
    name = os.path.basename(stage.path)
    real_rmdir = os.rmdir

    def rmdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if os.path.basename(os.fspath(path)) == name:
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        real_rmdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "rmdir", rmdir)
    with pytest.raises(OSError):
        stage.remove()
    monkeypatch.undo()
    assert os.listdir(stage.path) == [], "all but the directory itself was removed"
    assert staging.distrust_stage(stage.path) is None
    assert not staging.is_live(stage.path), "released by its installer: dead"
    staging.remove_tree(stage.path)
    assert not os.path.lexists(stage.path)


@contextlib.contextmanager
def never_blocks(what: str) -> Iterator[None]:
    """Fail (rather than hang the test run) if the block waits for ten minutes: the
    check it guards must return at once, whatever was planted."""

    def fail(signum: int, frame: object) -> None:
        raise AssertionError(f"{what} blocked")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(600)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("mode", [0o1777, 0o2775], ids=["sticky-world-writable", "group-writable"])
def test_planted_stages_are_never_judged_dead(tmp_path: Path, mode: int) -> None:
    """In a destination another user may write to, that user plants: a stage of their
    own with a FIFO as owner file, a stage of their own with an unlocked owner file, and
    (while root's stage was writable to them) a symlink or a FIFO as the owner file of
    a stage of root's.  ``is_live`` never blocks on them and never calls them dead;
    ``distrust_stage`` says why each is left alone.  The old code followed the symlink
    to the user's unlocked file (dead: removable), took the user's own stage for dead,
    and blocked forever opening a FIFO."""
    user = other_user()
    dest = Path(shared_dir(str(tmp_path / "dest"), user, mode))
    pid = dead_pid()
    bait = dest / "bait"
    user.run(["touch", str(bait)])
    planted: dict[str, Path] = {}

    theirs = dest / f"{staging.PREFIX}{pid}-their-fifo"
    user.run(["mkdir", str(theirs)])
    user.run(["mkfifo", str(theirs / staging.OWNER)])
    planted["their stage, FIFO owner"] = theirs
    theirs = dest / f"{staging.PREFIX}{pid}-their-own"
    user.run(["mkdir", str(theirs)])
    user.run(["touch", str(theirs / staging.OWNER)])
    planted["their stage, unlocked owner"] = theirs
    for kind, argv in (("symlink", ["ln", "-s", str(bait)]), ("FIFO", ["mkfifo"])):
        roots = dest / f"{staging.PREFIX}{pid}-root-{kind.lower()}"
        roots.mkdir()
        roots.chmod(0o777)
        user.run([*argv, str(roots / staging.OWNER)])
        roots.chmod(0o755)
        planted[f"root's stage, {kind} owner planted"] = roots
    dead = dest / f"{staging.PREFIX}{pid}-root-dead"  # control: trusted, and dead
    dead.mkdir()
    (dead / staging.OWNER).write_text("")

    for what, stage in planted.items():
        owner = stage / staging.OWNER
        if stat.S_ISFIFO(owner.lstat().st_mode):
            # With a writer present the old code's open did not block: it went on to
            # judge the FIFO's lock, and found it free.
            writer = os.open(owner, os.O_RDWR | os.O_NONBLOCK)
            try:
                assert staging.is_live(str(stage)), f"{what}: judged dead"
            finally:
                os.close(writer)
        with never_blocks(f"{what}: is_live or distrust_stage"):
            assert staging.is_live(str(stage)), f"{what}: judged dead"
            reason = staging.distrust_stage(str(stage))
        assert reason, f"{what}: trusted"
        assert os.path.lexists(owner)
    reasons = {what: str(staging.distrust_stage(str(stage))) for what, stage in planted.items()}
    assert "symbolic link" in reasons["root's stage, symlink owner planted"]
    assert "regular file" in reasons["root's stage, FIFO owner planted"]
    assert f"uid {user.uid}" in reasons["their stage, unlocked owner"]
    assert staging.distrust_stage(str(dead)) is None
    assert not staging.is_live(str(dead)), "a trusted stage whose owner lock is free is dead"


def test_distrust_stage_refuses_stages_others_may_write(tmp_path: Path) -> None:
    stage = tmp_path / f"{staging.PREFIX}1-x"
    stage.mkdir()
    assert staging.distrust_stage(str(stage)) is None, "no owner file: judged by its pid"
    owner = stage / staging.OWNER
    owner.write_text("")
    owner.chmod(0o666)
    assert "lets other users write" in str(staging.distrust_stage(str(stage)))
    assert staging.is_live(str(stage))
    owner.chmod(0o600)
    stage.chmod(0o775)
    assert "lets other users write" in str(staging.distrust_stage(str(stage)))
    assert staging.is_live(str(stage))
    stage.chmod(0o755)
    assert staging.distrust_stage(str(stage)) is None
    assert not staging.is_live(str(stage))
    link = tmp_path / f"{staging.PREFIX}1-link"
    link.symlink_to(stage)
    assert "symbolic link" in str(staging.distrust_stage(str(link)))
    assert staging.is_live(str(link))
    assert not staging.is_live(str(tmp_path / f"{staging.PREFIX}1-missing"))


def test_remove_tree_empties_again_a_directory_written_into_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compileall of the environment can write a pyc into a backup directory while
    the cleanup empties it: the rmdir then fails with ENOTEMPTY, and the directory is
    emptied again (a real file written between the emptying and the rmdir)."""
    tree = tmp_path / "backup"
    (tree / "pkg" / "__pycache__").mkdir(parents=True)
    (tree / "pkg" / "mod.py").write_text("x = 1\n")
    real = staging._rmdir
    written: list[str] = []

    def rmdir_after_a_writer(emptied: Any) -> None:
        if emptied.name == "__pycache__" and not written:
            # the concurrent writer: a new pyc lands in the emptied directory
            with open(os.path.join(emptied.where, "late.cpython-311.pyc"), "wb") as f:
                f.write(b"pyc")
            written.append(emptied.where)
        real(emptied)

    monkeypatch.setattr(staging, "_rmdir", rmdir_after_a_writer)
    staging.remove_tree(str(tree))
    assert written, "the writer never ran"
    assert not tree.exists()
