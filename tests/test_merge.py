"""``install-atomic merge``: a staged DESTDIR tree into a live prefix, one transaction.

Real files, real renames, real processes: the prefix is compared byte for byte
(modes and link targets included) before and after, and a failure is made by a
real filesystem (a full tmpfs) or by a real process killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from install_atomic.errors import ConflictError, StagingError
from install_atomic.frontends.merge import MergeError, MergeOptions, merge, uninstall
from install_atomic.frontends.merge.layout import Layout
from mergekit import digest, env, files_of, ia, private, write_tree

QUIET = {"log": lambda _m: None, "warn": lambda _m: None}


def _merge(staged: Path, prefix: Path, **kw: object) -> list[str]:
    warnings: list[str] = []
    opts = MergeOptions(str(staged), str(prefix), log=lambda _m: None, warn=warnings.append,
                        **kw)  # type: ignore[arg-type]
    merge(opts)
    return warnings


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    p = tmp_path / "prefix"
    write_tree(p, {"include/other.h": "other\n", "lib/libother.so": "other-lib\n",
                   "share/doc/other/README": "other\n"})
    return p


def test_new_entries_arrive_and_existing_directories_are_merged(
        tmp_path: Path, prefix: Path) -> None:
    before = digest(prefix)
    staged = write_tree(tmp_path / "d", {
        "include/foo/foo.h": "foo\n", "lib/libfoo.so.1": "elf\n", "lib/libfoo.so": "-> libfoo.so.1",
        "bin/foo": "#!/bin/sh\n", "share/doc/foo/README": "foo\n"})
    manifest = prefix / "var/lib/pkgs/foo-1.json"
    _merge(staged, prefix, manifest=str(manifest), name="foo", version="1")
    after = digest(prefix)
    for rel, entry in before.items():  # nothing of the other package changed
        assert after[rel] == entry, rel
    assert os.readlink(prefix / "lib/libfoo.so") == "libfoo.so.1"
    assert (prefix / "include/foo/foo.h").read_text() == "foo\n"
    data = json.loads(manifest.read_text())
    assert data["name"] == "foo" and data["version"] == "1"
    assert data["prefix"] == str(prefix.resolve())
    assert data["files"] == sorted(["include/foo/foo.h", "lib/libfoo.so.1", "lib/libfoo.so",
                                    "bin/foo", "share/doc/foo/README"])
    assert not private(prefix)
    assert not any(staged.iterdir())  # moved, not copied: the staged tree is consumed


def test_strip_and_copy_leave_the_staged_tree(tmp_path: Path, prefix: Path) -> None:
    staged = write_tree(tmp_path / "d", {"opt/x/include/a.h": "a\n"})
    before = digest(staged)
    _merge(staged, prefix, strip="/opt/x", copy=True)
    assert (prefix / "include/a.h").read_text() == "a\n"
    assert digest(staged) == before


def test_existing_file_is_replaced_by_one_rename_never_rewritten(
        tmp_path: Path, prefix: Path) -> None:
    old_inode = os.stat(prefix / "include/other.h").st_ino
    with open(prefix / "include/other.h", "rb") as held:  # a process holding the old file
        _merge(write_tree(tmp_path / "d", {"include/other.h": "new\n"}), prefix)
        assert held.read() == b"other\n"
    assert (prefix / "include/other.h").read_text() == "new\n"
    assert os.stat(prefix / "include/other.h").st_ino != old_inode


def test_staged_symlink_replaces_a_symlink(tmp_path: Path, prefix: Path) -> None:
    os.symlink("libother.so", prefix / "lib/libx.so")
    _merge(write_tree(tmp_path / "d", {"lib/libx.so": "-> libx.so.2", "lib/libx.so.2": "2"}),
           prefix)
    assert os.readlink(prefix / "lib/libx.so") == "libx.so.2"


def test_lib64_symlink_is_merged_through_never_replaced(tmp_path: Path, prefix: Path) -> None:
    os.symlink("lib", prefix / "lib64")
    staged = write_tree(tmp_path / "d", {"lib64/libfoo.so": "foo", "lib64/pkgconfig/foo.pc": "pc",
                                         "lib/libbar.so": "bar"})
    manifest = tmp_path / "m" / "foo.json"
    _merge(staged, prefix, manifest=str(manifest))
    assert os.path.islink(prefix / "lib64") and os.readlink(prefix / "lib64") == "lib"
    assert (prefix / "lib/libfoo.so").read_text() == "foo"
    assert (prefix / "lib/pkgconfig/foo.pc").read_text() == "pc"
    assert (prefix / "lib/libother.so").exists()
    assert "lib/libfoo.so" in json.loads(manifest.read_text())["files"]


def test_symlink_leading_outside_the_prefix_is_refused_unless_asked(
        tmp_path: Path, prefix: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, prefix / "lib64")
    staged = write_tree(tmp_path / "d", {"lib64/libfoo.so": "foo", "include/foo.h": "h"})
    before, staged_before = digest(prefix), digest(staged)
    with pytest.raises(MergeError, match="outside"):
        _merge(staged, prefix)
    assert digest(prefix) == before and not private(prefix)
    assert digest(staged) == staged_before  # put back
    _merge(staged, prefix, follow_outside_links=True, manifest=str(tmp_path / "m.json"))
    assert (outside / "libfoo.so").read_text() == "foo"
    assert os.path.islink(prefix / "lib64") and not private(outside)
    files = json.loads((tmp_path / "m.json").read_text())["files"]
    assert str(outside / "libfoo.so") in files


def test_a_file_never_replaces_a_directory(tmp_path: Path, prefix: Path) -> None:
    before = digest(prefix)
    with pytest.raises(MergeError, match="will not replace a directory"):
        _merge(write_tree(tmp_path / "d", {"share/doc": "a file"}), prefix)
    assert digest(prefix) == before and not private(prefix)


def test_modes_follow_the_umask_or_mode(tmp_path: Path, prefix: Path) -> None:
    staged = write_tree(tmp_path / "d", {"share/ro/data": "x", "bin/tool": "#!/bin/sh\n"})
    os.chmod(staged / "share/ro/data", 0o444)
    os.chmod(staged / "bin/tool", 0o500)
    os.chmod(staged / "share/ro", 0o555)
    _merge(staged, prefix, mode="022")
    assert stat.S_IMODE(os.stat(prefix / "share/ro/data").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(prefix / "bin/tool").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(prefix / "share/ro").st_mode) == 0o755
    staged = write_tree(tmp_path / "e", {"share/kept/data": "x"})
    os.chmod(staged / "share/kept/data", 0o440)
    os.chmod(staged / "share/kept", 0o550)
    _merge(staged, prefix, mode="keep")
    assert stat.S_IMODE(os.stat(prefix / "share/kept/data").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(prefix / "share/kept").st_mode) == 0o750
    uninstall_me = write_tree(tmp_path / "f", {"share/x/y": "z"})
    os.chmod(uninstall_me / "share/x", 0o500)
    _merge(uninstall_me, prefix, mode="077")
    assert stat.S_IMODE(os.stat(prefix / "share/x").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(prefix / "share/x/y").st_mode) == 0o600


def _make_project(root: Path, version: str, headers: list[str], extra: dict[str, str]) -> Path:
    """A tiny autotools-like project: ``make install DESTDIR=... prefix=...``."""
    root.mkdir(parents=True)
    for h in headers:
        (root / h).write_text(f"/* {h} {version} */\n")
    for name, text in extra.items():
        (root / name).write_text(text)
    (root / "hello.c").write_text(f'int hello_version(void) {{ return {version[0]}; }}\n')
    installs = "\n".join(f"\tinstall -m 644 {h} $(DESTDIR)$(prefix)/include/hello/{h}"
                         for h in headers)
    docs = "\n".join(f"\tinstall -m 444 {n} $(DESTDIR)$(prefix)/share/doc/hello/{n}"
                     for n in extra)
    (root / "Makefile").write_text(
        "prefix ?= /usr/local\n"
        "all: libhello.so\n"
        "libhello.so: hello.c\n\t$(CC) -shared -fPIC -o $@ $<\n"
        "install: all\n"
        "\tinstall -d $(DESTDIR)$(prefix)/include/hello $(DESTDIR)$(prefix)/lib64"
        " $(DESTDIR)$(prefix)/share/doc/hello\n"
        f"{installs}\n{docs}\n"
        f"\tinstall -m 755 libhello.so $(DESTDIR)$(prefix)/lib64/libhello.so.{version}\n"
        f"\tln -sf libhello.so.{version} $(DESTDIR)$(prefix)/lib64/libhello.so\n")
    return root


@pytest.mark.skipif(not shutil.which("make") or not shutil.which("cc"), reason="needs make, cc")
def test_make_install_destdir_upgrade_removes_dropped_files_only(
        tmp_path: Path, prefix: Path) -> None:
    os.symlink("lib", prefix / "lib64")
    manifests = prefix / "var/lib/pkgs"
    # another package sharing include/ and share/doc/
    ia("merge", "--manifest", str(manifests / "other.json"), str(write_tree(
        tmp_path / "other", {"include/hello/compat.h": "other\n", "share/doc/hello/OTHER": "o"})),
        str(prefix))
    v1 = _make_project(tmp_path / "src1", "1.0", ["a.h", "b.h", "c.h"], {"NEWS": "1", "OLD": "x"})
    v2 = _make_project(tmp_path / "src2", "2.0", ["a.h"], {"NEWS": "2"})
    for src in (v1, v2):
        subprocess.run(["make", "-s", "-C", str(src), "install", f"DESTDIR={src}/dest",
                        "prefix=/opt/hello"], check=True, capture_output=True, timeout=120)
    ia("merge", "--strip", "/opt/hello", "--manifest", str(manifests / "hello-1.0.json"),
       str(v1 / "dest"), str(prefix))
    assert (prefix / "lib/libhello.so.1.0").is_file() and os.path.islink(prefix / "lib64")
    assert stat.S_IMODE(os.stat(prefix / "share/doc/hello/OLD").st_mode) & 0o200
    other_before = {k: v for k, v in digest(prefix).items() if "other" in k.lower()
                    or k.endswith(("compat.h", "OTHER"))}
    ia("merge", "--strip", "/opt/hello", "--manifest", str(manifests / "hello-2.0.json"),
       "--replace", str(manifests / "hello-1.0.json"), str(v2 / "dest"), str(prefix))
    after = digest(prefix)
    assert files_of(after, "include/hello/") == {"include/hello/a.h", "include/hello/compat.h"}
    assert files_of(after, "share/doc/hello/") == {"share/doc/hello/NEWS",
                                                   "share/doc/hello/OTHER"}
    assert files_of(after, "lib/") == {"lib/libother.so", "lib/libhello.so.2.0",
                                       "lib/libhello.so"}
    assert not (manifests / "hello-1.0.json").exists()
    for rel, entry in other_before.items():
        assert after[rel] == entry, rel
    assert os.path.islink(prefix / "lib64") and not private(prefix)
    # uninstall by manifest: hello's files go, the other package's and the layout stay
    ia("uninstall", "--manifest", str(manifests / "hello-2.0.json"))
    after = digest(prefix)
    assert not [k for k in files_of(after) if "hello" in os.path.basename(k)]
    assert files_of(after, "include/") == {"include/other.h", "include/hello/compat.h"}
    assert (prefix / "share/doc/hello/OTHER").exists() and os.path.islink(prefix / "lib64")
    assert not (manifests / "hello-2.0.json").exists() and not private(prefix)


def test_strict_refuses_a_file_another_manifest_owns(tmp_path: Path, prefix: Path) -> None:
    m = tmp_path / "manifests"
    _merge(write_tree(tmp_path / "a", {"include/shared.h": "a\n"}), prefix,
           manifest=str(m / "a.json"))
    before = digest(prefix)
    staged = write_tree(tmp_path / "b", {"include/shared.h": "b\n", "include/b.h": "b\n"})
    staged_before = digest(staged)
    with pytest.raises(ConflictError, match=r"shared\.h"):
        _merge(staged, prefix, manifest=str(m / "b.json"), strict=True)
    assert digest(prefix) == before and not private(prefix)
    assert digest(staged) == staged_before
    warnings = _merge(staged, prefix, manifest=str(m / "b.json"))
    assert any("shared.h" in w and "manifest" in w for w in warnings), warnings
    assert (prefix / "include/shared.h").read_text() == "b\n"


def test_dry_run_changes_nothing(tmp_path: Path, prefix: Path) -> None:
    staged = write_tree(tmp_path / "d", {"include/new.h": "n", "include/other.h": "x"})
    before, staged_before = digest(prefix), digest(staged)
    lines: list[str] = []
    merge(MergeOptions(str(staged), str(prefix), dry_run=True, log=lines.append,
                       manifest=str(prefix / "m.json")))
    assert digest(prefix) == before and digest(staged) == staged_before
    assert any("would add" in x and "new.h" in x for x in lines)
    assert any("would swap" in x and "other.h" in x for x in lines)


def test_failure_mid_commit_leaves_the_prefix_byte_for_byte(tmp_path: Path,
                                                           prefix: Path) -> None:
    """A rename fails after others were made (EIO, injected in a real process): the
    renames made are undone."""
    m = tmp_path / "m"
    _merge(write_tree(tmp_path / "v1", {f"include/p{i}/h.h": f"1.{i}" for i in range(6)}),
           prefix, manifest=str(m / "p-1.json"))
    before = digest(prefix)
    staged = write_tree(tmp_path / "v2", {
        **{f"include/p{i}/h.h": f"2.{i}" for i in range(4)}, "share/new/x": "x"})
    code = f"""
import errno, sys
from install_atomic.engine import steps
from install_atomic.frontends.merge import MergeOptions, merge
real, n = steps.apply, [0]
def apply(step):
    n[0] += 1
    if n[0] == 4:
        raise OSError(errno.EIO, "Input/output error", step.dest)
    real(step)
steps.apply = apply
try:
    merge(MergeOptions({str(staged)!r}, {str(prefix)!r}, manifest={str(m / 'p-2.json')!r},
                       replace={str(m / 'p-1.json')!r}, copy=True))
except Exception as exc:
    print(type(exc).__name__, exc)
    sys.exit(3)
"""
    proc = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "CommitError" in proc.stdout and "restored" in proc.stdout
    assert digest(prefix) == before and not private(prefix)
    assert sorted(os.listdir(m)) == ["p-1.json"]


@pytest.fixture
def small_fs(tmp_path: Path):  # type: ignore[no-untyped-def]
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_enospc_while_staging_across_filesystems_changes_nothing(
        tmp_path: Path, small_fs: Path) -> None:
    prefix = small_fs / "prefix"
    _merge(write_tree(tmp_path / "v1", {"include/a.h": "1", "lib/liba.so": "1"}), prefix,
           manifest=str(prefix / "var/a-1.json"))
    before = digest(prefix)
    staged = write_tree(tmp_path / "v2", {"include/a.h": "2", "lib/liba.so": b"\0" * 400_000})
    staged_before = digest(staged)
    with pytest.raises(StagingError, match="No space left"):
        _merge(staged, prefix, manifest=str(prefix / "var/a-2.json"),
               replace=str(prefix / "var/a-1.json"))
    assert digest(prefix) == before and not private(prefix)
    assert digest(staged) == staged_before  # another filesystem: copied, never moved


def test_layout_lock_is_the_python_install_lock(tmp_path: Path) -> None:
    from install_atomic.engine import locking

    layout = Layout.of(str(tmp_path))
    site = os.path.join(layout.prefix, "lib",
                        f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
    assert layout.site_packages == site
    assert layout.lock_path == locking.lock_path_for(site, detached=True)


def test_cli_reserved_names_and_bad_mode(tmp_path: Path, prefix: Path) -> None:
    staged = write_tree(tmp_path / "d", {".install-atomic-x/y": "z"})
    proc = ia("merge", str(staged), str(prefix), check=False)
    assert proc.returncode == 1 and "reserves" in proc.stderr
    proc = ia("merge", "--mode", "999", str(staged), str(prefix), check=False)
    assert proc.returncode == 1 and "--mode" in proc.stderr
    proc = ia("uninstall", check=False)
    assert proc.returncode == 2


def test_uninstall_manifest_outside_prefix(tmp_path: Path, prefix: Path) -> None:
    before = digest(prefix)
    m = tmp_path / "m" / "foo.json"
    _merge(write_tree(tmp_path / "d", {"include/foo/a.h": "a", "share/foo/x/y": "y"}), prefix,
           manifest=str(m))
    uninstall(str(m), **QUIET)  # type: ignore[arg-type]
    assert digest(prefix) == before and not m.exists() and not private(prefix)


def test_sweep_removes_only_bytecode_left_at_finished_backup_names(tmp_path: Path) -> None:
    from install_atomic.engine.journal import Journal
    from install_atomic.frontends.merge.run import sweep_resurrected

    prefix = tmp_path / "p"
    layout = Layout.of(str(prefix))
    d = prefix / "lib/python3/site-packages/backports"
    resurrected = d / ".install-atomic-123-0123abcd-4.bak"
    real_backup = d / ".install-atomic-123-0123abcd-5.bak"
    journaled = d / ".install-atomic-456-89abcdef-1.bak"
    write_tree(resurrected, {"__pycache__/m.cpython-311.pyc": b"x"})
    write_tree(real_backup, {"m.py": "x", "__pycache__/m.cpython-311.pyc": b"x"})
    write_tree(journaled, {"__pycache__/m.cpython-311.pyc": b"x"})
    Path(Journal.path_for(layout.prefix, "456-89abcdef")).write_text("{}")
    removed = sweep_resurrected([str(d)], layout, layout.site_packages)
    assert removed == [str(resurrected)]
    assert real_backup.exists() and journaled.exists()


# -- files changed since the merge that installed them ----------------------------------


def _changed(warnings: list[str]) -> list[str]:
    return [w for w in warnings if "changed since" in w]


def test_manifest_records_each_file_as_installed(tmp_path: Path, prefix: Path) -> None:
    staged = write_tree(tmp_path / "v1", {"include/a.h": "a\n", "lib/liba.so": "-> liba.so.1",
                                          "lib/liba.so.1": "elf\n"})
    _merge(staged, prefix, manifest=str(prefix / "var/a-1.json"))
    data = json.loads((prefix / "var/a-1.json").read_text())
    st = os.lstat(prefix / "include/a.h")
    assert data["identity"]["include/a.h"] == [st.st_size, st.st_mtime_ns]
    assert data["identity"]["lib/liba.so"] == "liba.so.1"
    assert sorted(data["identity"]) == data["files"]


def test_replacing_or_removing_a_file_changed_since_its_merge_warns(
        tmp_path: Path, prefix: Path) -> None:
    m1, m2 = prefix / "var/a-1.json", prefix / "var/a-2.json"
    v1 = {"include/a.h": "a1\n", "include/same.h": "s1\n", "include/gone.h": "g1\n",
          "include/kept.h": "k1\n", "lib/liba.so": "-> liba.so.1"}
    v2 = {"include/a.h": "a2\n", "include/same.h": "s2\n", "include/kept.h": "k2\n",
          "lib/liba.so": "-> liba.so.2"}
    _merge(write_tree(tmp_path / "v1", v1), prefix, manifest=str(m1))
    # Someone writes into the prefix after that merge: a new size, the same size with
    # another mtime, a file the upgrade drops, a link re-pointed.
    (prefix / "include/a.h").write_text("edited by hand\n")
    st = os.stat(prefix / "include/same.h")
    (prefix / "include/same.h").write_text("S1\n")
    os.utime(prefix / "include/same.h", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    (prefix / "include/gone.h").write_text("g1, patched\n")
    os.unlink(prefix / "lib/liba.so")
    os.symlink("liba.so.0", prefix / "lib/liba.so")
    warnings = _merge(write_tree(tmp_path / "v2", v2), prefix, manifest=str(m2),
                      replace=str(m1))
    changed = _changed(warnings)
    for rel, verb in [("include/a.h", "replacing"), ("include/same.h", "replacing"),
                      ("include/gone.h", "removing"), ("lib/liba.so", "replacing")]:
        assert [w for w in changed if f"{prefix / rel} changed since {m1}" in w
                and w.endswith(f"{verb} it")], (rel, warnings)
    assert len(changed) == 4, warnings  # include/kept.h was left as merged: no warning
    assert (prefix / "include/a.h").read_text() == "a2\n"
    assert not (prefix / "include/gone.h").exists() and not private(prefix)


def test_no_change_no_warning_and_another_manifests_file(tmp_path: Path, prefix: Path) -> None:
    m = prefix / "var/lib/pkgs"
    _merge(write_tree(tmp_path / "o", {"include/shared.h": "o\n", "include/o.h": "o\n"}),
           prefix, manifest=str(m / "other.json"))
    _merge(write_tree(tmp_path / "v1", {"include/a.h": "1\n"}), prefix,
           manifest=str(m / "a-1.json"))
    # An untouched upgrade that also replaces another manifest's (untouched) file.
    warnings = _merge(write_tree(tmp_path / "v2", {"include/a.h": "2\n",
                                                   "include/shared.h": "a\n"}),
                      prefix, manifest=str(m / "a-2.json"), replace=str(m / "a-1.json"))
    assert not _changed(warnings), warnings
    assert any("shared.h" in w for w in warnings)  # the ownership warning, as before
    # The other package's file, changed since its merge and replaced now: both warnings.
    (prefix / "include/o.h").write_text("patched\n")
    warnings = _merge(write_tree(tmp_path / "v3", {"include/a.h": "3\n", "include/o.h": "a\n"}),
                      prefix, manifest=str(m / "a-3.json"), replace=str(m / "a-2.json"))
    assert [w for w in _changed(warnings)
            if f"{prefix / 'include/o.h'} changed since {m / 'other.json'}" in w], warnings
    assert len(_changed(warnings)) == 1, warnings


def test_a_manifest_without_identities_is_not_checked(tmp_path: Path, prefix: Path) -> None:
    m1 = prefix / "var/a-1.json"
    _merge(write_tree(tmp_path / "v1", {"include/a.h": "1\n"}), prefix, manifest=str(m1))
    data = json.loads(m1.read_text())
    del data["identity"]  # as written before identities existed
    m1.write_text(json.dumps(data))
    (prefix / "include/a.h").write_text("edited\n")
    warnings = _merge(write_tree(tmp_path / "v2", {"include/a.h": "2\n"}), prefix,
                      manifest=str(prefix / "var/a-2.json"), replace=str(m1))
    assert not _changed(warnings), warnings


# -- the lock follows the prefix's Python ------------------------------------------------


def _other_python() -> str:
    """``pythonX.Y`` of a version that is not the running interpreter's."""
    return f"python{sys.version_info[0]}.{sys.version_info[1] + 1}"


def test_layout_locks_the_site_packages_the_prefix_has(tmp_path: Path) -> None:
    from install_atomic.engine import locking

    other = tmp_path / "prefix" / "lib" / _other_python() / "site-packages"
    other.mkdir(parents=True)
    layout = Layout.of(str(tmp_path / "prefix"))
    assert layout.site_packages == str(other)
    assert layout.lock_path == locking.lock_path_for(str(other), detached=True)
    assert str(other) in layout.stops(layout.site_packages)


def test_layout_choice_is_deterministic(tmp_path: Path) -> None:
    from install_atomic.frontends.merge.layout import choose_site_packages

    p = tmp_path / "p"
    for rel in ("lib/python3.9/site-packages", "lib/python3.12/dist-packages",
                "lib64/python3.12/site-packages", "lib/python3/dist-packages",
                "lib/python-support/site-packages"):
        (p / rel).mkdir(parents=True)
    # the newest version first, then site-packages over dist-packages, then lib over lib64
    assert choose_site_packages(str(p)) == str(p / "lib64/python3.12/site-packages")
    (p / "lib/python3.12/site-packages").mkdir()
    assert choose_site_packages(str(p)) == str(p / "lib/python3.12/site-packages")
    # a staged tree bringing a newer Python's site-packages moves the choice there
    staged = tmp_path / "staged"
    (staged / "lib/python3.13/site-packages/pkg").mkdir(parents=True)
    assert choose_site_packages(str(p), [str(staged)]) == str(
        p / "lib/python3.13/site-packages")
    # a symlinked lib is not followed; a prefix without candidates: the running Python's
    empty = tmp_path / "empty"
    (empty / "lib64").mkdir(parents=True)
    os.symlink(p / "lib", empty / "lib")
    assert choose_site_packages(str(empty)) == os.path.join(
        str(empty), "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}",
        "site-packages")


def test_merge_takes_the_lock_of_the_prefixs_python(tmp_path: Path) -> None:
    from install_atomic.engine import locking
    from install_atomic.errors import LockTimeout

    prefix = tmp_path / "prefix"
    # The staged tree brings the other Python's site-packages into an empty prefix.
    site_rel = f"lib/{_other_python()}/site-packages"
    staged = write_tree(tmp_path / "d", {f"{site_rel}/mod.py": "x = 1\n", "bin/tool": "t\n"})
    lock = locking.lock_path_for(str(prefix / site_rel), detached=True)
    with subprocess.Popen(
            [sys.executable, "-c", "import sys\nfrom install_atomic.engine import locking\n"
             "with locking.hold(sys.argv[1], 60):\n print('held', flush=True)\n"
             " sys.stdin.read()", lock],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env()) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert holder.stdout.readline() == "held\n"
            before = digest(staged)
            with pytest.raises(LockTimeout):
                _merge(staged, prefix, lock_timeout=0.5)
            assert digest(staged) == before and not private(prefix)
        finally:
            holder.stdin.close()
            holder.wait(timeout=60)
    _merge(staged, prefix)
    assert (prefix / site_rel / "mod.py").read_text() == "x = 1\n"
    assert Layout.of(str(prefix)).lock_path == lock
