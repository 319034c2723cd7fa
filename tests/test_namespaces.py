"""Namespace packages shared by sibling distributions, through real ``setup.py install_atomic``.

For each namespace style (PEP 420 ``demons``, pkgutil ``demopku``, pkg_resources ``demopkr``)
the sibling fixtures ``ns_<style>_a`` (portion ``alpha``) and ``ns_<style>_b`` (``beta``)
are installed, upgraded, downgraded and uninstalled next to each other, one after the other
and concurrently, and a third distribution that ships a file a sibling owns checks the
conflict rules.  After every step the sibling's files (every path its metadata lists, with
content) must be exactly as before, both portions must import, and no private
``.install-atomic*`` entry may be left behind.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import MakeVenv, Venv, clean_env, leftovers, make_project, tree_digest
from install_atomic.engine.ownership import canonical_name, scan

pytestmark = pytest.mark.slow

PY = f"py{sys.version_info[0]}.{sys.version_info[1]}"


@dataclass(frozen=True)
class Style:
    """One namespace style of the sibling fixtures."""

    name: str
    namespace: str  # the shared top-level package
    dist_prefix: str  # distribution names are f"{dist_prefix}-a" / f"{dist_prefix}-b"
    #: The namespace's own __init__.py is installed (and shared by both siblings).
    shared_init: bool
    #: pkg_resources style: each distribution installs a ``*-nspkg.pth`` instead.
    nspkg_pth: bool

    def dist(self, side: str) -> str:
        return f"{self.dist_prefix}-{side}"

    def scenario(self, side: str) -> str:
        return f"ns_{self.name}_{side}"

    def egg_info(self, side: str, version: str) -> str:
        return f"{self.dist(side).replace('-', '_')}-{version}-{PY}.egg-info"

    def nspkg(self, side: str, version: str) -> str:
        return f"{self.dist(side).replace('-', '_')}-{version}-{PY}-nspkg.pth"


STYLES = {
    "pep420": Style("pep420", "demons", "demo-ns", shared_init=False, nspkg_pth=False),
    "pkgutil": Style("pkgutil", "demopku", "demo-pku", shared_init=True, nspkg_pth=False),
    "pkgres": Style("pkgres", "demopkr", "demo-pkr", shared_init=False, nspkg_pth=True),
}
PORTION = {"a": "alpha", "b": "beta"}
OTHER = {"a": "b", "b": "a"}
VERSIONS = ("1.0", "2.0")


# --------------------------------------------------------------------------- helpers


def install(venv: Venv, project: Path, *args: str, check: bool = True) -> str:
    """``python setup.py install_atomic *args`` in *project*; return stdout + stderr."""
    proc = venv.setup_py(project, "install_atomic", *args, check=check)
    return proc.stdout + proc.stderr


def uninstall(venv: Venv, name: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return venv.run(
        "-m", "install_atomic", "uninstall", name, "--target", venv.site_packages, check=check
    )


def conflict_warnings(output: str) -> list[str]:
    """install-atomic's conflict warnings in an install's output (not setuptools' own)."""
    return [line for line in output.splitlines() if " is shipped by " in line]


def _sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def listed_digest(site: Path, name: str) -> dict[str, str]:
    """Every file the metadata of distribution *name* in *site* lists -> its sha256
    ("MISSING" when it is gone), keyed by absolute path."""
    dists = [d for d in scan(str(site)) if d.key == canonical_name(name)]
    assert len(dists) == 1, f"expected one installed {name} in {site}, found {dists}"
    files = dists[0].files
    assert files, f"{name} lists no files"
    return {path: (_sha256(path) if os.path.isfile(path) else "MISSING") for path in sorted(files)}




def pyc_of(source: Path) -> str:
    return importlib.util.cache_from_source(str(source))


def portion_matches_source(site: Path, project: Path, style: Style, side: str) -> None:
    """The installed portion is exactly the project's (no stale module), with bytecode."""
    rel = Path(style.namespace) / PORTION[side]
    installed = tree_digest(site / rel, exclude=("__pycache__",))
    assert installed == tree_digest(project / rel), f"{rel} differs from {project.name}"
    for module in installed:
        if module.endswith(".py"):
            assert os.path.isfile(pyc_of(site / rel / module)), module
    stale = [
        str(pyc)
        for pyc in (site / rel).rglob("__pycache__/*.pyc")
        if not (pyc.parent.parent / (pyc.name.split(".")[0] + ".py")).is_file()
    ]
    assert not stale, f"bytecode of modules the installed version lacks: {stale}"


def check_state(venv: Venv, style: Style, projects: dict[str, Path | None]) -> None:
    """*projects*: side -> installed project (its version), or None for not installed."""
    site = venv.site_packages
    metadata = sorted(p.name for p in site.iterdir() if p.name.endswith((".egg-info", ".pth")))
    expected_meta = set()
    for side, project in projects.items():
        portion = site / style.namespace / PORTION[side]
        if project is None:
            assert not portion.exists(), f"{portion} survived the uninstall"
            continue
        version = project.name.rsplit("-", 1)[1]
        portion_matches_source(site, project, style, side)
        expected_meta.add(style.egg_info(side, version))
        if style.nspkg_pth:
            expected_meta.add(style.nspkg(side, version))
    assert set(metadata) - {"_install_atomic_test_tools.pth"} == expected_meta
    init = site / style.namespace / "__init__.py"
    installed = [p for p in projects.values() if p is not None]
    if style.shared_init and installed:
        assert init.read_bytes() == (installed[0] / style.namespace / "__init__.py").read_bytes()
    else:
        assert not init.exists()
    if not installed:
        assert not (site / style.namespace).exists()
    # Both portions import (each from the installed tree), each at its own version.
    for side, project in projects.items():
        module = f"{style.namespace}.{PORTION[side]}.core"
        if project is None:
            proc = venv.run("-c", f"import {module}", check=False)
            assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, proc.stderr
            continue
        code = f"import {module} as m; print(m.VERSION, m.__file__)"
        version, location = venv.run("-c", code).stdout.split()
        assert version == project.name.rsplit("-", 1)[1]
        assert Path(location).is_relative_to(site)
        dropped = f"{style.namespace}.{PORTION[side]}.dropped"
        proc = venv.run("-c", f"import {dropped}", check=False)
        assert (proc.returncode == 0) == (version == "1.0"), (dropped, proc.stderr)
    assert leftovers(venv.root) == []


def sources(style: Style, root: Path) -> dict[tuple[str, str], Path]:
    """(side, version) -> project copy, for both siblings and both versions."""
    return {
        (side, version): make_project(style.scenario(side), root, version)
        for side in ("a", "b")
        for version in VERSIONS
    }


# --------------------------------------------------------------------------- one at a time


@pytest.mark.parametrize("first", ["a", "b"])
@pytest.mark.parametrize("style_name", list(STYLES))
def test_sibling_lifecycle(
    style_name: str, first: str, make_venv: MakeVenv, tmp_path: Path
) -> None:
    """Install *first* then its sibling, upgrade, downgrade and uninstall *first*: the
    sibling's listed files never change and both always import."""
    style = STYLES[style_name]
    src = sources(style, tmp_path / "src")
    venv = make_venv("newest")
    site = venv.site_packages
    second = OTHER[first]
    state: dict[str, Path | None] = {"a": None, "b": None}

    out = install(venv, src[first, "1.0"])
    state[first] = src[first, "1.0"]
    check_state(venv, style, state)
    first_files = listed_digest(site, style.dist(first))

    out = install(venv, src[second, "1.0"])
    # A file both siblings ship identically (pkgutil __init__.py) is no conflict.
    assert conflict_warnings(out) == [], out
    state[second] = src[second, "1.0"]
    check_state(venv, style, state)
    assert listed_digest(site, style.dist(first)) == first_files
    sibling = listed_digest(site, style.dist(second))

    for version in ("2.0", "1.0", "2.0"):  # upgrade, downgrade, upgrade again
        out = install(venv, src[first, version])
        assert conflict_warnings(out) == [], out
        state[first] = src[first, version]
        check_state(venv, style, state)
        assert listed_digest(site, style.dist(second)) == sibling, f"after {first} {version}"

    proc = uninstall(venv, style.dist(first))
    assert f"uninstalled {style.dist(first)}" in proc.stdout
    state[first] = None
    check_state(venv, style, state)
    assert listed_digest(site, style.dist(second)) == sibling

    # ... and back: the namespace is merged into again, the sibling still untouched.
    install(venv, src[first, "1.0"])
    state[first] = src[first, "1.0"]
    check_state(venv, style, state)
    assert listed_digest(site, style.dist(second)) == sibling


@pytest.mark.parametrize("style_name", list(STYLES))
def test_sibling_lifecycle_setuptools_66(
    style_name: str, make_venv: MakeVenv, tmp_path: Path
) -> None:
    """The same with setuptools 66 (Debian 12), which still has pkg_resources."""
    style = STYLES[style_name]
    src = sources(style, tmp_path / "src")
    venv = make_venv("66")
    site = venv.site_packages
    install(venv, src["a", "1.0"])
    install(venv, src["b", "1.0"])
    sibling = listed_digest(site, style.dist("b"))
    install(venv, src["a", "2.0"])
    check_state(venv, style, {"a": src["a", "2.0"], "b": src["b", "1.0"]})
    install(venv, src["a", "1.0"])
    check_state(venv, style, {"a": src["a", "1.0"], "b": src["b", "1.0"]})
    assert listed_digest(site, style.dist("b")) == sibling
    uninstall(venv, style.dist("a"))
    check_state(venv, style, {"a": None, "b": src["b", "1.0"]})
    assert listed_digest(site, style.dist("b")) == sibling


def test_shared_init_kept_while_any_distribution_lists_it(
    make_venv: MakeVenv, tmp_path: Path
) -> None:
    """pkgutil's ``demopku/__init__.py`` is shipped identically by both siblings: removing
    either keeps it, removing the last one removes it and the namespace directory."""
    style = STYLES["pkgutil"]
    src = sources(style, tmp_path / "src")
    venv = make_venv("newest")
    site = venv.site_packages
    init = site / "demopku" / "__init__.py"
    install(venv, src["a", "1.0"])
    install(venv, src["b", "1.0"])
    for side in ("a", "b"):
        assert str(init) in listed_digest(site, style.dist(side))

    uninstall(venv, "demo-pku-b")
    assert init.read_bytes() == (src["a", "1.0"] / "demopku" / "__init__.py").read_bytes()
    check_state(venv, style, {"a": src["a", "1.0"], "b": None})
    # Upgrading the remaining owner swaps it; no other owner left to protect it from.
    install(venv, src["a", "2.0"])
    check_state(venv, style, {"a": src["a", "2.0"], "b": None})

    install(venv, src["b", "2.0"])
    uninstall(venv, "demo-pku-a")
    check_state(venv, style, {"a": None, "b": src["b", "2.0"]})
    uninstall(venv, "demo-pku-b")
    check_state(venv, style, {"a": None, "b": None})
    assert not (site / "demopku").exists()


@pytest.mark.parametrize("style_name", ["pkgutil", "pkgres"])
def test_sibling_installed_by_pip(style_name: str, make_venv: MakeVenv, tmp_path: Path) -> None:
    """The sibling comes from a wheel (pip, ``.dist-info/RECORD``); the namespace is still
    merged into and nothing its RECORD lists changes, bytecode pip wrote included."""
    style = STYLES[style_name]
    src = sources(style, tmp_path / "src")
    venv = make_venv("newest")
    site = venv.site_packages
    venv.pip("install", "--no-build-isolation", src["b", "1.0"])
    # pip wrote a timestamp-based pyc of the shared pkgutil __init__.py, install_atomic a
    # checked-hash one: the shared file's bytecode is rewritten (as a second wheel
    # shipping the same __init__.py would do), everything else of the sibling is not.
    shared_pyc = pyc_of(site / style.namespace / "__init__.py")

    def sibling_files() -> dict[str, str]:
        return {p: h for p, h in listed_digest(site, style.dist("b")).items() if p != shared_pyc}

    sibling = sibling_files()
    assert any(p.endswith(".dist-info/RECORD") for p in sibling)
    for version in ("1.0", "2.0", "1.0"):
        install(venv, src["a", version])
        assert sibling_files() == sibling
        assert os.path.isfile(shared_pyc) == style.shared_init
        portion_matches_source(site, src["a", version], style, "a")
        code = f"import {style.namespace}.alpha.core as a, {style.namespace}.beta.core as b"
        assert venv.run("-c", f"{code}; print(a.VERSION, b.VERSION)").stdout.split() == [
            version,
            "1.0",
        ]
    uninstall(venv, style.dist("a"))
    assert sibling_files() == sibling
    assert not (site / style.namespace / "alpha").exists()
    assert venv.import_version(f"{style.namespace}.beta.core") == "1.0"
    assert leftovers(venv.root) == []


def test_pip_uninstall_of_a_sibling(make_venv: MakeVenv, tmp_path: Path) -> None:
    """``pip uninstall`` of an install-atomic install works from installed-files.txt.

    Unlike ``python -m install_atomic uninstall``, pip deletes every listed path, the
    ``demopku/__init__.py`` the sibling still lists included (the sibling then imports as
    a PEP 420 portion).  A later install_atomic install of the removed sibling puts the
    shared file back and leaves the remaining sibling's files as they were.
    """
    style = STYLES["pkgutil"]
    src = sources(style, tmp_path / "src")
    venv = make_venv("newest")
    site = venv.site_packages
    install(venv, src["a", "1.0"])
    install(venv, src["b", "1.0"])
    sibling = listed_digest(site, "demo-pku-b")
    venv.pip("uninstall", "--yes", "demo-pku-a")
    assert not (site / "demopku" / "alpha").exists()
    assert not list(site.glob("demo_pku_a-*"))
    assert venv.import_version("demopku.beta.core") == "1.0"
    after_pip = listed_digest(site, "demo-pku-b")
    changed = {p for p in sibling if after_pip[p] != sibling[p]}
    # Only the shared namespace file (and its bytecode) may have been taken by pip.
    assert changed <= {
        str(site / "demopku" / "__init__.py"),
        pyc_of(site / "demopku" / "__init__.py"),
    }
    install(venv, src["a", "1.0"])
    check_state(venv, style, {"a": src["a", "1.0"], "b": src["b", "1.0"]})
    restored = listed_digest(site, "demo-pku-b")
    assert {p: h for p, h in restored.items() if p not in changed} == {
        p: h for p, h in sibling.items() if p not in changed
    }
    assert (site / "demopku" / "__init__.py").is_file()


# --------------------------------------------------------------------------- concurrently


def run_together(venv: Venv, commands: dict[str, tuple[Path, list[str]]]) -> dict[str, str]:
    """Start every ``(cwd, python arguments)`` of *commands* at once as real processes;
    wait for all, require success, return each one's output."""
    env = clean_env()
    procs = {
        key: subprocess.Popen(
            [str(venv.python), *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for key, (cwd, args) in commands.items()
    }
    outputs = {key: proc.communicate(timeout=300)[0] for key, proc in procs.items()}
    for key, proc in procs.items():
        assert proc.returncode == 0, f"{key} {commands[key]}:\n{outputs[key]}"
    return outputs


@pytest.mark.parametrize("style_name", list(STYLES))
def test_concurrent_sibling_installs(style_name: str, make_venv: MakeVenv, tmp_path: Path) -> None:
    """Each round starts install_atomic of a and b at the same time, as real processes, into
    one venv, alternating versions (round 0 installs both fresh: one creates the namespace
    directory, the other merges into it); then a is upgraded while b is uninstalled, and
    downgraded while b is installed again."""
    style = STYLES[style_name]
    src = sources(style, tmp_path / "src")
    venv = make_venv("newest")
    install_cmd = ["setup.py", "install_atomic"]
    for round_ in range(4):
        versions = {"a": VERSIONS[round_ % 2], "b": VERSIONS[(round_ + 1) % 2]}
        outputs = run_together(
            venv, {side: (src[side, versions[side]], install_cmd) for side in ("a", "b")}
        )
        for output in outputs.values():
            assert conflict_warnings(output) == [], output
        check_state(venv, style, {side: src[side, versions[side]] for side in ("a", "b")})

    uninstall_b = ["-m", "install_atomic", "uninstall", style.dist("b")]
    uninstall_b += ["--target", str(venv.site_packages)]
    run_together(venv, {"a": (src["a", "2.0"], install_cmd), "b": (venv.root, uninstall_b)})
    check_state(venv, style, {"a": src["a", "2.0"], "b": None})
    run_together(venv, {"a": (src["a", "1.0"], install_cmd), "b": (src["b", "1.0"], install_cmd)})
    check_state(venv, style, {"a": src["a", "1.0"], "b": src["b", "1.0"]})


# --------------------------------------------------------------------------- conflicts

INTRUDER_SETUP = """\
from setuptools import setup

setup(
    name="demo-intruder",
    version="{version}",
    py_modules=["intruder"],
    packages={packages!r},
    zip_safe=False,
)
"""


def make_intruder(root: Path, version: str, *, ship_core: bool) -> Path:
    """A project that (with *ship_core*) also ships ``demons/beta/core.py``, a file the
    ``demo-ns-b`` distribution owns, with different content."""
    project = root / f"intruder-{version}"
    project.mkdir(parents=True)
    packages = ["demons.beta"] if ship_core else []
    (project / "setup.py").write_text(INTRUDER_SETUP.format(version=version, packages=packages))
    (project / "intruder.py").write_text(f'VERSION = "{version}"\n')
    if ship_core:
        (project / "demons" / "beta").mkdir(parents=True)
        (project / "demons" / "beta" / "core.py").write_text(
            textwrap.dedent(f"""\
                VERSION = "intruder-{version}"
                """)
        )
    return project


def test_conflicting_file(make_venv: MakeVenv, tmp_path: Path) -> None:
    """A new version that ships a file another distribution lists: ``--strict`` refuses
    before anything changes; by default a warning names both distributions and the file is
    replaced; the file is never deleted while another distribution lists it."""
    style = STYLES["pep420"]
    src = sources(style, tmp_path / "src")
    venv = make_venv("newest")
    site = venv.site_packages
    core = site / "demons" / "beta" / "core.py"
    install(venv, src["a", "1.0"])
    install(venv, src["b", "1.0"])
    sibling = listed_digest(site, "demo-ns-b")
    intruder_1 = make_intruder(tmp_path / "src", "1.0", ship_core=True)
    intruder_2 = make_intruder(tmp_path / "src", "2.0", ship_core=False)

    before = tree_digest(venv.root)
    proc = venv.setup_py(intruder_1, "install_atomic", "--strict", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert str(core) in out and "demo-ns-b" in out and "demo-intruder" in out, out
    assert "--strict" in out and "Nothing was changed" in out, out
    assert tree_digest(venv.root) == before
    assert leftovers(venv.root) == []

    out = install(venv, intruder_1)
    warnings = conflict_warnings(out)
    assert len(warnings) == 1, out
    assert warnings[0].startswith("warning: "), warnings
    assert str(core) in warnings[0], warnings
    assert "demo-intruder" in warnings[0] and "demo-ns-b" in warnings[0], warnings
    assert venv.import_version("demons.beta.core") == "intruder-1.0"
    assert venv.import_version("intruder") == "1.0"
    now = listed_digest(site, "demo-ns-b")
    assert {p for p in sibling if now[p] != sibling[p]} <= {
        str(core),
        pyc_of(core),
    }
    assert now[str(core)] != "MISSING"

    # The new version no longer ships it: demo-ns-b still lists it, so it stays.
    install(venv, intruder_2)
    assert core.is_file()
    assert "MISSING" not in listed_digest(site, "demo-ns-b").values()
    assert venv.import_version("intruder") == "2.0"
    assert venv.import_version("demons.beta.core") == "intruder-1.0"  # as pip leaves it too

    # Back to 1.0 (conflict again, warned), then uninstall: the file stays.
    install(venv, intruder_1)
    uninstall(venv, "demo-intruder")
    assert not (site / "intruder.py").exists()
    assert "MISSING" not in listed_digest(site, "demo-ns-b").values()
    assert venv.run("-c", "import demons.alpha.core, demons.beta.core").returncode == 0

    # The other way round: uninstalling demo-ns-b keeps what demo-intruder still lists.
    install(venv, intruder_1)
    uninstall(venv, "demo-ns-b")
    assert core.is_file()
    assert sorted(p.name for p in core.parent.iterdir() if p.name != "__pycache__") == ["core.py"]
    assert venv.import_version("demons.beta.core") == "intruder-1.0"
    assert "MISSING" not in listed_digest(site, "demo-intruder").values()
    assert venv.import_version("demons.alpha.core") == "1.0"
    assert leftovers(venv.root) == []
