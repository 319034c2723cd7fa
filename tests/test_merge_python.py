"""Python distributions inside a merged tree: ``pip install --root`` trees merged into a
prefix are exact upgrades, sharing a namespace (``backports``) with another distribution."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import make_wheel, record_problems
from install_atomic.engine import ownership
from mergekit import digest, ia, private, python_site, write_tree

NS = "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"


def _pip_root(wheel: Path, dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--root", str(dest), "--prefix", "/opt/sage", str(wheel)],
                   check=True, capture_output=True, timeout=300,
                   env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore",
                        "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    return dest


def test_pip_root_trees_merged_are_exact_upgrades(tmp_path: Path) -> None:
    w = tmp_path / "wheels"
    foo1 = make_wheel(w, "backports.foo", "1.0", {
        "backports/__init__.py": NS, "backports/foo/__init__.py": "V = 1\n",
        "backports/foo/old.py": "x = 1\n"})
    foo2 = make_wheel(w, "backports.foo", "2.0", {
        "backports/__init__.py": NS, "backports/foo/__init__.py": "V = 2\n",
        "backports/foo/new.py": "y = 2\n"})
    bar = make_wheel(w, "backports.bar", "1.0", {
        "backports/__init__.py": "# other comment\n" + NS, "backports/bar.py": "B = 1\n"})
    prefix = tmp_path / "local"
    write_tree(prefix, {"include/x.h": "x"})
    manifests = prefix / "var/lib/installed"
    for name, wheel in (("bar", bar), ("foo-1.0", foo1)):
        ia("merge", "--strip", "/opt/sage", "--manifest", str(manifests / f"{name}.json"),
           str(_pip_root(wheel, tmp_path / f"d-{name}")), str(prefix))
    site = Path(python_site(prefix))
    bar_files = {k: v for k, v in digest(site).items() if "bar" in k}
    ia("merge", "--strip", "/opt/sage", "--manifest", str(manifests / "foo-2.0.json"),
       "--replace", str(manifests / "foo-1.0.json"),
       str(_pip_root(foo2, tmp_path / "d-foo2")), str(prefix))
    dists = {d.name: d.version for d in ownership.scan(str(site))}
    assert dists == {"backports.foo": "2.0", "backports.bar": "1.0"}
    assert sorted(os.listdir(site / "backports/foo")) == ["__init__.py", "__pycache__", "new.py"]
    assert not [p for p in os.listdir(site / "backports/foo/__pycache__") if "old" in p]
    for d in site.glob("*.dist-info"):  # the shared __init__.py is the last one merged
        problems = [p for p in record_problems(d) if "backports/__" not in p]
        assert problems == [], d
    after = digest(site)
    for rel, entry in bar_files.items():
        assert after[rel] == entry, rel
    out = subprocess.run([sys.executable, "-c", "import backports.foo as f, backports.bar as b;"
                          " print(f.V, b.B)"], env={**os.environ, "PYTHONPATH": str(site)},
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.split() == ["2", "1"]
    assert sorted(os.listdir(manifests)) == ["bar.json", "foo-2.0.json"]
    assert not private(prefix)
    # uninstall by manifest removes the distribution, keeps the shared namespace and bar
    ia("uninstall", "--manifest", str(manifests / "foo-2.0.json"))
    assert {d.name for d in ownership.scan(str(site))} == {"backports.bar"}
    assert (site / "backports/__init__.py").exists() and (site / "backports/bar.py").exists()
    assert not (site / "backports/foo").exists() and (prefix / "include/x.h").exists()


def test_python_dist_upgrade_without_manifest_is_exact(tmp_path: Path) -> None:
    """No --replace: the engine still replaces the installed version of a distribution the
    tree holds (found by name), as 'install' does."""
    w = tmp_path / "wheels"
    v1 = make_wheel(w, "solo", "1.0", {"solo/__init__.py": "", "solo/gone.py": ""})
    v2 = make_wheel(w, "solo", "2.0", {"solo/__init__.py": "V = 2\n"})
    prefix = tmp_path / "p"
    prefix.mkdir()
    ia("merge", "--strip", "/opt/sage", str(_pip_root(v1, tmp_path / "d1")), str(prefix))
    ia("merge", "--strip", "/opt/sage", str(_pip_root(v2, tmp_path / "d2")), str(prefix))
    site = Path(python_site(prefix))
    assert [d.version for d in ownership.scan(str(site))] == ["2.0"]
    assert not (site / "solo/gone.py").exists()


def _setup_py_root(tmp_path: Path, version: str, modules: dict[str, str]) -> Path:
    proj = tmp_path / f"proj-{version}"
    for name, text in {**modules, "setup.py": "from setuptools import setup\n"
                       f"setup(name='sol', version='{version}', packages=['sol'])\n"}.items():
        (proj / name).parent.mkdir(parents=True, exist_ok=True)
        (proj / name).write_text(text)
    dest = tmp_path / f"dest-{version}"
    subprocess.run([sys.executable, "setup.py", "-q", "install", "--root", str(dest),
                    "--prefix", "/opt/sage", "--single-version-externally-managed"],
                   cwd=proj, check=True, capture_output=True, timeout=300)
    return dest


def test_setup_py_root_trees_merged_are_exact_upgrades(tmp_path: Path) -> None:
    """``setup.py install --root`` leaves an egg-info without a file list: its
    ``top_level.txt`` claims the package directory, which the upgrade swaps whole."""
    prefix = tmp_path / "p"
    prefix.mkdir()
    v1 = _setup_py_root(tmp_path, "1.0", {"sol/__init__.py": "V = 1\n", "sol/gone.py": ""})
    v2 = _setup_py_root(tmp_path, "2.0", {"sol/__init__.py": "V = 2\n"})
    ia("merge", "--strip", "/opt/sage", str(v1), str(prefix))
    ia("merge", "--strip", "/opt/sage", str(v2), str(prefix))
    site = Path(python_site(prefix))
    assert [(d.name, d.version) for d in ownership.scan(str(site))] == [("sol", "2.0")]
    assert sorted(os.listdir(site / "sol")) == ["__init__.py"]
    assert (site / "sol/__init__.py").read_text() == "V = 2\n" and not private(prefix)
