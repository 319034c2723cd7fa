"""Every install scheme of ``setup.py install_atomic``, with upgrade, downgrade and uninstall.

The ``scripts`` fixture has a package, a console script, a legacy script, data files (1.0
ships ``v1-only.txt``, 2.0 ``v2-only.txt``) and a header, so each scheme touches four
destinations: ``--prefix``, ``--home``, ``--user``, ``--root`` (DESTDIR) and explicit
``--install-lib/-scripts/-data/-headers`` on different filesystems (tmpfs mounts), a tmpfs
mounted *inside* the data prefix (the relocation path), destinations that do not exist yet,
and read-only ones (``mount -o ro``), which must fail before anything changes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import MakeVenv, Venv, leftovers, make_project, run, tree_digest
from install_atomic.engine.ownership import scan
from test_command import detached_lock, install_checking_lock

pytestmark = pytest.mark.slow

PY = f"py{sys.version_info[0]}.{sys.version_info[1]}"
PYVER = f"python{sys.version_info[0]}.{sys.version_info[1]}"

Mount = Callable[..., Path]


@pytest.fixture
def tmpfs() -> Iterator[Mount]:
    """``tmpfs(path, read_only=False)`` mounts a fresh tmpfs at *path* (created if needed)
    and returns *path*; everything mounted is unmounted at teardown.  Skips the test when
    this machine cannot mount."""
    mounted: list[Path] = []

    def mount(path: Path, *, read_only: bool = False) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        options = "size=64m" + (",ro" if read_only else "")
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs at {path}: {proc.stderr.strip() or proc.returncode}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)


@dataclass(frozen=True)
class Layout:
    """Where the four kinds of files of demo-scripts land for one scheme."""

    lib: Path
    scripts: Path
    data: Path
    headers: Path

    def roots(self) -> list[Path]:
        return [self.lib, self.scripts, self.data, self.headers]


def install(
    venv: Venv,
    project: Path,
    *args: str | os.PathLike[str],
    env: Mapping[str, str | None] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    return venv.run("setup.py", "install_atomic", *args, cwd=project, env=env, check=check)


def uninstall(venv: Venv, lib: Path) -> None:
    proc = venv.run("-m", "install_atomic", "uninstall", "demo-scripts", "--target", lib)
    assert "uninstalled demo-scripts" in proc.stdout




def listed_files(layout: Layout) -> set[str]:
    """What demo-scripts' metadata lists, read with the scheme's directories (files the
    metadata names outside them are not its to list)."""
    dists = [d for d in scan(str(layout.lib), [str(r) for r in layout.roots()])
             if d.key == "demo-scripts"]
    assert len(dists) == 1, dists
    assert dists[0].files is not None
    return set(dists[0].files)


def check_installed(venv: Venv, layout: Layout, version: str) -> set[str]:
    """demo-scripts *version* is complete at *layout*, nothing of the other version is
    left, everything runs; return the files its metadata lists."""
    lib = layout.lib
    assert sorted(p.name for p in lib.glob("demo_scripts-*")) == [
        f"demo_scripts-{version}-{PY}.egg-info"
    ]
    for module in ("__init__.py", "cli.py"):
        assert f'VERSION = "{version}"' in (lib / "demoscripts" / module).read_text()
    major = version.split(".")[0]
    share = layout.data / "share" / "demo-scripts"
    assert sorted(p.name for p in share.iterdir()) == ["readme.txt", f"v{major}-only.txt"]
    assert sorted(p.name for p in layout.headers.iterdir()) == ["demo.h"]
    assert f'"{version}"' in (layout.headers / "demo.h").read_text()
    assert run([layout.scripts / "demo-legacy-script"]).stdout == f"demo-legacy-script {version}\n"
    cli = run([layout.scripts / "demo-cli"], env={"PYTHONPATH": str(lib)})
    assert cli.stdout == f"demo-cli {version}\n"
    code = "import demoscripts.cli as m; print(m.VERSION, m.__file__)"
    found_version, location = venv.run("-c", code, env={"PYTHONPATH": str(lib)}).stdout.split()
    assert found_version == version
    assert Path(location) == lib / "demoscripts" / "cli.py"
    listed = listed_files(layout)
    missing = sorted(p for p in listed if not os.path.isfile(p))
    assert not missing, missing
    for root in layout.roots():
        assert any(p.startswith(str(root) + os.sep) for p in listed), f"nothing in {root}"
    assert leftovers(*layout.roots()) == []
    return listed


def check_uninstalled(layout: Layout, listed: set[str]) -> None:
    assert not [p for p in listed if os.path.lexists(p)]
    assert layout.lib.is_dir(), f"the uninstall removed the library directory {layout.lib}"
    assert layout.data.is_dir(), f"the uninstall removed the data destination {layout.data}"
    assert not (layout.data / "share" / "demo-scripts").exists()
    assert leftovers(*[r for r in layout.roots() if r.exists()]) == []


def round_trip(
    venv: Venv,
    src: Path,
    layout: Layout,
    *args: str | os.PathLike[str],
    lock: Path,
    env: Mapping[str, str | None] | None = None,
) -> None:
    """Install 1.0, upgrade to 2.0, downgrade to 1.0, uninstall; check after each step.
    The upgrade must hold ``flock`` on *lock* during its commit."""
    projects = {v: make_project("scripts", src, v) for v in ("1.0", "2.0")}
    for version in ("1.0", "2.0", "1.0"):
        if version == "2.0":
            install_checking_lock(venv, projects[version], *args, lock=lock, work=src.parent,
                                  env=env)
        else:
            install(venv, projects[version], *args, env=env)
        listed = check_installed(venv, layout, version)
    uninstall(venv, layout.lib)
    check_uninstalled(layout, listed)


# --------------------------------------------------------------------------- schemes


def test_prefix(make_venv: MakeVenv, tmp_path: Path) -> None:
    """``--prefix`` into a directory that does not exist yet."""
    venv = make_venv("newest")
    venv_before = tree_digest(venv.root)
    prefix = tmp_path / "does" / "not" / "exist"
    layout = Layout(
        lib=prefix / "lib" / PYVER / "site-packages",
        scripts=prefix / "bin",
        data=prefix,
        headers=prefix / "include" / PYVER / "demo-scripts",
    )
    round_trip(venv, tmp_path / "src", layout, "--prefix", prefix,
               lock=detached_lock(layout.lib))
    assert tree_digest(venv.root) == venv_before


def test_home(make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest")
    home = tmp_path / "home"
    layout = Layout(
        lib=home / "lib" / "python",
        scripts=home / "bin",
        data=home,
        headers=home / "include" / "python" / "demo-scripts",
    )
    round_trip(venv, tmp_path / "src", layout, "--home", home, lock=detached_lock(layout.lib))


def test_user(make_venv: MakeVenv, tmp_path: Path) -> None:
    """``--user`` with HOME and PYTHONUSERBASE in a temporary directory."""
    venv = make_venv("newest")
    base = tmp_path / "home" / ".local"
    env = {"HOME": str(tmp_path / "home"), "PYTHONUSERBASE": str(base)}
    layout = Layout(
        lib=base / "lib" / PYVER / "site-packages",
        scripts=base / "bin",
        data=base,
        headers=base / "include" / PYVER / "demo-scripts",
    )
    round_trip(venv, tmp_path / "src", layout, "--user", lock=detached_lock(layout.lib),
               env=env)


def test_root_destdir(make_venv: MakeVenv, tmp_path: Path) -> None:
    """``--root DESTDIR``: everything lands below DESTDIR, the venv is not touched, and the
    metadata lists paths below DESTDIR (what an upgrade inside DESTDIR needs).  The lock
    is a file of the temporary directory named after the library directory: neither the
    venv's nor one inside the tree being packaged."""
    venv = make_venv("newest")
    venv_before = tree_digest(venv.root)
    destdir = tmp_path / "destdir"

    def inside(path: Path) -> Path:
        return destdir / path.relative_to(path.anchor)

    layout = Layout(
        lib=inside(venv.site_packages),
        scripts=inside(venv.bin),
        data=inside(venv.root),
        headers=inside(venv.root / "include" / "site" / PYVER / "demo-scripts"),
    )
    # /tmp whatever TMPDIR says: every installer into the tree must find the same lock.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    round_trip(venv, tmp_path / "src", layout, "--root", destdir,
               lock=detached_lock(layout.lib), env={"TMPDIR": str(tmp)})
    assert tree_digest(venv.root) == venv_before


def test_split_destinations_on_other_filesystems(
    make_venv: MakeVenv, tmp_path: Path, tmpfs: Mount
) -> None:
    """``--install-lib/-scripts/-data/-headers`` at four places: scripts on one tmpfs (in a
    directory that does not exist yet), data at the mount point of another, library and
    headers on the root filesystem."""
    venv = make_venv("newest")
    scripts_fs = tmpfs(tmp_path / "scripts-fs")
    data_fs = tmpfs(tmp_path / "data-fs")
    layout = Layout(
        lib=tmp_path / "lib",
        scripts=scripts_fs / "new" / "bin",
        data=data_fs,
        headers=tmp_path / "headers" / "demo-scripts",
    )
    devices = {os.stat(p).st_dev for p in (tmp_path, scripts_fs, data_fs)}
    assert len(devices) == 3
    args = [
        f"--install-lib={layout.lib}",
        f"--install-scripts={layout.scripts}",
        f"--install-data={layout.data}",
        f"--install-headers={layout.headers}",
    ]
    round_trip(venv, tmp_path / "src", layout, *args, lock=detached_lock(layout.lib))


def test_uninstall_stays_below_split_destinations(make_venv: MakeVenv, tmp_path: Path) -> None:
    """Each destination in a directory of its own (nothing else in it): the uninstall
    removes demo-scripts' files but neither a destination it was given at install time
    nor anything above one."""
    venv = make_venv("newest")
    keep = tmp_path / "split"
    layout = Layout(
        lib=keep / "lib",
        scripts=keep / "tools" / "bin",
        data=keep / "data",
        headers=keep / "include" / "demo-scripts",
    )
    args = [
        f"--install-lib={layout.lib}",
        f"--install-scripts={layout.scripts}",
        f"--install-data={layout.data}",
        f"--install-headers={layout.headers}",
    ]
    install(venv, make_project("scripts", tmp_path / "src", "1.0"), *args)
    listed = check_installed(venv, layout, "1.0")
    uninstall(venv, layout.lib)
    check_uninstalled(layout, listed)
    gone = [
        str(p)
        for p in (layout.lib, layout.scripts, layout.data, layout.headers.parent)
        if not p.is_dir()
    ]
    assert not gone, f"the uninstall removed destinations (or directories above them): {gone}"


@pytest.mark.parametrize("neighbours", [False, True], ids=["only-ours", "shared"])
def test_tmpfs_mounted_inside_the_data_prefix(
    neighbours: bool, make_venv: MakeVenv, tmp_path: Path, tmpfs: Mount
) -> None:
    """``<prefix>/share`` is a mount point: the data files are staged again on that
    filesystem (relocation), and the mount point itself is never renamed, whether it holds
    files of others too ("shared") or only demo-scripts' ("only-ours")."""
    venv = make_venv("newest")
    prefix = tmp_path / "prefix"
    share = tmpfs(prefix / "share")
    share_dev = os.stat(share).st_dev
    assert share_dev != os.stat(prefix).st_dev
    unrelated = share / "man" / "man1" / "tool.1"
    if neighbours:
        unrelated.parent.mkdir(parents=True)
        unrelated.write_text(".TH TOOL 1\n")
    layout = Layout(
        lib=prefix / "lib" / PYVER / "site-packages",
        scripts=prefix / "bin",
        data=prefix,
        headers=prefix / "include" / PYVER / "demo-scripts",
    )
    projects = {v: make_project("scripts", tmp_path / "src", v) for v in ("1.0", "2.0")}
    for version in ("1.0", "2.0", "1.0"):
        proc = install(venv, projects[version], "--prefix", prefix, check=False)
        assert proc.returncode == 0, f"{version}:\n{proc.stdout}\n{proc.stderr}"
        listed = check_installed(venv, layout, version)
        assert os.path.ismount(share)
        assert os.stat(share / "demo-scripts").st_dev == share_dev
        assert unrelated.is_file() == neighbours
    proc = venv.run(
        "-m", "install_atomic", "uninstall", "demo-scripts", "--target", layout.lib, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check_uninstalled(layout, listed)
    assert os.path.ismount(share)
    assert unrelated.is_file() == neighbours


def test_relocation_out_of_space_fails_cleanly(
    make_venv: MakeVenv, tmp_path: Path, tmpfs: Mount
) -> None:
    """The filesystem mounted at ``<prefix>/share`` cannot hold the relocated copy of the
    new data files: the upgrade fails with a clear message naming it, and nothing changes."""
    venv = make_venv("newest")
    prefix = tmp_path / "prefix"
    share = tmpfs(prefix / "share")
    subprocess.run(["mount", "-o", "remount,size=64k", str(share)], check=True)
    (share / "man").mkdir()
    (share / "man" / "tool.1").write_text(".TH TOOL 1\n")  # share is merged into
    install(venv, make_project("scripts", tmp_path / "src", "1.0"), "--prefix", prefix)
    before = tree_digest(prefix)
    big = make_project("scripts", tmp_path / "src", "2.0")
    (big / "data" / "big.txt").write_bytes(os.urandom(256 * 1024))
    proc = install(venv, big, "--prefix", prefix, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "No space left on device" in out, out
    assert str(share) in out, out
    assert "Traceback" not in out and "[Errno" not in out, f"not a clear message:\n{out}"
    assert tree_digest(prefix) == before
    assert leftovers(prefix) == []


# --------------------------------------------------------------------------- unrelated files


@pytest.mark.parametrize("scheme", ["prefix", "user"])
def test_unrelated_files_in_shared_data_directories_survive(
    scheme: str, make_venv: MakeVenv, tmp_path: Path
) -> None:
    """``<prefix>/share`` and ``~/.local/share`` (``--user``) hold files no distribution
    lists (man pages, desktop entries...); ``<prefix>/bin`` other tools.  Upgrades,
    downgrades and the uninstall of demo-scripts must leave them alone."""
    venv = make_venv("newest")
    env: dict[str, str | None] | None = None
    if scheme == "user":
        base = tmp_path / "home" / ".local"
        env = {"HOME": str(tmp_path / "home"), "PYTHONUSERBASE": str(base)}
        args: list[str | os.PathLike[str]] = ["--user"]
    else:
        base = tmp_path / "prefix"
        args = ["--prefix", base]
    unrelated = {
        base / "share" / "applications" / "editor.desktop": b"[Desktop Entry]\n",
        base / "share" / "man" / "man1" / "tool.1": b".TH TOOL 1\n",
        base / "bin" / "someone-elses-tool": b"#!/bin/sh\n",
    }
    for path, content in unrelated.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    layout = Layout(
        lib=base / "lib" / PYVER / "site-packages",
        scripts=base / "bin",
        data=base,
        headers=base / "include" / PYVER / "demo-scripts",
    )
    projects = {v: make_project("scripts", tmp_path / "src", v) for v in ("1.0", "2.0")}
    for version in ("1.0", "2.0", "1.0"):
        install(venv, projects[version], *args, env=env)
        check_installed(venv, layout, version)
        lost = sorted(
            str(p) for p, c in unrelated.items() if not p.is_file() or p.read_bytes() != c
        )
        assert not lost, f"installing {version} deleted files nobody lists: {lost}"
    uninstall(venv, layout.lib)
    lost = sorted(str(p) for p, c in unrelated.items() if not p.is_file() or p.read_bytes() != c)
    assert not lost, f"the uninstall deleted files nobody lists: {lost}"


# --------------------------------------------------------------------------- read-only


@pytest.mark.parametrize(
    ("option", "where"),
    [
        ("--install-scripts", "mount"),
        ("--install-scripts", "below"),
        ("--install-data", "mount"),
        ("--install-headers", "below"),
        ("--install-lib", "mount"),
    ],
)
def test_read_only_destination_fails_before_anything_changes(
    option: str, where: str, make_venv: MakeVenv, tmp_path: Path, tmpfs: Mount
) -> None:
    """One destination is on a read-only filesystem (the mount point itself, or a directory
    to be created below it): the upgrade from 1.0 to 2.0 fails cleanly, naming that path,
    and the installed 1.0 is exactly as it was."""
    venv = make_venv("newest")
    src = tmp_path / "src"
    read_only = tmpfs(tmp_path / "ro", read_only=True)
    target = read_only if where == "mount" else read_only / "new" / "dir"
    install(venv, make_project("scripts", src, "1.0"))
    before = tree_digest(venv.root)
    proc = install(venv, make_project("scripts", src, "2.0"), f"{option}={target}", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert str(target) in out, out
    if where == "mount":
        assert "not writable" in out, out
    else:
        assert "cannot create the destination directory" in out, out
    assert "Traceback" not in out, out
    assert tree_digest(venv.root) == before
    assert venv.import_version("demoscripts.cli") == "1.0"
    assert leftovers(venv.root) == []
    assert os.listdir(read_only) == []
