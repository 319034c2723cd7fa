"""The merge's speed-ups keep their guarantees: removing a replaced tree with several
threads (:func:`install_atomic.engine.staging.remove_tree`) removes exactly what the
one-by-one walk removes, never follows a symlink, and handles what resists as before."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from install_atomic.engine import staging
from mergekit import digest, write_tree


def _tree(root: Path, outside: Path) -> None:
    entries: dict[str, str | bytes] = {f"flat/f{i}": f"{i}\n" for i in range(200)}
    entries.update({f"leaves/d{d}/f{i}": "x" for d in range(20) for i in range(30)})
    entries.update({f"deep/a/b/c/f{i}": "y" for i in range(40)})
    entries.update({f"deep/a/f{i}": "z" for i in range(40)})
    entries.update({"flat/link-out": f"-> {outside}", "flat/broken": "-> nowhere",
                    "leaves/d0/dirlink": f"-> {outside}",
                    # an owner file below the top: that directory is left to the walk
                    f"leaves/d1/{staging.OWNER}": ""})
    write_tree(root, entries)
    os.mkfifo(root / "flat/fifo")
    ro = root / "leaves/readonly"
    write_tree(ro, {f"f{i}": "r" for i in range(20)})
    os.chmod(ro, 0o500)


def test_parallel_removal_removes_everything_and_follows_nothing(tmp_path: Path) -> None:
    outside = write_tree(tmp_path / "outside", {"keep": "k\n", "sub/keep": "k\n"})
    before = digest(outside)
    root = tmp_path / "victim"
    _tree(root, outside)
    staging.remove_tree(str(root))
    assert not os.path.lexists(root)
    assert digest(outside) == before
    assert sorted(os.listdir(tmp_path)) == ["outside"]


def test_parallel_removal_of_a_read_only_tree_owned_by_the_user(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "ro", {f"d{d}/f{i}": "x" for d in range(5) for i in range(40)})
    for d in range(5):
        os.chmod(root / f"d{d}", stat.S_IRUSR | stat.S_IXUSR)
    os.chmod(root, stat.S_IRUSR | stat.S_IXUSR)
    staging.remove_tree(str(root))
    assert not os.path.lexists(root)


def test_parallel_copy_is_copytree_with_symlinks(tmp_path: Path) -> None:
    """The staged tree copied by several threads (another filesystem, ``--copy``): the
    same entries, modes, link targets and modification times as ``shutil.copytree``."""
    import shutil

    from install_atomic.frontends.merge.tree import copy_entry

    src = write_tree(tmp_path / "src", {f"d{d}/f{i}": f"{d} {i}\n" for d in range(8)
                                        for i in range(60)})
    write_tree(src, {"d0/link": "-> f1", "d1/out": f"-> {tmp_path}", "top": "t\n",
                     "deep/a/b/c": "c\n"})
    os.chmod(src / "d2/f3", 0o751)
    os.chmod(src / "deep/a", 0o555)
    os.utime(src / "d3/f4", ns=(1_000_000_000, 1_234_567_891_011_121_314))
    copy_entry(str(src), str(tmp_path / "ours"))
    shutil.copytree(src, tmp_path / "theirs", symlinks=True)
    assert digest(tmp_path / "ours") == digest(tmp_path / "theirs") == digest(src)
    for rel in ("d3/f4", "d2/f3", "deep/a", "d0/link"):
        ours, theirs = os.lstat(tmp_path / "ours" / rel), os.lstat(tmp_path / "theirs" / rel)
        assert (ours.st_mode, ours.st_mtime_ns) == (theirs.st_mode, theirs.st_mtime_ns), rel
    os.chmod(src / "deep/a", 0o755)
    os.chmod(tmp_path / "ours/deep/a", 0o755)
    os.chmod(tmp_path / "theirs/deep/a", 0o755)
