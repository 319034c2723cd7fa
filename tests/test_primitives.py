"""install_atomic.engine.primitives on the real filesystem: exchange, no-replace rename, the
two-rename fallback, and the fsync helpers."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from enginekit import digest
from install_atomic.engine import primitives

HAS_RENAMEAT2 = primitives._renameat2 is not None


def ident(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return (st.st_dev, st.st_ino)


def make_dir(path: Path, files: dict[str, bytes]) -> Path:
    path.mkdir(parents=True)
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    return path


def raising(code: int) -> Callable[[str, str, int], None]:
    def fake(old: str, new: str, flags: int) -> None:
        raise OSError(code, os.strerror(code), old, None, new)

    return fake


@pytest.fixture(params=["native", "einval", "missing"])
def rename_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """renameat2 as the kernel offers it, answering EINVAL (NFS, FUSE), or absent."""
    mode: str = request.param
    if mode == "native" and not HAS_RENAMEAT2:
        pytest.skip("no renameat2 / renamex_np on this platform")
    if mode == "einval":
        monkeypatch.setattr(primitives, "_renameat2", raising(errno.EINVAL))
    elif mode == "missing":
        monkeypatch.setattr(primitives, "_renameat2", None)
    return mode


# -- exchange -----------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux-only")
def test_renameat2_is_available_on_linux() -> None:
    assert HAS_RENAMEAT2, "renameat2 should load from glibc or as a raw syscall on Linux"


@pytest.mark.skipif(not HAS_RENAMEAT2, reason="no atomic exchange on this platform")
def test_exchange_swaps_two_directories(tmp_path: Path) -> None:
    a = make_dir(tmp_path / "a", {"x.py": b"A", "sub/y.py": b"AY"})
    b = make_dir(tmp_path / "b", {"z.py": b"B"})
    ids = ident(a), ident(b)
    assert primitives.exchange(a, b) is True
    assert (a / "z.py").read_bytes() == b"B"
    assert (b / "sub" / "y.py").read_bytes() == b"AY"
    assert (ident(b), ident(a)) == ids
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


@pytest.mark.skipif(not HAS_RENAMEAT2, reason="no atomic exchange on this platform")
def test_exchange_swaps_a_file_and_a_directory(tmp_path: Path) -> None:
    f = tmp_path / "entry"
    f.write_bytes(b"file")
    d = make_dir(tmp_path / "staged", {"__init__.py": b"dir"})
    assert primitives.exchange(d, f) is True
    assert (f / "__init__.py").read_bytes() == b"dir"
    assert d.is_file() and d.read_bytes() == b"file"


@pytest.mark.skipif(not HAS_RENAMEAT2, reason="no atomic exchange on this platform")
def test_exchange_of_a_missing_entry_raises_and_changes_nothing(tmp_path: Path) -> None:
    make_dir(tmp_path / "a", {"x": b"1"})
    before = digest(tmp_path)
    with pytest.raises(FileNotFoundError):
        primitives.exchange(tmp_path / "a", tmp_path / "missing")
    assert digest(tmp_path) == before


@pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP])
def test_exchange_unsupported_returns_false_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    make_dir(tmp_path / "a", {"x": b"1"})
    make_dir(tmp_path / "b", {"y": b"2"})
    before = digest(tmp_path)
    monkeypatch.setattr(primitives, "_renameat2", raising(code))
    assert primitives.exchange(tmp_path / "a", tmp_path / "b") is False
    assert digest(tmp_path) == before


def test_exchange_without_renameat2_returns_false(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_dir(tmp_path / "a", {"x": b"1"})
    make_dir(tmp_path / "b", {"y": b"2"})
    before = digest(tmp_path)
    monkeypatch.setattr(primitives, "_renameat2", None)
    assert primitives.exchange(tmp_path / "a", tmp_path / "b") is False
    assert digest(tmp_path) == before


@pytest.mark.parametrize("code", [errno.EXDEV, errno.EIO, errno.EACCES, errno.ENOSPC])
def test_exchange_other_errors_propagate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    make_dir(tmp_path / "a", {"x": b"1"})
    make_dir(tmp_path / "b", {"y": b"2"})
    before = digest(tmp_path)
    monkeypatch.setattr(primitives, "_renameat2", raising(code))
    with pytest.raises(OSError) as info:
        primitives.exchange(tmp_path / "a", tmp_path / "b")
    assert info.value.errno == code
    assert digest(tmp_path) == before


# -- rename_noreplace / replace ---------------------------------------------------------------


def test_rename_noreplace_moves_a_directory(tmp_path: Path, rename_mode: str) -> None:
    src = make_dir(tmp_path / "src", {"a.py": b"A"})
    src_id = ident(src)
    primitives.rename_noreplace(src, tmp_path / "dst")
    assert not src.exists()
    assert ident(tmp_path / "dst") == src_id
    assert (tmp_path / "dst" / "a.py").read_bytes() == b"A"


@pytest.mark.parametrize("target", ["file", "dir", "dangling-symlink"])
def test_rename_noreplace_refuses_an_existing_target(
    tmp_path: Path, rename_mode: str, target: str
) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"new")
    dst = tmp_path / "dst"
    if target == "file":
        dst.write_bytes(b"old")
    elif target == "dir":
        make_dir(dst, {"keep": b"old"})
    else:
        dst.symlink_to("nowhere")
    before = digest(tmp_path)
    with pytest.raises(FileExistsError) as info:
        primitives.rename_noreplace(src, dst)
    assert info.value.errno == errno.EEXIST
    assert digest(tmp_path) == before


def test_replace_puts_the_new_file_in_one_rename(tmp_path: Path) -> None:
    (tmp_path / "dst").write_bytes(b"old")
    (tmp_path / "src").write_bytes(b"new")
    new_id = ident(tmp_path / "src")
    primitives.replace(tmp_path / "src", tmp_path / "dst")
    assert (tmp_path / "dst").read_bytes() == b"new"
    assert ident(tmp_path / "dst") == new_id
    assert not (tmp_path / "src").exists()


# -- swap_by_renames / swap_into ----------------------------------------------------------------


def test_swap_by_renames_file_keeps_dest_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, new, backup = tmp_path / "mod.py", tmp_path / "staged.py", tmp_path / ".bak"
    dest.write_bytes(b"old")
    new.write_bytes(b"new")
    old_id, new_id = ident(dest), ident(new)
    seen: list[tuple[bool, bool]] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        # At the one rename that changes dest: dest exists and the backup is the old inode.
        seen.append((os.path.exists(dest), ident(backup) == old_id))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    primitives.swap_by_renames(new, dest, backup)
    assert seen == [(True, True)]
    assert dest.read_bytes() == b"new" and ident(dest) == new_id
    assert backup.read_bytes() == b"old" and ident(backup) == old_id
    assert not new.exists()


def test_swap_by_renames_symlink_is_moved_not_followed(tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"target")
    dest = tmp_path / "link"
    dest.symlink_to("target")
    new = tmp_path / "staged"
    new.write_bytes(b"new")
    primitives.swap_by_renames(new, dest, tmp_path / ".bak")
    assert dest.read_bytes() == b"new" and not dest.is_symlink()
    assert os.readlink(tmp_path / ".bak") == "target"
    assert (tmp_path / "target").read_bytes() == b"target"


def test_swap_by_renames_directory(tmp_path: Path) -> None:
    dest = make_dir(tmp_path / "pkg", {"__init__.py": b"old", "gone.py": b"x"})
    new = make_dir(tmp_path / "staged", {"__init__.py": b"new"})
    old_id, new_id = ident(dest), ident(new)
    primitives.swap_by_renames(new, dest, tmp_path / ".bak")
    assert ident(dest) == new_id and sorted(os.listdir(dest)) == ["__init__.py"]
    assert ident(tmp_path / ".bak") == old_id
    assert (tmp_path / ".bak" / "gone.py").read_bytes() == b"x"
    assert not new.exists()


@pytest.mark.parametrize("direction", ["file-to-dir", "dir-to-file"])
def test_swap_into_handles_a_type_change(tmp_path: Path, rename_mode: str, direction: str) -> None:
    """An entry that changes type between versions (a file becoming a directory or the
    reverse) is swapped with or without an atomic exchange."""
    dest, new = tmp_path / "entry", tmp_path / "staged"
    if direction == "file-to-dir":
        dest.write_bytes(b"old file")
        make_dir(new, {"__init__.py": b"new dir"})
    else:
        make_dir(dest, {"__init__.py": b"old dir"})
        new.write_bytes(b"new file")
    new_id, old_id = ident(new), ident(dest)
    old_at = primitives.swap_into(new, dest, tmp_path / ".bak")
    assert ident(dest) == new_id
    assert ident(Path(old_at)) == old_id


def test_swap_into_prefers_exchange(tmp_path: Path, rename_mode: str) -> None:
    dest = make_dir(tmp_path / "pkg", {"a": b"old"})
    new = make_dir(tmp_path / "staged", {"a": b"new"})
    backup = tmp_path / ".bak"
    old_id = ident(dest)
    old_at = primitives.swap_into(new, dest, backup)
    assert (dest / "a").read_bytes() == b"new"
    if rename_mode == "native":
        assert old_at == str(new) and not backup.exists()
    else:
        assert old_at == str(backup) and not new.exists()
    assert ident(Path(old_at)) == old_id


# -- fsync ------------------------------------------------------------------------------


def test_fsync_tree_syncs_every_regular_file_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_dir(tmp_path / "tree", {"a.py": b"a", "pkg/b.py": b"b", "pkg/sub/c.py": b"c"})
    (root / "empty").mkdir()
    (root / "link-to-file").symlink_to("a.py")
    (root / "link-to-dir").symlink_to("pkg")
    (root / "dangling").symlink_to("nowhere")
    os.mkfifo(root / "fifo")
    outside = make_dir(tmp_path / "outside", {"secret": b"s"})
    (root / "link-outside").symlink_to(outside)

    opened: dict[int, str] = {}
    synced: list[str] = []
    real_open, real_fsync = os.open, os.fsync

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd: int = real_open(path, flags, *args, **kwargs)
        opened[fd] = os.path.relpath(path, tmp_path)
        return fd

    def fake_fsync(fd: int) -> None:
        synced.append(opened[fd])
        real_fsync(fd)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "fsync", fake_fsync)
    primitives.fsync_tree(root)
    expected = {
        "tree", "tree/a.py", "tree/empty", "tree/pkg", "tree/pkg/b.py", "tree/pkg/sub",
        "tree/pkg/sub/c.py",
    }  # fmt: skip
    assert sorted(synced) == sorted(expected), "each regular file and directory once, no links"


def test_fsync_path_on_a_file_and_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    primitives.fsync_path(tmp_path / "f")
    primitives.fsync_path(tmp_path)
    with pytest.raises(FileNotFoundError):
        primitives.fsync_path(tmp_path / "missing")


def test_same_device(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert primitives.same_device(tmp_path, tmp_path / "a")
    if os.lstat("/proc").st_dev != os.lstat(tmp_path).st_dev:
        assert not primitives.same_device(tmp_path, "/proc")
