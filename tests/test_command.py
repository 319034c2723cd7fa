"""``python setup.py install_atomic`` end to end: real fixture projects into real venvs.

Every test builds and installs the fixture projects of ``tests/packages`` with the venv's
own setuptools ("newest" and "66") and checks the result on disk: the exact file set of
the installed version, ``installed-files.txt``, pycs naming their final paths, the
digests of everything else, and no ``.install-atomic*`` leftovers.  The helpers at the
top are also used by ``test_cmdclass.py``, ``test_verify.py`` and ``test_cli.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import marshal
import os
import re
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import (
    MakeVenv,
    StrPath,
    Venv,
    flock_holders,
    leftovers,
    make_project,
    run,
    tree_digest,
)
from test_crash import Shim, reaping, start_install, wait_until

pytestmark = pytest.mark.slow

PRIVATE = ".install-atomic"
LOCK = ".lock"
#: What :func:`setup_py` sets for every install.
NO_PYC: dict[str, str | None] = {"PYTHONDONTWRITEBYTECODE": "1"}
PY_TAG = f"py{sys.version_info[0]}.{sys.version_info[1]}"
CACHE_TAG = sys.implementation.cache_tag
EXT_SUFFIX = str(sysconfig.get_config_var("EXT_SUFFIX"))
#: pyc header flags (bytes 4..8, little endian) per --pyc-mode.
PYC_FLAGS = {"timestamp": 0, "checked-hash": 3, "unchecked-hash": 1}

#: scenario -> distribution name.
DIST_NAMES = {
    "pkg": "demo-pkg",
    "module": "demo-module",
    "ext": "demo-ext",
    "scripts": "demo-scripts",
    "broken_build": "demo-broken",
    "broken_import": "demo-pkg",
}
#: scenario -> (top-level import name, sibling scenario installed next to it).
IMPORT_NAMES = {"pkg": "demopkg", "module": "demomod", "ext": "demoext", "scripts": "demoscripts"}
SIBLING = {"pkg": "module", "module": "pkg", "ext": "module", "scripts": "module"}


# --------------------------------------------------------------------------- helpers


def output(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit status {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def setup_py(
    venv: Venv,
    project: Path,
    *args: StrPath,
    command: str = "install_atomic",
    env: Mapping[str, str | None] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``<venv python> setup.py <command> *args`` in *project*.

    PYTHONDONTWRITEBYTECODE=1 is set explicitly (as on the development machines): the
    stock commands then skip byte-compiling, install_atomic must compile anyway.
    """
    full_env: dict[str, str | None] = {"PYTHONDONTWRITEBYTECODE": "1"}
    full_env.update(env or {})
    proc = venv.setup_py(project, command, *args, env=full_env, check=False)
    if check:
        assert proc.returncode == 0, describe(proc)
    return proc




def files_under(*roots: Path, skip_lock: bool = True) -> set[Path]:
    """Every file and symlink below *roots* (absolute, normalised)."""
    out: set[Path] = set()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
            for name in filenames + links:
                if skip_lock and name == LOCK:
                    continue
                out.add(Path(os.path.normpath(os.path.join(dirpath, name))))
    return out


def egg_info_name(dist: str, version: str) -> str:
    return f"{dist.replace('-', '_')}-{version}-{PY_TAG}.egg-info"


def metadata_dirs(lib: Path, dist: str) -> list[str]:
    """The .egg-info / .dist-info entries of *dist* in *lib*."""
    stem = re.sub(r"[-_.]+", "_", dist).lower()
    return sorted(
        p.name
        for p in lib.iterdir()
        if p.name.endswith((".egg-info", ".dist-info"))
        and re.sub(r"[-_.]+", "_", p.name.split("-")[0]).lower() == stem
    )


def listed_files(egg_info: Path) -> set[Path]:
    """installed-files.txt resolved against the egg-info directory (absolute, normalised)."""
    text = (egg_info / "installed-files.txt").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), "duplicate lines in installed-files.txt"
    for line in lines:
        assert not os.path.isabs(line), f"absolute path in installed-files.txt: {line}"
    return {Path(os.path.normpath(os.path.join(egg_info, line))) for line in lines}


@dataclass(frozen=True)
class Layout:
    """Where each kind of file goes (install_lib, install_scripts, install_data, headers)."""

    lib: Path
    scripts: Path
    data: Path
    headers: Path

    @classmethod
    def of_prefix(cls, prefix: Path, dist: str = "demo-scripts") -> Layout:
        return cls(
            lib=prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
            / "site-packages",
            scripts=prefix / "bin",
            data=prefix,
            headers=prefix / "include"
            / f"python{sys.version_info[0]}.{sys.version_info[1]}{sys.abiflags}" / dist,
        )

    @classmethod
    def of_venv(cls, venv: Venv, dist: str = "demo-scripts") -> Layout:
        """A virtual environment's: headers where pip puts them, ``include/site``."""
        layout = cls.of_prefix(venv.root, dist)
        assert layout.lib == venv.site_packages
        return cls(layout.lib, layout.scripts, layout.data, venv_headers(venv.root, dist))


def venv_headers(root: Path, dist: str = "demo-scripts") -> Path:
    """Where pip (and so install_atomic) puts *dist*'s headers in the venv *root*."""
    return root / "include" / "site" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / dist


def detached_lock(lib: Path) -> Path:
    """The lock of commits into *lib* outside a virtual environment: a file of ``/tmp``
    named after the real path of *lib*, outside every tree that could be packaged."""
    digest = hashlib.sha256(os.fsencode(os.path.realpath(lib))).hexdigest()[:16]
    return Path("/tmp") / f"install-atomic-{digest}.lock"


def lock_files(*trees: Path) -> list[Path]:
    """Every file named ``.lock`` below *trees*: none may be left in a tree that could be
    packaged (``--prefix``, ``--home``, ``--root``, ``--install-*``)."""
    return sorted(p for tree in trees for p in files_under(tree, skip_lock=False)
                  if p.name == LOCK)


def payload(scenario: str, version: str) -> dict[str, set[str]]:
    """The files a scenario's *version* installs, per kind, relative to the kind's dir."""
    lib: set[str]
    out: dict[str, set[str]] = {"scripts": set(), "data": set(), "headers": set()}
    if scenario in ("pkg", "broken_import"):
        lib = {"demopkg/__init__.py", "demopkg/sub/__init__.py", "demopkg/data/table.txt"}
        if version == "1.0":
            lib.add("demopkg/only_v1.py")
        elif version != "9.0":
            lib |= {"demopkg/only_v2.py", "demopkg/sub/extra.py"}
    elif scenario == "module":
        lib = {"demomod.py"}
    elif scenario == "ext":
        lib = {"demoext/__init__.py", f"demoext/_speed{EXT_SUFFIX}"}
    elif scenario == "scripts":
        lib = {"demoscripts/__init__.py", "demoscripts/cli.py"}
        out["scripts"] = {"demo-cli", "demo-legacy-script"}
        only = "v1-only.txt" if version == "1.0" else "v2-only.txt"
        out["data"] = {"share/demo-scripts/readme.txt", f"share/demo-scripts/{only}"}
        out["headers"] = {"demo.h"}
    else:
        raise ValueError(scenario)
    out["lib"] = lib
    return out


def pyc_of(source: Path, optimization: str = "") -> Path:
    return Path(importlib.util.cache_from_source(str(source), optimization=optimization))


def egg_info_files(scenario: str) -> set[str]:
    names = {"PKG-INFO", "SOURCES.txt", "dependency_links.txt", "top_level.txt"}
    names.add("installed-files.txt")
    names.add("install-atomic-roots.txt")
    if scenario != "module":
        names.add("not-zip-safe")
    if scenario == "scripts":
        names.add("entry_points.txt")
    return names


def expected_files(
    scenario: str, version: str, layout: Layout, *, pycs: tuple[str, ...] = ("",)
) -> set[Path]:
    """Every file install_atomic must put in place for *scenario* *version*."""
    files = payload(scenario, version)
    out: set[Path] = set()
    for rel in files["lib"]:
        path = layout.lib / rel
        out.add(path)
        if rel.endswith(".py"):
            out |= {pyc_of(path, level) for level in pycs}
    out |= {layout.scripts / rel for rel in files["scripts"]}
    out |= {layout.data / rel for rel in files["data"]}
    out |= {layout.headers / rel for rel in files["headers"]}
    egg = layout.lib / egg_info_name(DIST_NAMES[scenario], version)
    out |= {egg / name for name in egg_info_files(scenario)}
    return out


def check_pyc(pyc: Path, source: Path, mode: str = "checked-hash") -> None:
    """*pyc* is valid for *source*, in *mode*, and its code names *source* (the final path)."""
    data = pyc.read_bytes()
    assert data[:4] == importlib.util.MAGIC_NUMBER, pyc
    flags = int.from_bytes(data[4:8], "little")
    assert flags == PYC_FLAGS[mode], f"{pyc}: flags {flags}, expected {mode}"
    if mode != "timestamp":
        assert data[8:16] == importlib.util.source_hash(source.read_bytes()), pyc
    code = marshal.loads(data[16:])
    assert code.co_filename == str(source), f"{pyc} names {code.co_filename}, not {source}"


def check_install(
    scenario: str,
    version: str,
    layout: Layout,
    present: set[Path],
    *,
    pycs: tuple[str, ...] = ("",),
    mode: str = "checked-hash",
) -> Path:
    """*present* (the project's files found on disk) is exactly *scenario* *version*, every
    one listed in installed-files.txt and vice versa, every pyc valid and naming its final
    path.  Returns the egg-info directory."""
    dist = DIST_NAMES[scenario]
    expected = expected_files(scenario, version, layout, pycs=pycs)
    assert sorted(map(str, present)) == sorted(map(str, expected))
    assert metadata_dirs(layout.lib, dist) == [egg_info_name(dist, version)]
    egg = layout.lib / egg_info_name(dist, version)
    listed = listed_files(egg)
    assert sorted(map(str, listed)) == sorted(map(str, expected))
    for path in listed:
        assert path.is_file(), path
    for level in pycs:
        for source in (p for p in expected if p.suffix == ".py"):
            check_pyc(pyc_of(source, level), source, mode)
    pkg_info = (egg / "PKG-INFO").read_text(encoding="utf-8")
    assert f"\nVersion: {version}\n" in pkg_info
    return egg


def project_files(root: Path, baseline: Mapping[str, str]) -> set[Path]:
    """Files below *root* that were not in *baseline* (a tree_digest of *root*)."""
    return {p for p in files_under(root) if p.relative_to(root).as_posix() not in baseline}


def assert_kept(root: Path, baseline: Mapping[str, str]) -> None:
    """Every entry of *baseline* (a tree_digest of *root*) is still there, unchanged."""
    now = tree_digest(root)
    changed = {
        rel: (desc, now.get(rel)) for rel, desc in baseline.items() if now.get(rel) != desc
    }
    assert changed == {}, f"entries changed or removed (before, after): {changed}"


def run_in(venv: Venv, code: str) -> str:
    """Run *code* with the venv's interpreter; its stripped stdout."""
    return venv.run("-c", code).stdout.strip()


def dist_version(venv: Venv, dist: str) -> str:
    return run_in(venv, f"import importlib.metadata as m; print(m.version({dist!r}))")


def install_checking_lock(
    venv: Venv,
    project: Path,
    *args: StrPath,
    lock: Path,
    work: Path,
    env: Mapping[str, str | None] | None = None,
) -> str:
    """``setup.py install_atomic *args`` in *project*, stopped right after the first rename
    of its commit (the shim of ``test_crash``): there the installer must be the one process
    holding ``flock`` on *lock*.  Then it finishes; returns its stdout.

    A held flock on the expected file is what keeps two installers (or uv) from committing
    into one destination at once: the file merely existing proves nothing."""
    base = work / f"lock-check-{len(list(work.glob('lock-check-*')))}"
    shim = Shim.create(base)
    go = base / "go"
    full_env: dict[str, str | None] = dict(env or {})
    full_env.update(shim.env("lock-check", pause="apply:1", go=go))
    proc = start_install(venv, project, *map(os.fspath, args), logs=base / "logs",
                         env=full_env, name="lock-check")
    with reaping(proc):
        wait_until(lambda: shim.seen("lock-check", "paused:apply:1"),
                   "the install to make the first rename of its commit", watch=[proc])
        holders = flock_holders(lock)
        go.touch()
        proc.succeeded()
    assert holders == [proc.pid], (
        f"in the middle of the commit {lock} is locked by {holders}, not by the installer"
        f" (pid {proc.pid})"
    )
    return proc.stdout()


@contextlib.contextmanager
def lock_held(venv: Venv, lock_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A separate process holding ``filelock.FileLock(lock_path)`` until the block ends."""
    code = (
        "import filelock, sys, time\n"
        f"lock = filelock.FileLock({str(lock_path)!r})\n"
        "lock.acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n"
    )
    with subprocess.Popen(
        [str(venv.python), "-c", code], stdout=subprocess.PIPE, text=True, cwd=venv.root
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "held"
            yield holder
        finally:
            holder.kill()


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """Mount a tmpfs with *options* at *where*; skip the test when that is not possible."""
    where.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
            capture_output=True, text=True, check=False,
        )
    except FileNotFoundError:
        pytest.skip("no 'mount' command: cannot make a read-only or full filesystem")
    if proc.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs ({options}) at {where}: {proc.stderr.strip()} (needs root"
            " with CAP_SYS_ADMIN, e.g. not in an unprivileged container)"
        )
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)


def remount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True)


def install_sibling(venv: Venv, scenario: str, src: Path) -> None:
    """Install *scenario*'s sibling, so that the tests can check it is left alone."""
    setup_py(venv, make_project(SIBLING[scenario], src / "sibling"))


# --------------------------------------------------------------------------- scenarios


def check_scenario_runtime(venv: Venv, scenario: str, version: str) -> None:
    module = IMPORT_NAMES[scenario]
    assert venv.import_version(module) == version
    location = run_in(venv, f"import {module}; print({module}.__file__)")
    assert Path(location).is_relative_to(venv.site_packages)
    assert dist_version(venv, DIST_NAMES[scenario]) == version
    if scenario == "pkg":
        table = venv.site_packages / "demopkg" / "data" / "table.txt"
        assert table.read_text() == f"demo-pkg table for version {version}\n"
        sub = "only_v1" if version == "1.0" else "sub.extra"
        assert venv.import_version(f"demopkg.{sub}") == version
    elif scenario == "ext":
        code = "import demoext._speed as s; assert s.add(2, 3) == 5; print(s.version())"
        assert run_in(venv, code) == version
    elif scenario == "scripts":
        assert run([venv.bin / "demo-cli"]).stdout == f"demo-cli {version}\n"
        assert run([venv.bin / "demo-legacy-script"]).stdout == f"demo-legacy-script {version}\n"
        header = Layout.of_venv(venv).headers / "demo.h"
        assert f'DEMO_SCRIPTS_VERSION "{version}"' in header.read_text()


def check_flat(venv: Venv) -> None:
    """No egg directory, no easy-install.pth: a flat install, whatever the flavour."""
    names = [p.name for p in venv.site_packages.iterdir()]
    assert not [n for n in names if n.endswith(".egg")], names
    assert "easy-install.pth" not in names
    assert not [n for n in names if n.endswith(".egg-link")], names


@pytest.mark.parametrize("scenario", ["pkg", "module", "ext", "scripts"])
def test_install_upgrade_downgrade(
    scenario: str, flavour: str, make_venv: MakeVenv, tmp_path: Path
) -> None:
    """1.0, then 2.0, then 1.0 again: each time exactly that version's files, listed in
    installed-files.txt, valid pycs naming their final path; siblings untouched."""
    venv = make_venv(flavour)
    src = tmp_path / "src"
    install_sibling(venv, scenario, src)
    baseline = tree_digest(venv.root)
    layout = Layout.of_venv(venv, DIST_NAMES[scenario])
    dist = DIST_NAMES[scenario]
    for step, version in enumerate(("1.0", "2.0", "1.0")):
        before = tree_digest(venv.root)
        project = make_project(scenario, src / str(step), version)
        proc = setup_py(venv, project)
        assert f"install_atomic: installed {dist} {version} into {venv.site_packages}" in (
            proc.stdout
        )
        present = project_files(venv.root, baseline)
        egg = check_install(scenario, version, layout, present)
        # every file install_atomic put anywhere (new or changed) is listed
        after = tree_digest(venv.root)
        touched = {
            venv.root / rel
            for rel, desc in after.items()
            if desc != "dir" and before.get(rel) != desc and Path(rel).name != LOCK
        }
        assert touched <= listed_files(egg)
        assert leftovers(venv.root) == []
        assert_kept(venv.root, baseline)
        check_scenario_runtime(venv, scenario, version)
        check_flat(venv)
    if scenario == "pkg":
        assert not (venv.site_packages / "demopkg" / "only_v2.py").exists()
        assert not (venv.site_packages / "demopkg" / "sub" / "extra.py").exists()
    if scenario == "scripts":
        assert not (venv.root / "share" / "demo-scripts" / "v2-only.txt").exists()
    shown = venv.pip("show", dist).stdout
    assert "\nVersion: 1.0\n" in shown
    assert f"Location: {venv.site_packages}" in shown
    listed = json.loads(venv.pip("list", "--format=json").stdout)
    assert {"name": dist, "version": "1.0"} in listed


def test_upgrade_keeps_unowned_files_in_shared_data_dir(
    make_venv: MakeVenv, tmp_path: Path
) -> None:
    """``<prefix>/share`` holds files no distribution lists (man pages, other tools' data);
    upgrading a project with data_files must replace only its own files there."""
    venv = make_venv("newest")
    unowned = venv.root / "share" / "man" / "man1" / "tool.1"
    unowned.parent.mkdir(parents=True)
    unowned.write_text("not owned by any distribution\n")
    baseline = tree_digest(venv.root)
    setup_py(venv, make_project("scripts", tmp_path, "1.0"))
    assert_kept(venv.root, baseline)
    setup_py(venv, make_project("scripts", tmp_path, "2.0"))
    assert unowned.exists(), f"the upgrade deleted {unowned}, which no distribution owns"
    assert_kept(venv.root, baseline)
    present = project_files(venv.root, baseline)
    check_install("scripts", "2.0", Layout.of_venv(venv), present)


def test_upgrade_extension_while_loaded(make_venv: MakeVenv, tmp_path: Path) -> None:
    """A process that has the 1.0 extension loaded keeps working through the upgrade (the
    old .so is renamed away, never overwritten); new processes get 2.0."""
    venv = make_venv("newest")
    setup_py(venv, make_project("ext", tmp_path, "1.0"))
    code = (
        "import sys, demoext._speed as s\n"
        "print(s.version(), flush=True)\n"
        "sys.stdin.readline()\n"
        "print(s.version(), s.add(40, 2), flush=True)\n"
    )
    with subprocess.Popen(
        [str(venv.python), "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, cwd=venv.root,
    ) as user:
        assert user.stdout is not None and user.stdin is not None
        assert user.stdout.readline() == "1.0\n"
        setup_py(venv, make_project("ext", tmp_path, "2.0"))
        out, _ = user.communicate("go\n", timeout=60)
        assert (user.returncode, out) == (0, "1.0 42\n")
    assert run_in(venv, "import demoext._speed as s; print(s.version())") == "2.0"


# --------------------------------------------------------------------------- pip interplay


def pip_wheel(venv: Venv, project: Path, wheelhouse: Path) -> Path:
    venv.pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheelhouse,
             project)
    wheels = sorted(wheelhouse.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_over_pip_installed_wheel_and_back(
    flavour: str, make_venv: MakeVenv, tmp_path: Path
) -> None:
    """pip-installed wheel of 1.0, then install_atomic 2.0: the dist-info is gone, one
    egg-info, exactly 2.0's files.  Then pip installs the 1.0 wheel over it: pip finds
    every file of 2.0 through installed-files.txt and leaves exactly 1.0."""
    venv = make_venv(flavour)
    baseline = tree_digest(venv.root)
    wheel = pip_wheel(venv, make_project("pkg", tmp_path / "src", "1.0"), tmp_path / "wh")
    venv.pip("install", "--no-index", wheel)
    assert metadata_dirs(venv.site_packages, "demo-pkg") == ["demo_pkg-1.0.dist-info"]
    setup_py(venv, make_project("pkg", tmp_path / "src", "2.0"))
    check_install("pkg", "2.0", Layout.of_venv(venv), project_files(venv.root, baseline))
    assert leftovers(venv.root) == []
    check_scenario_runtime(venv, "pkg", "2.0")

    proc = venv.pip("install", "--no-index", wheel)
    assert "Successfully uninstalled demo-pkg-2.0" in proc.stdout
    assert metadata_dirs(venv.site_packages, "demo-pkg") == ["demo_pkg-1.0.dist-info"]
    sources = {
        p.relative_to(venv.site_packages).as_posix()
        for p in project_files(venv.root, baseline)
        if p.suffix != ".pyc" and ".dist-info" not in p.as_posix()
    }
    assert sources == payload("pkg", "1.0")["lib"]
    assert not list(venv.site_packages.rglob("*only_v2*"))
    assert not list(venv.site_packages.rglob("extra*"))
    check_scenario_runtime(venv, "pkg", "1.0")


def test_pip_uninstall_removes_everything(
    flavour: str, make_venv: MakeVenv, tmp_path: Path
) -> None:
    """``pip uninstall -y`` after install_atomic removes the package, scripts, data files
    and headers (pip leaves emptied data directories behind: tolerated), and nothing of
    the sibling distribution."""
    venv = make_venv(flavour)
    install_sibling(venv, "scripts", tmp_path)
    baseline = tree_digest(venv.root)
    setup_py(venv, make_project("scripts", tmp_path, "2.0"))
    setup_py(venv, make_project("ext", tmp_path, "1.0"))
    venv.pip("uninstall", "-y", "demo-scripts", "demo-ext")
    after = tree_digest(venv.root)
    added = {rel: after[rel] for rel in set(after) - set(baseline)}
    # only directories may stay behind (pip's behaviour): share/demo-scripts, say.
    assert {rel for rel, desc in added.items() if desc != "dir" and rel != LOCK} == set()
    assert_kept(venv.root, baseline)
    assert dist_version(venv, "demo-module") == "1.0"
    assert not (venv.bin / "demo-cli").exists()


# --------------------------------------------------------------------------- options


def check_elsewhere(venv: Venv, layout: Layout, version: str = "1.0") -> None:
    """scripts *version* installed into *layout*, importable from there."""
    present = files_under(layout.lib, layout.scripts, layout.data, layout.headers)
    check_install("scripts", version, layout, present)
    assert leftovers(layout.lib, layout.scripts, layout.data, layout.headers) == []
    code = "import demoscripts.cli as c; print(c.VERSION, c.__file__)"
    out = venv.run("-c", code, env={"PYTHONPATH": str(layout.lib)}).stdout.split()
    assert out == [version, str(layout.lib / "demoscripts" / "cli.py")]


def test_prefix(make_venv: MakeVenv, tmp_path: Path) -> None:
    """--prefix: the commit locks a file of /tmp named after the library directory, and
    no lock file is left in the prefix (which may be a packaging staging area)."""
    venv = make_venv("newest")
    untouched = tree_digest(venv.root)
    prefix = tmp_path / "prefix"
    lock = detached_lock(Layout.of_prefix(prefix).lib)
    try:
        setup_py(venv, make_project("scripts", tmp_path, "1.0"), "--prefix", prefix)
        check_elsewhere(venv, Layout.of_prefix(prefix))
        install_checking_lock(venv, make_project("scripts", tmp_path, "2.0"), "--prefix",
                              prefix, lock=lock, work=tmp_path, env=NO_PYC)
        check_elsewhere(venv, Layout.of_prefix(prefix), "2.0")
        assert lock_files(prefix) == []
        assert tree_digest(venv.root) == untouched
    finally:
        lock.unlink(missing_ok=True)


def test_home(make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest")
    untouched = tree_digest(venv.root)
    home = tmp_path / "home"
    lock = detached_lock(home / "lib" / "python")
    try:
        install_checking_lock(venv, make_project("scripts", tmp_path, "1.0"), "--home", home,
                              lock=lock, work=tmp_path, env=NO_PYC)
        layout = Layout(
            lib=home / "lib" / "python",
            scripts=home / "bin",
            data=home,
            headers=home / "include" / "python" / "demo-scripts",
        )
        check_elsewhere(venv, layout)
        assert lock_files(home) == []
        assert tree_digest(venv.root) == untouched
    finally:
        lock.unlink(missing_ok=True)


def test_user(make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest")
    untouched = tree_digest(venv.root)
    base = tmp_path / "userbase"
    env = {"HOME": str(tmp_path / "home"), "PYTHONUSERBASE": str(base), **NO_PYC}
    lock = detached_lock(Layout.of_prefix(base).lib)
    try:
        install_checking_lock(venv, make_project("scripts", tmp_path, "1.0"), "--user",
                              lock=lock, work=tmp_path, env=env)
        check_elsewhere(venv, Layout.of_prefix(base))
        assert lock_files(base) == []
        assert tree_digest(venv.root) == untouched
    finally:
        lock.unlink(missing_ok=True)


def test_root_and_record(make_venv: MakeVenv, tmp_path: Path) -> None:
    """--root R installs below R + the prefix path (DESTDIR); the venv is untouched;
    --record lists the final paths (R stripped); pycs name the final paths too.  The
    commit locks a file of /tmp named after the library directory (whatever TMPDIR
    says), neither the venv's lock nor one inside the tree being packaged."""
    venv = make_venv("newest")
    untouched = tree_digest(venv.root)
    root = tmp_path / "destdir"
    record = tmp_path / "record.txt"
    final = Layout.of_venv(venv)
    staged = Layout(
        *(Path(str(root) + str(getattr(final, kind))) for kind in ("lib", "scripts", "data",
                                                                     "headers"))
    )
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    lock = detached_lock(staged.lib)
    try:
        install_checking_lock(venv, make_project("scripts", tmp_path, "1.0"), "--root", root,
                              "--record", record, lock=lock, work=tmp_path,
                              env={"TMPDIR": str(tmp), **NO_PYC})
    finally:
        lock.unlink(missing_ok=True)
    assert tree_digest(venv.root) == untouched
    assert lock_files(root) == []
    assert list(tmp.iterdir()) == []
    present = files_under(root)
    expected = expected_files("scripts", "1.0", staged)
    assert sorted(map(str, present)) == sorted(map(str, expected))
    assert leftovers(root) == []
    egg = staged.lib / egg_info_name("demo-scripts", "1.0")
    assert listed_files(egg) == expected
    recorded = record.read_text(encoding="utf-8").splitlines()
    assert sorted(recorded) == sorted(str(p)[len(str(root)):] for p in expected)
    # pycs name where the files will be once the tree under R is shipped: not R itself.
    for source in (p for p in expected_files("scripts", "1.0", final) if p.suffix == ".py"):
        staged_source = Path(str(root) + str(source))
        pyc = pyc_of(staged_source)
        code = marshal.loads(pyc.read_bytes()[16:])
        assert code.co_filename == str(source), f"{pyc} names {code.co_filename}"


def test_separate_install_dirs_and_record(make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest")
    untouched = tree_digest(venv.root)
    dirs = tmp_path / "dirs"
    layout = Layout(lib=dirs / "lib", scripts=dirs / "scripts", data=dirs / "data",
                    headers=dirs / "headers")
    record = tmp_path / "record.txt"
    args: list[StrPath] = [
        "--install-lib", layout.lib, "--install-scripts", layout.scripts,
        "--install-data", layout.data, "--install-headers", layout.headers,
        "--record", record,
    ]
    setup_py(venv, make_project("scripts", tmp_path, "1.0"), *args)
    check_elsewhere(venv, layout)
    expected = expected_files("scripts", "1.0", layout)
    assert sorted(record.read_text(encoding="utf-8").splitlines()) == sorted(map(str, expected))
    assert files_under(dirs) == expected
    lock = detached_lock(layout.lib)
    try:
        install_checking_lock(venv, make_project("scripts", tmp_path, "2.0"), *args,
                              lock=lock, work=tmp_path, env=NO_PYC)
    finally:
        lock.unlink(missing_ok=True)
    check_elsewhere(venv, layout, "2.0")
    assert files_under(dirs, skip_lock=False) == expected_files("scripts", "2.0", layout)
    assert tree_digest(venv.root) == untouched


def headers_in(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.glob("include/**/*.h"))


def test_headers_go_where_pip_puts_them(make_venv: MakeVenv, tmp_path: Path) -> None:
    """In a virtual environment, without an option choosing their place, headers go where
    ``pip install`` of the same project puts them (``include/site/pythonX.Y/<dist>``),
    not where distutils' scheme says (``include/pythonX.Y/<dist>``); an upgrade over a
    version installed at the old place moves them (the old install directory itself, now
    empty, is kept, as install directories always are)."""
    by_pip = make_venv("newest", name="by-pip")
    by_pip.pip("install", "--no-build-isolation", "--no-deps",
               make_project("scripts", tmp_path / "for-pip", "1.0"))
    pip_headers = headers_in(by_pip.root)
    assert pip_headers == [venv_headers(Path(), "demo-scripts").joinpath("demo.h").as_posix()]

    venv = make_venv("newest")
    baseline = tree_digest(venv.root)
    old_place = venv.root / "include" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    # 1.0 where install_atomic (and setup.py install) used to put headers
    setup_py(venv, make_project("scripts", tmp_path / "old", "1.0"),
             "--install-headers", old_place / "demo-scripts")
    assert (old_place / "demo-scripts" / "demo.h").is_file()
    setup_py(venv, make_project("scripts", tmp_path, "2.0"))
    assert headers_in(venv.root) == pip_headers
    check_install("scripts", "2.0", Layout.of_venv(venv), project_files(venv.root, baseline))
    assert not (old_place / "demo-scripts" / "demo.h").exists()
    assert leftovers(venv.root) == []


def test_force_reinstalls_same_version(make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest")
    baseline = tree_digest(venv.root)
    setup_py(venv, make_project("pkg", tmp_path / "a", "2.0"))
    first = tree_digest(venv.root)
    (venv.site_packages / "demopkg" / "only_v2.py").write_text("damaged\n")
    setup_py(venv, make_project("pkg", tmp_path / "b", "2.0"), "--force")
    check_install("pkg", "2.0", Layout.of_venv(venv), project_files(venv.root, baseline))
    assert tree_digest(venv.root) == first
    assert leftovers(venv.root) == []


def test_no_compile(make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest")
    baseline = tree_digest(venv.root)
    setup_py(venv, make_project("pkg", tmp_path, "1.0"), "--no-compile")
    present = project_files(venv.root, baseline)
    check_install("pkg", "1.0", Layout.of_venv(venv), present, pycs=())
    assert not [p for p in present if "__pycache__" in p.parts]
    check_scenario_runtime(venv, "pkg", "1.0")


def test_import_check_writes_no_bytecode(make_venv: MakeVenv, tmp_path: Path) -> None:
    """The import check runs the staged tree with bytecode writing disabled, whatever the
    installer's environment: run without PYTHONDONTWRITEBYTECODE (unlike :func:`setup_py`)
    and with ``--no-compile``, the check is the only thing that could write bytecode, and
    none lands in site-packages (a pyc written there would name the staging directory)."""
    venv = make_venv("newest")
    proc = venv.setup_py(make_project("pkg", tmp_path, "1.0"), "install_atomic", "--no-compile",
                         env={"PYTHONDONTWRITEBYTECODE": None}, check=False)
    assert proc.returncode == 0, describe(proc)
    assert "checking that demo-pkg imports from the staged tree" in proc.stdout
    assert venv.import_version("demopkg") == "1.0"
    staged_names = []
    for pyc in sorted(venv.root.rglob("*.pyc")):
        code = marshal.loads(pyc.read_bytes()[16:])
        if PRIVATE in code.co_filename:
            staged_names.append(f"{pyc} names {code.co_filename}")
    assert staged_names == []
    caches = sorted(str(p) for p in venv.site_packages.rglob("__pycache__"))
    assert caches == [], "bytecode written although --no-compile was given"


@pytest.mark.parametrize(
    ("args", "pycs"),
    [
        (["--compile"], ("",)),
        (["--optimize", "1"], ("", "1")),
        (["--no-compile", "--optimize", "2"], ("2",)),
    ],
    ids=["compile", "optimize-1", "no-compile-optimize-2"],
)
def test_compile_and_optimize(
    args: list[str], pycs: tuple[str, ...], make_venv: MakeVenv, tmp_path: Path
) -> None:
    venv = make_venv("newest")
    baseline = tree_digest(venv.root)
    proc = setup_py(venv, make_project("pkg", tmp_path, "1.0"), *args, check=False)
    assert proc.returncode == 0, describe(proc)
    check_install("pkg", "1.0", Layout.of_venv(venv), project_files(venv.root, baseline),
                  pycs=pycs)


@pytest.mark.parametrize("mode", sorted(PYC_FLAGS))
def test_pyc_mode(mode: str, make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest")
    baseline = tree_digest(venv.root)
    setup_py(venv, make_project("pkg", tmp_path, "1.0"), "--pyc-mode", mode)
    check_install("pkg", "1.0", Layout.of_venv(venv), project_files(venv.root, baseline),
                  mode=mode)
    # the interpreter uses the installed pyc (bytecode writing is disabled in the venv runs)
    code = "import demopkg, sys; print(demopkg.__spec__.cached)"
    assert run_in(venv, code) == str(pyc_of(venv.site_packages / "demopkg" / "__init__.py"))


@pytest.mark.parametrize("scenario", ["module", "pkg"])
def test_pycs_compiled_although_bytecode_writing_is_disabled(
    scenario: str, venv: Venv, tmp_path: Path
) -> None:
    """PYTHONDONTWRITEBYTECODE=1 makes stock build_py and install_lib skip compiling, with
    a warning; install_atomic compiles the staged tree regardless, so the stock commands'
    "byte-compiling is disabled" warning, which would be wrong, is not printed (with
    setuptools 66 and the newest)."""
    proc = setup_py(venv, make_project(scenario, tmp_path, "1.0"),
                    env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert "byte-compiling is disabled" not in output(proc), output(proc)
    sources = [p for p in files_under(venv.site_packages) if p.suffix == ".py"
               and p.relative_to(venv.site_packages).parts[0] in ("demomod.py", "demopkg")]
    assert sources
    for source in sources:
        check_pyc(pyc_of(source), source)


@pytest.mark.parametrize("where", ["option", "setup.cfg"])
def test_lock_timeout(where: str, make_venv: MakeVenv, tmp_path: Path) -> None:
    """Another process holds the venv's lock: install_atomic gives up after the timeout,
    names the lock and its holder, and changes nothing."""
    venv = make_venv("newest")
    setup_py(venv, make_project("pkg", tmp_path, "1.0"))
    project = make_project("pkg", tmp_path, "2.0")
    args: list[str] = []
    if where == "option":
        args = ["--lock-timeout", "1"]
    else:
        (project / "setup.cfg").write_text("[install_atomic]\nlock_timeout = 1\n")
    lock = venv.root / LOCK
    before = tree_digest(venv.root)
    with lock_held(venv, lock) as holder:
        started = time.monotonic()
        proc = setup_py(venv, project, *args, check=False)
        elapsed = time.monotonic() - started
        assert proc.returncode != 0, describe(proc)
        message = output(proc)
        assert f"waiting for the lock {lock}, held by process {holder.pid}" in message
        waited = re.search(r"timed out after ([0-9.]+)s", message)
        assert waited is not None, message
        assert 1.0 <= float(waited.group(1)) < 5.0
        assert elapsed < 30, elapsed
        assert tree_digest(venv.root) == before
    assert leftovers(venv.root) == []
    assert venv.import_version("demopkg") == "1.0"


@pytest.mark.parametrize(
    ("args", "quoted"),
    [
        (["--lock-timeout", "abc"], "'abc'"),
        (["--lock-timeout", "-5"], "-5"),
        (["--pyc-mode", "nope"], "'nope'"),
        (["--optimize", "3"], "3"),
        (["--optimize", "abc"], "'abc'"),
        (["--verify-timeout", "abc"], "'abc'"),
        (["--verify-timeout", "-5"], "not -5.0"),
        (["--verify-timeout", "0"], "not 0.0"),
    ],
    ids=["lock-timeout-abc", "lock-timeout-negative", "pyc-mode-nope", "optimize-3",
         "optimize-abc", "verify-timeout-abc", "verify-timeout-negative", "verify-timeout-0"],
)
def test_bad_option_values(
    args: list[str], quoted: str, make_venv: MakeVenv, tmp_path: Path
) -> None:
    venv = make_venv("newest")
    before = tree_digest(venv.root)
    proc = setup_py(venv, make_project("pkg", tmp_path, "1.0"), *args, check=False)
    assert proc.returncode != 0
    errors = [line for line in output(proc).splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output(proc)
    assert args[0] in errors[0] or args[0].lstrip("-") in errors[0]
    assert quoted in errors[0]
    assert tree_digest(venv.root) == before


def test_setup_cfg_options(make_venv: MakeVenv, tmp_path: Path) -> None:
    """[install_atomic] in setup.cfg: no_verify = 1 lets a release that raises at import
    in, pyc_mode = timestamp writes timestamp pycs."""
    venv = make_venv("newest")
    baseline = tree_digest(venv.root)
    project = make_project("broken_import", tmp_path)
    (project / "setup.cfg").write_text("[install_atomic]\nno_verify = 1\npyc_mode = timestamp\n")
    proc = setup_py(venv, project)
    assert "checking that" not in proc.stdout
    check_install("broken_import", "9.0", Layout.of_venv(venv),
                  project_files(venv.root, baseline), mode="timestamp")


# --------------------------------------------------------------------------- --dry-run


def test_dry_run_changes_nothing(make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest")
    setup_py(venv, make_project("scripts", tmp_path, "1.0"))
    (venv.root / LOCK).unlink()
    before = tree_digest(venv.root)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}
    proc = setup_py(venv, make_project("scripts", tmp_path, "2.0"), "--dry-run", env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("would ")]
    sp = venv.site_packages
    assert f"would add    {sp / egg_info_name('demo-scripts', '2.0')}  (directory, 8 files)" in (
        lines
    )
    assert f"would remove {sp / egg_info_name('demo-scripts', '1.0')}  (directory, 8 files)" in (
        lines
    )
    assert any(line.startswith(f"would swap   {venv.bin / 'demo-cli'}") for line in lines)
    assert "nothing changed" in proc.stdout
    assert "install_atomic: installed" not in proc.stdout
    assert tree_digest(venv.root) == before
    assert not (venv.root / LOCK).exists()
    assert leftovers(venv.root) == []
    assert list(tmp.iterdir()) == []  # the throw-away staging directories are gone
    assert venv.import_version("demoscripts") == "1.0"

    # a first install into a prefix that does not exist yet creates nothing at all
    prefix = tmp_path / "new-prefix"
    proc = setup_py(venv, make_project("pkg", tmp_path, "1.0"), "--dry-run", "--prefix", prefix,
                    env=env)
    assert f"would add    {Layout.of_prefix(prefix).lib / 'demopkg'}" in proc.stdout
    assert not prefix.exists()
    assert list(tmp.iterdir()) == []


# --------------------------------------------------------------------------- bad input


def good_demo_broken(tmp_path: Path) -> Path:
    """demo-broken 1.0 with a C extension that does compile."""
    project = make_project("broken_build", tmp_path / "good")
    (project / "demobroken" / "_broken.c").write_text(
        "#define PY_SSIZE_T_CLEAN\n#include <Python.h>\n"
        'static struct PyModuleDef m = {PyModuleDef_HEAD_INIT, "_broken", NULL, -1, NULL};\n'
        "PyMODINIT_FUNC PyInit__broken(void) { return PyModule_Create(&m); }\n"
    )
    return project


def test_project_that_fails_to_build(make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest")
    setup_py(venv, good_demo_broken(tmp_path))
    before = tree_digest(venv.root)
    proc = setup_py(venv, make_project("broken_build", tmp_path / "bad"), check=False)
    assert proc.returncode != 0
    assert "_broken.c" in output(proc)
    assert re.search(r"^error: .*(command|exit status|failed)", output(proc), re.M), output(proc)
    assert tree_digest(venv.root) == before
    assert leftovers(venv.root) == []


def test_data_files_leaving_the_prefix_are_refused(make_venv: MakeVenv, tmp_path: Path) -> None:
    """An upgrade whose relative ``data_files`` target climbs out of the data directory
    (``../../outside``) is refused before anything is written: one clear error naming the
    target, the installed 1.0 exactly as it was, nothing created next to the venv."""
    venv = make_venv("newest")
    setup_py(venv, make_project("scripts", tmp_path / "src", "1.0"))
    project = make_project("scripts", tmp_path / "src", "2.0")
    setup = project / "setup.py"
    stock = 'data_files=[("share/demo-scripts", sorted(glob("data/*.txt")))],'
    assert stock in setup.read_text()
    setup.write_text(setup.read_text().replace(
        stock,
        'data_files=[("share/demo-scripts", sorted(glob("data/*.txt"))),'
        ' ("../../outside", ["data/readme.txt"])],',
    ))
    outside = venv.root.parent / "outside"  # where ../../outside of the data stage leads
    around = tree_digest(tmp_path, exclude=("venv", "src"))
    before = tree_digest(venv.root)
    proc = setup_py(venv, project, check=False)
    out = output(proc)
    assert proc.returncode != 0, describe(proc)
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    assert "refusing to install" in errors[0] and "../../outside" in errors[0], errors[0]
    assert "is outside the destination" in errors[0] and "data_files" in errors[0], errors[0]
    assert "Traceback" not in out, out
    assert not outside.exists(), f"a data file was written to {outside}"
    assert tree_digest(venv.root) == before
    assert tree_digest(tmp_path, exclude=("venv", "src")) == around
    assert leftovers(tmp_path) == []
    assert venv.import_version("demoscripts") == "1.0"


def test_destination_is_a_file(make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest")
    target = tmp_path / "not-a-dir"
    target.write_text("a file\n")
    for option in ("--install-lib", "--install-scripts"):
        proc = setup_py(venv, make_project("scripts", tmp_path / option, "1.0"), option, target,
                        check=False)
        assert proc.returncode != 0
        assert f"error: destination {target} exists but is not a directory" in output(proc)
        assert target.read_text() == "a file\n"
    assert leftovers(tmp_path, venv.root) == []


def test_read_only_destination(make_venv: MakeVenv, tmp_path: Path) -> None:
    """A read-only filesystem (as root, chmod does not stop writes: a read-only tmpfs)."""
    venv = make_venv("newest")
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        lib = ro / "lib"
        proc = setup_py(venv, make_project("pkg", tmp_path / "a", "1.0"), "--install-lib", lib,
                        check=False)
        assert proc.returncode != 0
        message = output(proc)
        assert f"cannot create the destination directory {lib}: Read-only file system" in message
        assert "choose a destination you may write to" in message
    with tmpfs(tmp_path / "rw", "size=1m") as mnt:
        lib = mnt / "lib"
        setup_py(venv, make_project("pkg", tmp_path / "b", "1.0"), "--install-lib", lib)
        before = tree_digest(lib)
        remount(mnt, "ro")
        proc = setup_py(venv, make_project("pkg", tmp_path / "c", "2.0"), "--install-lib", lib,
                        check=False)
        assert proc.returncode != 0
        message = output(proc)
        assert f"destination {lib} is not writable. Nothing was changed." in message
        assert "install elsewhere (--user, --prefix, --home, --root)" in message
        assert tree_digest(lib) == before


@pytest.mark.parametrize("exhausted", ["inodes", "blocks"])
def test_full_filesystem(exhausted: str, make_venv: MakeVenv, tmp_path: Path) -> None:
    """The destination's filesystem is full: the staging directory cannot be created (no
    inodes left) or not filled (no blocks left).  A clear error naming the destination,
    and 1.0 stays exactly as it was."""
    venv = make_venv("newest")
    options = "size=1m,nr_inodes=64" if exhausted == "inodes" else "size=128k"
    with tmpfs(tmp_path / "full", options) as mnt:
        lib = mnt / "lib"
        setup_py(venv, make_project("pkg", tmp_path / "a", "1.0"), "--install-lib", lib)
        before = tree_digest(lib)
        filler = mnt / "filler"
        filler.mkdir()
        try:
            for n in range(100_000):
                if exhausted == "inodes":
                    (filler / str(n)).touch()
                else:
                    with open(filler / str(n), "wb") as f:
                        f.write(b"x" * 4096)
        except OSError as exc:
            assert exc.strerror == "No space left on device"
        else:
            pytest.fail(f"could not fill the tmpfs at {mnt}")
        proc = setup_py(venv, make_project("pkg", tmp_path / "b", "2.0"), "--install-lib", lib,
                        check=False)
        assert proc.returncode != 0
        errors = [line for line in output(proc).splitlines() if line.startswith("error:")]
        assert len(errors) == 1, output(proc)
        assert "No space left on device" in errors[0]
        assert str(lib) in errors[0], f"the error does not name the destination: {errors[0]}"
        assert tree_digest(lib) == before
        assert leftovers(mnt) == []


# --------------------------------------------------------------------------- timing


def test_wall_time_is_reported(make_venv: MakeVenv, tmp_path: Path) -> None:
    """The final line reports the swap: N renames in X ms."""
    venv = make_venv("newest")
    proc = setup_py(venv, make_project("pkg", tmp_path, "1.0"))
    found = re.search(r"installed demo-pkg 1\.0 into .*: (\d+) renames in ([0-9.]+) ms",
                      proc.stdout)
    assert found is not None, proc.stdout
    assert int(found.group(1)) == 2  # the package and its egg-info
