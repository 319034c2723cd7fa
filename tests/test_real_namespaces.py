"""Real namespace distributions from PyPI, built from their sdists with install_atomic.

* ``zope`` (PEP 420 since zope.interface 6 / zope.event 5): zope.interface (with its C
  extension) and zope.event; zope.event is upgraded 6.1 -> 6.2, downgraded and uninstalled
  while zope.interface's files stay byte for byte as they were.
* ``backports`` (pkgutil-style, an identical ``backports/__init__.py`` in both):
  backports.functools_lru_cache and backports.tarfile, both configured by
  ``pyproject.toml``/``setup.cfg`` only (installed with
  ``python -c "from setuptools import setup; setup()" install_atomic``) and versioned by
  setuptools-scm; backports.tarfile goes 1.1.1 -> 1.2.0 -> 1.1.1 -> uninstalled.
* ``backports`` again, with backports.weakref (a ``setup.py``): its
  ``backports/__init__.py`` declares the namespace as the others do, spelled
  differently (a comment, ``from pkgutil import extend_path``): installed with
  ``--strict``, in either order, without a warning.

The sdists (exact versions, so that the test means the same thing tomorrow) and
setuptools-scm's wheels are downloaded once per session.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import MakeVenv, Venv, leftovers, run
from install_atomic.engine.ownership import canonical_name, scan

pytestmark = pytest.mark.slow

#: (requirement, sdist file name prefix) of every sdist the tests build.
SDISTS = {
    "zope.interface==8.7": "zope_interface-8.7",
    "zope.event==6.1": "zope_event-6.1",
    "zope.event==6.2": "zope_event-6.2",
    "backports.tarfile==1.1.1": "backports_tarfile-1.1.1",
    "backports.tarfile==1.2.0": "backports_tarfile-1.2.0",
    "backports.functools_lru_cache==2.0.0": "backports.functools_lru_cache-2.0.0",
    "backports.weakref==1.0.post1": "backports.weakref-1.0.post1",
}
#: Build requirement of the backports.* sdists ([build-system] requires), as wheels.
BUILD_REQUIREMENTS = ("setuptools_scm[toml]>=3.4.1",)


def _pip_download(*args: str) -> str | None:
    """Run ``pip download``; return an error message or None."""
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", *args]
    try:
        run(cmd, timeout=600)
    except AssertionError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="session")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Requirement -> downloaded sdist; ``"wheels"`` -> directory of build-requirement
    wheels.  Fails (does not skip) when PyPI cannot be reached."""
    base = tmp_path_factory.mktemp("pypi")
    wheels = base / "wheels"
    jobs: dict[str, tuple[str, ...]] = {
        req: ("--no-binary", ":all:", "--no-deps", "-d", str(base / "sdists"), req)
        for req in SDISTS
    }
    jobs["wheels"] = ("--only-binary", ":all:", "-d", str(wheels), *BUILD_REQUIREMENTS)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(zip(jobs, pool.map(lambda args: _pip_download(*args), jobs.values())))
    errors = {key: error for key, error in results.items() if error}
    if errors:
        details = "\n\n".join(f"{key}:\n{err}" for key, err in errors.items())
        pytest.fail(
            "Could not download the real namespace distributions from PyPI (is the index or"
            f" its proxy reachable from pip?): {', '.join(errors)}\n\n{details}",
            pytrace=False,
        )
    found: dict[str, Path] = {"wheels": wheels}
    for req, stem in SDISTS.items():
        matches = sorted((base / "sdists").glob(f"{stem}.tar.gz"))
        if len(matches) != 1:
            pytest.fail(f"pip download {req} gave no {stem}.tar.gz in {base / 'sdists'}")
        found[req] = matches[0]
    return found


def unpack(sdist: Path, dest: Path) -> Path:
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python < 3.11.4 (sdists downloaded from PyPI just now)
            tar.extractall(dest)
    project = dest / sdist.name.removesuffix(".tar.gz")
    assert (project / "PKG-INFO").is_file(), project
    return project


def install(venv: Venv, project: Path, *args: str) -> str:
    """install_atomic from an unpacked sdist, through setup.py if it has one, else through
    an in-line ``setup()`` (pyproject.toml / setup.cfg projects)."""
    if (project / "setup.py").is_file():
        proc = venv.run("setup.py", "install_atomic", *args, cwd=project)
    else:
        setup = "from setuptools import setup; setup()"
        proc = venv.run("-c", setup, "install_atomic", *args, cwd=project)
    out = proc.stdout + proc.stderr
    assert "install_atomic: installed" in out, out
    return out


def uninstall(venv: Venv, name: str) -> None:
    proc = venv.run("-m", "install_atomic", "uninstall", name, "--target", venv.site_packages)
    assert f"uninstalled {name}" in proc.stdout


def listed_digest(site: Path, name: str) -> dict[str, str]:
    """Every file distribution *name* lists -> sha256 ("MISSING" if gone)."""
    dists = [d for d in scan(str(site)) if d.key == canonical_name(name)]
    assert len(dists) == 1, f"expected one {name} in {site}: {dists}"
    assert dists[0].files
    out = {}
    for path in sorted(dists[0].files):
        if os.path.isfile(path):
            out[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        else:
            out[path] = "MISSING"
    return out


def version_of(venv: Venv, name: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    return venv.run("-c", code).stdout.strip()




def conflict_warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if " is shipped by " in line]


ZOPE_CHECK = """
import zope.event, zope.interface
from zope.interface import Interface, implementer
from zope.interface import _zope_interface_coptimizations as c
class IThing(Interface): pass
@implementer(IThing)
class Thing: pass
assert IThing.providedBy(Thing())
seen = []
zope.event.subscribers.append(seen.append)
zope.event.notify("ping")
assert seen == ["ping"], seen
print(zope.interface.__file__, zope.event.__file__, c.__file__)
"""


def test_zope_namespace(downloads: dict[str, Path], make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest")
    site = venv.site_packages
    interface = unpack(downloads["zope.interface==8.7"], tmp_path / "src")
    events = {v: unpack(downloads[f"zope.event=={v}"], tmp_path / "src") for v in ("6.1", "6.2")}

    out = install(venv, interface) + install(venv, events["6.1"])
    assert conflict_warnings(out) == []
    assert not (site / "zope" / "__init__.py").exists()  # PEP 420 namespace
    assert list((site / "zope" / "interface").glob("_zope_interface_coptimizations.*.so"))
    neighbour = listed_digest(site, "zope.interface")
    assert "MISSING" not in neighbour.values()

    for version in ("6.2", "6.1", "6.2"):
        out = install(venv, events[version])
        assert conflict_warnings(out) == [], out
        assert version_of(venv, "zope.event") == version
        assert listed_digest(site, "zope.interface") == neighbour, f"zope.event {version}"
        assert "MISSING" not in listed_digest(site, "zope.event").values()
        for location in venv.run("-c", ZOPE_CHECK).stdout.split():
            assert Path(location).is_relative_to(site), location
        assert sorted(p.name for p in site.glob("zope.event-*")) == [
            f"zope.event-{version}-py{sys.version_info[0]}.{sys.version_info[1]}.egg-info"
        ]

    uninstall(venv, "zope.event")
    assert listed_digest(site, "zope.interface") == neighbour
    assert not (site / "zope" / "event").exists()
    assert not list(site.glob("zope.event-*"))
    venv.run("-c", "import zope.interface; from zope.interface import Interface")
    proc = venv.run("-c", "import zope.event", check=False)
    assert "ModuleNotFoundError" in proc.stderr
    assert leftovers(venv.root) == []


BACKPORTS_CHECK = """
from backports.functools_lru_cache import lru_cache
import backports, backports.tarfile, io
@lru_cache(maxsize=2)
def square(x): return x * x
assert square(3) == 9 and square.cache_info().hits == 0
buf = io.BytesIO()
with backports.tarfile.open(fileobj=buf, mode="w") as tar:
    info = backports.tarfile.TarInfo("hello.txt"); info.size = 5
    tar.addfile(info, io.BytesIO(b"hello"))
buf.seek(0)
with backports.tarfile.open(fileobj=buf) as tar:
    assert tar.extractfile("hello.txt").read() == b"hello"
print(backports.tarfile.__file__)
"""


def test_backports_namespace(
    downloads: dict[str, Path], make_venv: MakeVenv, tmp_path: Path
) -> None:
    venv = make_venv("newest")
    site = venv.site_packages
    venv.pip("install", "--no-index", "--find-links", downloads["wheels"], *BUILD_REQUIREMENTS)
    lru = unpack(downloads["backports.functools_lru_cache==2.0.0"], tmp_path / "src")
    tarfiles = {
        v: unpack(downloads[f"backports.tarfile=={v}"], tmp_path / "src")
        for v in ("1.1.1", "1.2.0")
    }
    assert not (lru / "setup.py").exists()  # installed through an in-line setup()

    out = install(venv, lru) + install(venv, tarfiles["1.1.1"])
    # Both ship the same pkgutil backports/__init__.py: shared, not a conflict.
    assert conflict_warnings(out) == [], out
    init = site / "backports" / "__init__.py"
    assert "extend_path" in init.read_text()
    neighbour = listed_digest(site, "backports.functools_lru_cache")
    assert str(init) in listed_digest(site, "backports.tarfile")

    for version in ("1.2.0", "1.1.1", "1.2.0"):
        out = install(venv, tarfiles[version])
        assert conflict_warnings(out) == [], out
        assert version_of(venv, "backports.tarfile") == version
        assert version_of(venv, "backports.functools_lru_cache") == "2.0.0"
        assert listed_digest(site, "backports.functools_lru_cache") == neighbour, version
        location = venv.run("-c", BACKPORTS_CHECK).stdout.strip()
        assert Path(location) == site / "backports" / "tarfile" / "__init__.py"

    uninstall(venv, "backports.tarfile")
    assert listed_digest(site, "backports.functools_lru_cache") == neighbour
    assert init.is_file()  # still listed by backports.functools_lru_cache
    assert not (site / "backports" / "tarfile").exists()
    code = "from backports.functools_lru_cache import lru_cache; print(lru_cache)"
    venv.run("-c", code)
    assert leftovers(venv.root) == []


@pytest.mark.parametrize("first", ["functools_lru_cache", "weakref"])
def test_backports_spelled_differently_under_strict(
    first: str, downloads: dict[str, Path], make_venv: MakeVenv, tmp_path: Path
) -> None:
    """backports.functools_lru_cache 2.0.0 and backports.weakref 1.0.post1 both ship a
    pkgutil ``backports/__init__.py``, with different bytes.  Each declares the namespace
    and does nothing else, so neither install warns that the other "owns" it, and
    ``--strict`` installs both, in either order; the second's file is the one in place,
    both list it, and uninstalling either keeps it for the other."""
    venv = make_venv("newest")
    site = venv.site_packages
    venv.pip("install", "--no-index", "--find-links", downloads["wheels"], *BUILD_REQUIREMENTS)
    projects = {
        "functools_lru_cache": unpack(downloads["backports.functools_lru_cache==2.0.0"],
                                      tmp_path / "src"),
        "weakref": unpack(downloads["backports.weakref==1.0.post1"], tmp_path / "src"),
    }
    inits = {
        name: next(project.rglob("backports/__init__.py")).read_bytes()
        for name, project in projects.items()
    }
    assert inits["functools_lru_cache"] != inits["weakref"]
    assert all(b"extend_path" in text for text in inits.values())
    second = next(name for name in projects if name != first)

    out = install(venv, projects[first], "--strict") + install(venv, projects[second],
                                                               "--strict")
    assert conflict_warnings(out) == [], out
    init = site / "backports" / "__init__.py"
    assert init.read_bytes() == inits[second]
    for name in projects:
        assert str(init) in listed_digest(site, f"backports.{name}")
    check = (
        "from backports.functools_lru_cache import lru_cache\n"
        "from backports.weakref import finalize\n"
        "import backports; print(backports.__file__)"
    )
    assert venv.run("-c", check).stdout.strip() == str(init)

    uninstall(venv, f"backports.{first}")
    assert init.read_bytes() == inits[second]  # still listed by the other one
    venv.run("-c", f"import backports.{second}")
    assert leftovers(venv.root) == []
