"""``install-atomic merge`` out of space: STAGED on one filesystem, PREFIX on a small tmpfs.

The staged tree is copied into the prefix's staging directory (another filesystem),
and the copy, the staged manifest or the journal runs out of space.  Through the
command line, in a real process, against a real full filesystem: the merge fails with
an error naming the path and what to do, the prefix is byte for byte as before
(modes and link targets included), nothing named ``.install-atomic*`` is left, and the
staged tree is untouched.  ``tests/test_merge.py`` checks the same failure through the
Python API; these tests check what a user of the command sees, on a tree of many
files, that the advice works, and every instant at which the space can run out.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mergekit import digest, files_of, ia, private, write_tree

PAGE = 4096


@contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """Mount a tmpfs with *options* at *where*; skip the test when that is not possible."""
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs at {where}: {proc.stderr.strip()} (needs root)")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)


def _v1(n: int) -> dict[str, str | bytes]:
    return {**{f"share/pkg/d{i % 7}/f{i}.txt": f"old {i}\n" for i in range(n)},
            "include/pkg.h": "/* 1 */\n", "lib/libpkg.so.1": b"\x7fELF 1\n",
            "lib/libpkg.so": "-> libpkg.so.1"}


def _v2(n: int, library: int) -> dict[str, str | bytes]:
    return {**{f"share/pkg/d{i % 7}/f{i}.txt": f"new {i}\n" for i in range(0, n, 2)},
            "include/pkg.h": "/* 2 */\n", "include/pkg-extra.h": "/* 2 */\n",
            "lib/libpkg.so.2": b"\x7fELF 2\n" + b"\0" * library,
            "lib/libpkg.so": "-> libpkg.so.2"}


def _no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, f"a traceback, not an error message:\n{stderr}"


def test_enospc_copying_a_tree_names_the_path_and_the_fix(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "size=1m") as mnt:
        prefix = mnt / "usr"
        pkgs = prefix / "var/lib/pkgs"
        ia("merge", "--manifest", str(pkgs / "pkg-1.json"),
           str(write_tree(tmp_path / "dest-1", _v1(60))), str(prefix))
        write_tree(prefix, {"include/other.h": "another package's\n"})
        before = digest(prefix)
        staged = write_tree(tmp_path / "dest-2", _v2(60, 1_500_000))  # more than the tmpfs
        staged_before = digest(staged)
        args = ["merge", "--manifest", str(pkgs / "pkg-2.json"), "--replace",
                str(pkgs / "pkg-1.json"), str(staged), str(prefix)]
        proc = ia(*args, check=False)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        _no_traceback(proc.stderr)
        message = proc.stderr.strip()
        assert message.startswith("install_atomic: error:"), message
        assert "No space left on device" in message
        assert f"{staged}{os.sep}" in message  # what could not be copied
        assert "Nothing was changed" in message and "free space" in message
        assert digest(prefix) == before, "the prefix changed"
        assert not private(prefix), private(prefix)
        assert digest(staged) == staged_before  # copied, never moved: left as it was
        assert sorted(os.listdir(pkgs)) == ["pkg-1.json"]

        # The advice works: with space freed, the same command merges.
        subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)
        ia(*args)
        assert (prefix / "include/pkg.h").read_text() == "/* 2 */\n"
        assert os.readlink(prefix / "lib/libpkg.so") == "libpkg.so.2"
        assert not (prefix / "lib/libpkg.so.1").exists()
        assert not (prefix / "share/pkg/d1/f1.txt").exists()  # odd files: only version 1
        assert (prefix / "include/other.h").read_text() == "another package's\n"
        assert sorted(os.listdir(pkgs)) == ["pkg-2.json"]
        listed = set(json.loads((pkgs / "pkg-2.json").read_text())["files"])
        assert listed == files_of(digest(prefix)) - {"include/other.h", "var/lib/pkgs/pkg-2.json"}
        assert not private(prefix)


def _merge_with_pages_left(tmp_path: Path, left: int) -> tuple[subprocess.CompletedProcess[str],
                                                                 dict[str, object]]:
    """Merge version 2 onto a tmpfs where, once the staged files are copied, *left*
    pages are free (negative: the copy itself runs out).  Returns the merge's process
    and what the test checks."""
    with tmpfs(tmp_path / f"fs{left}", "size=256k") as mnt:
        prefix = mnt / "usr"
        pkgs = prefix / "var/lib/pkgs"
        ia("merge", "--manifest", str(pkgs / "pkg-1.json"),
           str(write_tree(tmp_path / f"dest-1-{left}", _v1(3))), str(prefix))
        before = digest(prefix)
        st = os.statvfs(mnt)
        free_pages = st.f_bavail * st.f_frsize // PAGE
        # Version 2's files, one page each but the library, which takes the rest.
        small = len(_v2(3, 0)) - 2  # the symlink takes no page, the library is counted apart
        library = (free_pages - small - left) * PAGE - len(b"\x7fELF 2\n")
        staged = write_tree(tmp_path / f"dest-2-{left}", _v2(3, library))
        staged_before = digest(staged)
        proc = ia("merge", "--manifest", str(pkgs / "pkg-2.json"), "--replace",
                  str(pkgs / "pkg-1.json"), str(staged), str(prefix), check=False)
        seen: dict[str, object] = {
            "unchanged": digest(prefix) == before,
            "new": (prefix / "include/pkg.h").read_text() == "/* 2 */\n"
            and sorted(os.listdir(pkgs)) == ["pkg-2.json"]
            and not (prefix / "lib/libpkg.so.1").exists(),
            "manifests": sorted(os.listdir(pkgs)),
            "private": private(prefix),
            "staged_untouched": digest(staged) == staged_before,
            "prefix": str(prefix),
        }
    return proc, seen


#: Pages free once the staged files are in: -1, the copy fails; 0, the staged manifest
#: does not fit; then the journal; then the merge fits.
LEFT = (-1, 0, 1, 2, 3)


def test_enospc_at_every_step_before_the_commit_changes_nothing(tmp_path: Path) -> None:
    """Wherever the space runs out (the copy, the staged manifest, the journal), the
    prefix is exactly as before and clean; once everything fits, the merge is whole."""
    failed = 0
    for left in LEFT:
        proc, seen = _merge_with_pages_left(tmp_path, left)
        what = f"{left} pages left: exit {proc.returncode}\n{proc.stderr}"
        assert seen["private"] == [], what
        assert seen["staged_untouched"], what
        if proc.returncode == 0:
            assert seen["new"], what
        else:
            failed += 1
            assert proc.returncode == 1, what
            assert seen["unchanged"], what
            assert seen["manifests"] == ["pkg-1.json"], what
            assert "No space left on device" in proc.stderr, what
    assert failed >= 2, "the space never ran out after the copy"


def test_enospc_at_every_step_is_a_clear_error(tmp_path: Path) -> None:
    """The error, wherever the space runs out, is one line naming the path and what to
    do, never a traceback."""
    for left in LEFT:
        proc, seen = _merge_with_pages_left(tmp_path, left)
        if proc.returncode == 0:
            continue
        what = f"{left} pages left:\n{proc.stderr}"
        _no_traceback(proc.stderr)
        assert proc.stderr.startswith("install_atomic: error:"), what
        assert "No space left on device" in proc.stderr, what
        assert str(seen["prefix"]) in proc.stderr or str(tmp_path) in proc.stderr, what
        assert "Nothing was changed" in proc.stderr, what
