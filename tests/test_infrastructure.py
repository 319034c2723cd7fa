"""Self-tests of the test infrastructure: fixture projects, helpers, toolsets and venvs."""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from pathlib import Path

import pytest

from helpers import (
    BROKEN_SCENARIOS,
    BUILDABLE_SCENARIOS,
    FLAVOURS,
    PACKAGES_DIR,
    SCENARIO_VERSIONS,
    SCENARIOS,
    TOOLS_PTH,
    VERSION_PLACEHOLDER,
    MakeVenv,
    Toolset,
    Venv,
    make_project,
    run,
    tree_digest,
)

# --------------------------------------------------------------------------- fixture projects

#: Namespace ``__init__.py`` files shared by sibling distributions: byte-identical, no VERSION.
SHARED_NS_INIT = {
    "ns_pkgutil_a": "demopku/__init__.py",
    "ns_pkgutil_b": "demopku/__init__.py",
    "ns_pkgres_a": "demopkr/__init__.py",
    "ns_pkgres_b": "demopkr/__init__.py",
}

#: scenario -> (files only in 1.0, files only in 2.0) of the project sources.
VERSION_FILE_DIFFERENCES: dict[str, tuple[set[str], set[str]]] = {
    "pkg": ({"demopkg/only_v1.py"}, {"demopkg/only_v2.py", "demopkg/sub/extra.py"}),
    "module": (set(), set()),
    "ext": (set(), set()),
    "scripts": ({"data/v1-only.txt"}, {"data/v2-only.txt"}),
    "ns_pep420_a": ({"demons/alpha/dropped.py"}, set()),
    "ns_pep420_b": ({"demons/beta/dropped.py"}, set()),
    "ns_pkgutil_a": ({"demopku/alpha/dropped.py"}, set()),
    "ns_pkgutil_b": ({"demopku/beta/dropped.py"}, set()),
    "ns_pkgres_a": ({"demopkr/alpha/dropped.py"}, set()),
    "ns_pkgres_b": ({"demopkr/beta/dropped.py"}, set()),
}


def files_of(project: Path) -> dict[str, str]:
    return {rel: kind for rel, kind in tree_digest(project).items() if kind != "dir"}


def test_scenario_table_matches_templates() -> None:
    # install/ holds the projects of the install front end's tests, not scenarios.
    on_disk = sorted(p.name for p in PACKAGES_DIR.iterdir() if p.is_dir() and p.name != "install")
    assert on_disk == sorted(SCENARIOS)
    for scenario, versions in SCENARIO_VERSIONS.items():
        overlays = PACKAGES_DIR / scenario / "versions"
        if overlays.is_dir():
            assert {p.name for p in overlays.iterdir()} <= set(versions), scenario


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_make_project_substitutes_version_everywhere(scenario: str, tmp_path: Path) -> None:
    for version in SCENARIO_VERSIONS[scenario]:
        project = make_project(scenario, tmp_path, version)
        assert project == tmp_path / f"{scenario}-{version}"
        assert (project / "setup.py").is_file()
        assert not (project / "versions").exists()
        modules = 0
        for rel in files_of(project):
            text = (project / rel).read_text(encoding="utf-8")
            assert VERSION_PLACEHOLDER not in text, rel
            if rel == "setup.py":
                assert f'version="{version}"' in text
            elif rel.endswith(".py") and rel != SHARED_NS_INIT.get(scenario):
                assert f'VERSION = "{version}"' in text, rel
                modules += 1
            elif rel.endswith(".c"):
                assert f'"{version}"' in text, rel
        assert modules >= 1


@pytest.mark.parametrize("scenario", sorted(VERSION_FILE_DIFFERENCES))
def test_make_project_versions_differ_in_files(scenario: str, tmp_path: Path) -> None:
    v1 = files_of(make_project(scenario, tmp_path, "1.0"))
    v2 = files_of(make_project(scenario, tmp_path, "2.0"))
    only_v1, only_v2 = VERSION_FILE_DIFFERENCES[scenario]
    assert set(v1) - set(v2) == only_v1
    assert set(v2) - set(v1) == only_v2
    changed = {rel for rel in set(v1) & set(v2) if v1[rel] != v2[rel]}
    shared_init = SHARED_NS_INIT.get(scenario)
    assert changed == set(v1) & set(v2) - {shared_init}  # all but the shared ns __init__


def test_pkg_layouts(tmp_path: Path) -> None:
    common = {"setup.py", "demopkg/__init__.py", "demopkg/sub/__init__.py"}
    common.add("demopkg/data/table.txt")
    assert set(files_of(make_project("pkg", tmp_path))) == common | {"demopkg/only_v1.py"}
    v2 = files_of(make_project("pkg", tmp_path, "2.0"))
    v3 = files_of(make_project("pkg", tmp_path, "3.0"))
    assert set(v2) == set(v3) == common | {"demopkg/only_v2.py", "demopkg/sub/extra.py"}
    broken = make_project("broken_import", tmp_path)
    assert broken.name == "broken_import-9.0"
    assert set(files_of(broken)) == common
    assert 'name="demo-pkg"' in (broken / "setup.py").read_text(encoding="utf-8")


def test_shared_namespace_inits_are_byte_identical(tmp_path: Path) -> None:
    for prefix in ("ns_pkgutil", "ns_pkgres"):
        contents = {
            (
                make_project(f"{prefix}_{side}", tmp_path, v) / SHARED_NS_INIT[f"{prefix}_a"]
            ).read_bytes()
            for side in ("a", "b")
            for v in ("1.0", "2.0")
        }
        assert len(contents) == 1, prefix
    assert not list(make_project("ns_pep420_a", tmp_path).glob("demons/__init__.py"))


def test_make_project_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown fixture scenario"):
        make_project("nope", tmp_path)
    with pytest.raises(ValueError, match=r"supported: 1\.0, 2\.0, 3\.0"):
        make_project("pkg", tmp_path, "4.0")
    make_project("pkg", tmp_path)
    with pytest.raises(FileExistsError):
        make_project("pkg", tmp_path, "1.0")


def test_scripts_template_is_executable() -> None:
    assert os.access(PACKAGES_DIR / "scripts" / "bin" / "demo-legacy-script", os.X_OK)


# --------------------------------------------------------------------------- tree_digest


def test_tree_digest_detects_one_byte_change_and_symlink_retarget(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "pkg" / "empty").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_bytes(b"VERSION = '1.0'\n")
    (root / "other.txt").write_bytes(b"x")
    (root / "link").symlink_to("pkg/mod.py")
    (root / "dirlink").symlink_to("pkg", target_is_directory=True)
    (root / "dangling").symlink_to("does-not-exist")
    before = tree_digest(root)
    assert before == {
        "dangling": "link:does-not-exist",
        "dirlink": "link:pkg",
        "link": "link:pkg/mod.py",
        "other.txt": "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
        "pkg": "dir",
        "pkg/empty": "dir",
        "pkg/mod.py": before["pkg/mod.py"],
    }
    assert list(before) == sorted(before)
    assert tree_digest(root) == before

    (root / "pkg" / "mod.py").write_bytes(b"VERSION = '2.0'\n")  # one byte differs
    after = tree_digest(root)
    assert {k for k in before if before[k] != after[k]} == {"pkg/mod.py"}

    (root / "pkg" / "mod.py").write_bytes(b"VERSION = '1.0'\n")
    (root / "link").unlink()
    (root / "link").symlink_to("other.txt")
    after = tree_digest(root)
    assert after["link"] == "link:other.txt"
    assert {k for k in before if before[k] != after[k]} == {"link"}

    (root / "pkg" / "empty").rmdir()
    assert set(before) - set(tree_digest(root)) == {"pkg/empty"}


def test_tree_digest_exclude(tmp_path: Path) -> None:
    (tmp_path / "a" / "__pycache__").mkdir(parents=True)
    (tmp_path / "a" / "__pycache__" / "m.pyc").write_bytes(b"")
    (tmp_path / "a" / "m.py").write_bytes(b"")
    (tmp_path / "a" / "n.txt").write_bytes(b"")
    assert set(tree_digest(tmp_path, exclude=("__pycache__", "a/*.txt"))) == {"a", "a/m.py"}
    with pytest.raises(NotADirectoryError):
        tree_digest(tmp_path / "a" / "m.py")


# --------------------------------------------------------------------------- run


def test_run_failure_reports_output(tmp_path: Path) -> None:
    code = "import sys; print('to-stdout'); print('to-stderr', file=sys.stderr); sys.exit(3)"
    with pytest.raises(AssertionError) as excinfo:
        run([sys.executable, "-c", code], cwd=tmp_path)
    message = str(excinfo.value)
    assert "exit status 3" in message
    assert "to-stdout" in message
    assert "to-stderr" in message
    proc = run([sys.executable, "-c", code], check=False)
    assert proc.returncode == 3
    assert proc.stdout == "to-stdout\n"


def test_run_env_and_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/leaks")
    monkeypatch.setenv("IA_TEST_REMOVE_ME", "1")
    code = "import os; print(os.environ.get('PYTHONPATH'), os.environ.get('IA_TEST_REMOVE_ME'),"
    code += " os.environ.get('IA_TEST_ADDED'))"
    proc = run(
        [sys.executable, "-c", code], env={"IA_TEST_REMOVE_ME": None, "IA_TEST_ADDED": "yes"}
    )
    assert proc.stdout.split() == ["None", "None", "yes"]
    with pytest.raises(AssertionError, match="timed out"):
        run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)


# --------------------------------------------------------------------------- toolsets and venvs


@pytest.mark.slow
def test_toolset_versions(toolsets: dict[str, Toolset]) -> None:
    assert set(toolsets) == set(FLAVOURS)
    assert toolsets["66"].setuptools_version == "66.1.1"
    assert toolsets["66"].versions["wheel"] == "0.38.4"
    newest = toolsets["newest"].setuptools_version
    assert int(newest.split(".")[0]) >= 80, newest
    for toolset in toolsets.values():
        assert {"pip", "wheel", "filelock"} <= set(toolset.versions)
        assert toolset.path.is_dir()


_PROBE = """
import importlib.metadata as md, json, sys, sysconfig
import setuptools  # first: on Python < 3.12 importing pip first disables distutils-precedence
import filelock, pip, wheel
print(json.dumps({
    "prefix": sys.prefix,
    "purelib": sysconfig.get_paths()["purelib"],
    "setuptools": setuptools.__version__,
    "setuptools_file": setuptools.__file__,
    "pip_file": pip.__file__,
    "commands": sorted(ep.name for ep in md.entry_points(group="distutils.commands")),
}))
"""


@pytest.mark.slow
def test_venv_sees_toolset(make_venv: MakeVenv, toolsets: dict[str, Toolset]) -> None:
    for flavour, toolset in toolsets.items():
        venv = make_venv(flavour, name=f"probe-{flavour}", require_install_atomic=False)
        assert venv.python.is_file()
        assert venv.bin == venv.root / "bin"
        assert (venv.site_packages / TOOLS_PTH).is_file()
        info = json.loads(venv.run("-c", _PROBE).stdout)
        assert Path(info["prefix"]) == venv.root
        assert Path(info["purelib"]) == venv.site_packages  # pip installs into the venv
        assert info["setuptools"] == toolset.setuptools_version
        assert Path(info["setuptools_file"]).is_relative_to(toolset.path)
        assert Path(info["pip_file"]).is_relative_to(toolset.path)
        assert "build_ext" in info["commands"]


@pytest.mark.slow
def test_venv_has_install_atomic(venv: Venv) -> None:
    """Fails with the build log if this repository cannot be built into the toolsets."""
    code = (
        "import importlib.metadata as md, install_atomic, json;"
        "print(json.dumps([install_atomic.__file__, [ep.value for ep in"
        " md.entry_points(group='distutils.commands') if ep.name == 'install_atomic']]))"
    )
    location, commands = json.loads(venv.run("-c", code).stdout)
    assert Path(location).is_relative_to(venv.tools)
    assert len(commands) == 1
    assert commands[0].startswith("install_atomic")


#: scenario -> (files expected in build/lib, import check printing the version).
BUILD_EXPECTATIONS: dict[str, tuple[set[str], str]] = {
    "pkg": (
        {
            "demopkg/__init__.py",
            "demopkg/only_v1.py",
            "demopkg/data/table.txt",
            "demopkg/sub/__init__.py",
        },
        "import demopkg.only_v1, demopkg.sub; print(demopkg.sub.VERSION)",
    ),
    "module": ({"demomod.py"}, "import demomod; print(demomod.VERSION)"),
    "ext": (
        {"demoext/__init__.py", "demoext/_speed" + str(sysconfig.get_config_var("EXT_SUFFIX"))},
        "import demoext._speed as s; assert s.add(2, 3) == 5; assert s.VERSION == s.version();"
        "print(s.version())",
    ),
    "scripts": (
        {"demoscripts/__init__.py", "demoscripts/cli.py"},
        "import demoscripts.cli as c; print(c.VERSION)",
    ),
}
for _side, _sub in (("a", "alpha"), ("b", "beta")):
    for _style, _ns in (("pep420", "demons"), ("pkgutil", "demopku"), ("pkgres", "demopkr")):
        _files = {f"{_ns}/{_sub}/{m}.py" for m in ("__init__", "core", "dropped")}
        if _style != "pep420":
            _files.add(f"{_ns}/__init__.py")
        BUILD_EXPECTATIONS[f"ns_{_style}_{_side}"] = (
            _files,
            f"import {_ns}.{_sub}.dropped as m; print(m.VERSION)",
        )


@pytest.mark.slow
@pytest.mark.parametrize("scenario", BUILDABLE_SCENARIOS)
def test_setup_py_build(scenario: str, flavour: str, make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv(flavour, require_install_atomic=False)
    project = make_project(scenario, tmp_path / "src")
    venv.setup_py(project, "build", "--build-lib", "build/lib")
    expected_files, check = BUILD_EXPECTATIONS[scenario]
    assert set(files_of(project / "build" / "lib")) == expected_files
    proc = venv.run("-c", check, cwd=project / "build" / "lib", check=False)
    if scenario.startswith("ns_pkgres") and not (venv.tools / "pkg_resources").is_dir():
        # setuptools >= 8x ships no pkg_resources: demopkr/__init__.py cannot run (installs
        # still work: wheels replace it by a *-nspkg.pth file).
        assert proc.returncode != 0
        assert "No module named 'pkg_resources'" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "1.0"


@pytest.mark.slow
@pytest.mark.parametrize("scenario", BROKEN_SCENARIOS)
def test_broken_scenarios_are_broken(scenario: str, make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest", require_install_atomic=False)
    project = make_project(scenario, tmp_path)
    proc = venv.setup_py(project, "build", "--build-lib", "build/lib", check=False)
    if scenario == "broken_build":
        assert proc.returncode != 0
        assert "_broken.c" in proc.stdout + proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
        proc = venv.run("-c", "import demopkg", cwd=project / "build" / "lib", check=False)
        assert "RuntimeError: demo-pkg 9.0 is broken on purpose" in proc.stderr


@pytest.mark.slow
def test_pip_install_and_uninstall_pkg(flavour: str, make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv(flavour, require_install_atomic=False)
    project = make_project("pkg", tmp_path, "1.0")
    venv_before = tree_digest(venv.root, exclude=("__pycache__",))
    tools_before = tree_digest(venv.tools, exclude=("__pycache__",))

    venv.pip("install", project)
    sp = venv.site_packages
    assert (sp / "demopkg" / "only_v1.py").is_file()
    assert (sp / "demopkg" / "data" / "table.txt").read_text() == "demo-pkg table for version 1.0\n"
    assert (sp / "demo_pkg-1.0.dist-info" / "RECORD").is_file()
    assert venv.import_version("demopkg") == "1.0"
    assert venv.import_version("demopkg.only_v1") == "1.0"
    location = venv.run("-c", "import demopkg; print(demopkg.__file__)").stdout.strip()
    assert Path(location) == sp / "demopkg" / "__init__.py"
    assert tree_digest(venv.tools, exclude=("__pycache__",)) == tools_before

    venv.pip("uninstall", "--yes", "demo-pkg")
    assert tree_digest(venv.root, exclude=("__pycache__",)) == venv_before
    assert tree_digest(venv.tools, exclude=("__pycache__",)) == tools_before


@pytest.mark.slow
def test_pip_install_scripts(flavour: str, make_venv: MakeVenv, tmp_path: Path) -> None:
    """Entry points, legacy scripts, data files and headers of the ``scripts`` fixture, built
    with the flavour's own setuptools and wheel (no build isolation)."""
    venv = make_venv(flavour, require_install_atomic=False)
    project = make_project("scripts", tmp_path, "2.0")
    venv_before = tree_digest(venv.root, exclude=("__pycache__",))
    venv.pip("install", "--no-build-isolation", project)
    assert run([venv.bin / "demo-cli"]).stdout == "demo-cli 2.0\n"
    assert run([venv.bin / "demo-legacy-script"]).stdout == "demo-legacy-script 2.0\n"
    share = venv.root / "share" / "demo-scripts"
    assert sorted(p.name for p in share.iterdir()) == ["readme.txt", "v2-only.txt"]
    headers = list(venv.root.glob("include/**/demo.h"))
    assert len(headers) == 1
    assert '"2.0"' in headers[0].read_text()
    venv.pip("uninstall", "--yes", "demo-scripts")
    after = tree_digest(venv.root, exclude=("__pycache__",))
    # pip leaves the emptied data/header directories behind.
    leftovers = {rel for rel in set(after) - set(venv_before) if after[rel] == "dir"}
    assert {rel: after[rel] for rel in after if rel not in leftovers} == venv_before


@pytest.mark.slow
def test_pip_install_namespace_siblings(flavour: str, make_venv: MakeVenv, tmp_path: Path) -> None:
    """All six namespace fixtures install side by side (flavour's own setuptools)."""
    venv = make_venv(flavour, require_install_atomic=False)
    projects = [
        make_project(f"ns_{style}_{side}", tmp_path)
        for style in ("pep420", "pkgutil", "pkgres")
        for side in ("a", "b")
    ]
    venv.pip("install", "--no-build-isolation", *projects)
    sp = venv.site_packages
    assert not (sp / "demons" / "__init__.py").exists()
    assert (sp / "demopku" / "__init__.py").is_file()
    # pkg_resources style through a wheel: no __init__.py, a *-nspkg.pth per distribution.
    assert not (sp / "demopkr" / "__init__.py").exists()
    assert sorted(p.name for p in sp.glob("*-nspkg.pth")) == [
        f"demo_pkr_{side}-1.0-py{sys.version_info[0]}.{sys.version_info[1]}-nspkg.pth"
        for side in ("a", "b")
    ]
    for ns in ("demons", "demopku", "demopkr"):
        for sub in ("alpha", "beta"):
            assert venv.import_version(f"{ns}.{sub}.dropped") == "1.0"
