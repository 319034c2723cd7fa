"""``install-atomic install`` of real wheels (PyPI releases, pinned) into real venvs:
what lands where, RECORD, INSTALLER/REQUESTED/direct_url.json, the location options
(--target, --prefix, --root), --dry-run, --report, --no-compile and -q."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import marshal
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import (
    MakeVenv,
    Venv,
    Wheelhouse,
    dist_info,
    ia_install,
    listed_files,
    pip_list,
    record_problems,
    record_rows,
    run,
    session_wheelhouse,
    tree_digest,
    venv_files,
)

pytestmark = pytest.mark.slow

PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    return session_wheelhouse(tmp_path_factory.mktemp)


def assert_records_complete(venv: Venv, site: Path) -> None:
    """Every RECORD is right, lists every file installed (bytecode included) and every
    listed module has its bytecode listed too."""
    infos = sorted(site.glob("*.dist-info"))
    assert infos
    for info in infos:
        assert record_problems(info) == [], info.name
    listed = listed_files(site)
    assert venv_files(venv) == listed
    for path in listed:
        if path.suffix == ".py" and site in path.parents:
            assert Path(importlib.util.cache_from_source(str(path))) in listed, path


def other_interpreter() -> tuple[str, str] | None:
    """(executable, cache tag) of a CPython 3.9+ other than the running one, or None."""
    candidates = [shutil.which(f"python3.{minor}") for minor in range(9, 16)]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv.glob("versions/3.*/bin/python3"))]
    for candidate in filter(None, candidates):
        try:
            proc = subprocess.run(
                [candidate, "-c", "import sys; print(sys.executable);"
                 " print(sys.implementation.cache_tag); print(sys.version_info >= (3, 9))"],
                capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        lines = proc.stdout.split()
        if proc.returncode == 0 and len(lines) == 3 and lines[2] == "True" \
                and lines[1] != sys.implementation.cache_tag:
            return lines[0], lines[1]
    return None


def shebang(script: Path) -> str:
    return script.read_bytes().split(b"\n", 1)[0].decode()


def pyc_source(pyc: Path) -> str:
    code = marshal.loads(pyc.read_bytes()[16:])
    return str(code.co_filename)


def test_pure_binary_scripts_headers_in_one_install(
    make_venv: MakeVenv, wheelhouse: Wheelhouse
) -> None:
    venv = make_venv()
    six_wheel = wheelhouse.wheel("six", "1.16.0")
    proc = ia_install(venv, wheelhouse, six_wheel, "markupsafe==2.1.5", "pyflakes==3.2.0",
                      "jmespath==1.0.1", "greenlet==3.1.1")
    assert "installed" in proc.stdout, proc.stdout
    site = venv.site_packages
    assert pip_list(venv) == {"six": "1.16.0", "markupsafe": "2.1.5", "pyflakes": "3.2.0",
                              "jmespath": "1.0.1", "greenlet": "3.1.1"}

    # the binary wheels' extension modules load
    out = venv.run("-c", "import six, markupsafe._speedups as s, greenlet._greenlet as g,"
                   " jmespath; print(six.__version__, s.__file__, g.__file__,"
                   " jmespath.search('a.b', {'a': {'b': 42}}))").stdout.split()
    assert out[0] == "1.16.0"
    assert out[1].endswith(".so") and out[2].endswith(".so")
    assert Path(out[1]).parent == site / "markupsafe"
    assert out[3] == "42"

    # a console script (entry point) runs with the venv's interpreter
    script = venv.bin / "pyflakes"
    assert shebang(script) == f"#!{venv.python}"
    assert run([script, "--version"]).stdout.startswith("3.2.0")
    # a .data/scripts script: '#!python' rewritten, executable, runs
    jp = venv.bin / "jp.py"
    assert shebang(jp) == f"#!{venv.python}"
    assert "subexpression" in run([jp, "--ast", "a.b"]).stdout
    # a .data/headers header, byte for byte
    header = venv.root / "include" / "site" / PY / "greenlet" / "greenlet.h"
    with zipfile.ZipFile(wheelhouse.wheel("greenlet", "3.1.1")) as zf:
        assert header.read_bytes() == zf.read("greenlet-3.1.1.data/headers/greenlet.h")

    # RECORD: every file installed (bytecode, scripts and header included) with its hash
    assert_records_complete(venv, site)
    assert header in listed_files(site)
    assert site / "__pycache__" / f"six.{sys.implementation.cache_tag}.pyc" in listed_files(site)
    for name, version in [("six", "1.16.0"), ("markupsafe", "2.1.5"), ("pyflakes", "3.2.0"),
                          ("jmespath", "1.0.1"), ("greenlet", "3.1.1")]:
        info = dist_info(site, name, version)
        assert (info / "INSTALLER").read_text() == "install-atomic\n"
        assert (info / "REQUESTED").is_file()
        # PEP 610: only the wheel named by its path records where it came from
        assert (info / "direct_url.json").exists() == (name == "six"), name
    direct = json.loads((dist_info(site, "six", "1.16.0") / "direct_url.json").read_text())
    assert direct["url"] == six_wheel.resolve().as_uri()
    digest = hashlib.sha256(six_wheel.read_bytes()).hexdigest()
    assert direct["archive_info"]["hashes"] == {"sha256": digest}


def test_requests_and_dependencies_from_requirements_file(
    make_venv: MakeVenv, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    venv = make_venv()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("requests==2.32.3\n")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("urllib3==2.2.3\nidna==3.10\ncharset-normalizer==3.4.0\n"
                           "certifi==2024.8.30\n")
    report = tmp_path / "report.json"
    ia_install(venv, wheelhouse, "-r", requirements, "-c", constraints, "--report", report)
    expected = {"requests": "2.32.3", "urllib3": "2.2.3", "idna": "3.10",
                "charset-normalizer": "3.4.0", "certifi": "2024.8.30"}
    assert pip_list(venv) == expected
    site = venv.site_packages
    for name, version in expected.items():
        info = dist_info(site, name, version)
        # REQUESTED only for what the requirements file names, not for dependencies
        assert (info / "REQUESTED").exists() == (name == "requests"), name
        assert not (info / "direct_url.json").exists()
    assert_records_complete(venv, site)
    out = venv.run("-c", "import requests, certifi, os; print(requests.__version__,"
                   " os.path.isfile(certifi.where()))").stdout.split()
    assert out == ["2.32.3", "True"]

    doc = json.loads(report.read_text())
    assert doc["version"] == "1" and doc["dry_run"] is False
    assert doc["environment"]["purelib"] == str(site)
    dists = {d["name"].lower(): d for d in doc["distributions"]}
    assert {k: d["new_version"] for k, d in dists.items()} == expected
    assert all(d["old_version"] == [] for d in dists.values())
    assert {k for k, d in dists.items() if d["requested"]} == {"requests"}
    assert dists["requests"]["wheel"] == "requests-2.32.3-py3-none-any.whl"
    assert doc["swapped"] == [] and doc["removed"] == []
    added = {Path(e["path"]): e for e in doc["added"]}
    assert added[site / "requests"]["distributions"] == ["requests"]
    assert added[site / "requests"]["kind"] == "dir"
    assert added[site / "requests"]["count"] == sum(
        1 for p in (site / "requests").rglob("*") if p.is_file())
    assert added[site / "urllib3-2.2.3.dist-info"]["distributions"] == ["urllib3"]
    assert added[venv.bin / "normalizer"]["distributions"] == ["charset-normalizer"]
    # every top-level entry installed is in the report, and nothing else
    tops = {p for p in site.iterdir() if p.name != "_install_atomic_test_tools.pth"}
    assert set(added) == tops | {venv.bin / "normalizer"}


def test_target_directory(make_venv: MakeVenv, wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    venv = make_venv()
    before = tree_digest(venv.root)
    target = tmp_path / "target"
    ia_install(venv, wheelhouse, "-q", "--target", target, "six==1.16.0", "pyflakes==3.2.0")
    assert tree_digest(venv.root) == before  # nothing went into the venv
    assert (target / "six.py").is_file()
    assert (target / "pyflakes" / "__init__.py").is_file()
    assert shebang(target / "bin" / "pyflakes") == f"#!{venv.python}"
    assert pip_list(venv, target) == {"six": "1.16.0", "pyflakes": "3.2.0"}
    for info in target.glob("*.dist-info"):
        assert record_problems(info) == []
    files = {p for p in target.rglob("*") if p.is_file() and p.name != ".lock"}
    assert files == listed_files(target)
    proc = venv.run("-c", "import six; print(six.__file__)", env={"PYTHONPATH": str(target)})
    assert Path(proc.stdout.strip()) == target / "six.py"


def test_prefix(make_venv: MakeVenv, wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    venv = make_venv()
    before = tree_digest(venv.root)
    prefix = tmp_path / "prefix"
    ia_install(venv, wheelhouse, "-q", "--prefix", prefix, "six==1.16.0", "pyflakes==3.2.0")
    assert tree_digest(venv.root) == before
    site = prefix / "lib" / PY / "site-packages"
    assert (site / "six.py").is_file()
    assert (prefix / "bin" / "pyflakes").is_file()
    assert pip_list(venv, site) == {"six": "1.16.0", "pyflakes": "3.2.0"}
    for info in site.glob("*.dist-info"):
        assert record_problems(info) == []
    files = {p for p in prefix.rglob("*") if p.is_file() and p.name != ".lock"}
    assert files == listed_files(site)


def test_root_is_destdir(make_venv: MakeVenv, wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    venv = make_venv()
    before = tree_digest(venv.root)
    root = tmp_path / "destdir"
    ia_install(venv, wheelhouse, "-q", "--root", root, "six==1.16.0", "pyflakes==3.2.0",
               "greenlet==3.1.1")
    assert tree_digest(venv.root) == before  # everything went under the root
    moved = Path(str(root) + str(venv.root))
    site = Path(str(root) + str(venv.site_packages))
    assert (site / "six.py").is_file()
    assert (moved / "include" / "site" / PY / "greenlet" / "greenlet.h").is_file()
    # scripts and bytecode name the paths without the root: they are meant to run there
    assert shebang(moved / "bin" / "pyflakes") == f"#!{venv.python}"
    tag = sys.implementation.cache_tag
    assert pyc_source(site / "__pycache__" / f"six.{tag}.pyc") == str(venv.site_packages / "six.py")
    assert pyc_source(site / "pyflakes" / "__pycache__" / f"api.{tag}.pyc") == str(
        venv.site_packages / "pyflakes" / "api.py")
    # RECORD is relative, so it is right both under the root and once the tree is copied
    for info in site.glob("*.dist-info"):
        assert record_problems(info) == []
        assert not any(str(root) in line for line in (info / "RECORD").read_text().splitlines())
    files = {p for p in root.rglob("*") if p.is_file()}
    assert files == listed_files(site)


def test_dry_run_changes_nothing_then_the_report_of_the_real_run(
    make_venv: MakeVenv, wheelhouse: Wheelhouse
) -> None:
    venv = make_venv()
    ia_install(venv, wheelhouse, "-q", "six==1.16.0")
    before = tree_digest(venv.root)
    proc = ia_install(venv, wheelhouse, "--dry-run", "--report", "-", "six==1.17.0",
                      "pyflakes==3.2.0")
    assert tree_digest(venv.root) == before
    site = venv.site_packages
    # With --report -, standard output is the JSON alone; the progress and the plan
    # go to standard error.
    planned = set(re.findall(r"^would (add|swap|remove)\s+(\S+)", proc.stderr, re.M))
    assert planned == {
        ("swap", str(site / "six.py")),
        ("swap", str(site / "__pycache__")),
        ("add", str(site / "six-1.17.0.dist-info")),
        ("remove", str(site / "six-1.16.0.dist-info")),
        ("add", str(site / "pyflakes")),
        ("add", str(site / "pyflakes-3.2.0.dist-info")),
        ("add", str(venv.bin / "pyflakes")),
    }, proc.stderr
    assert re.search(r"^dry run: 7 renames planned, nothing changed$", proc.stderr, re.M)
    doc = json.loads(proc.stdout)
    assert doc["dry_run"] is True
    assert len(doc["added"]) + len(doc["swapped"]) + len(doc["removed"]) == 7
    assert pip_list(venv) == {"six": "1.16.0"}
    assert not list(site.glob(".install-atomic*"))

    # the same, for real: the report (on stdout) names the old and new versions and the
    # distributions each rename belongs to
    proc = ia_install(venv, wheelhouse, "-q", "--report", "-", "six==1.17.0", "pyflakes==3.2.0")
    doc = json.loads(proc.stdout)
    assert doc["dry_run"] is False
    assert doc["distributions"] == [
        {"name": "six", "old_version": ["1.16.0"], "new_version": "1.17.0", "requested": True,
         "wheel": "six-1.17.0-py2.py3-none-any.whl", "direct_url": None},
        {"name": "pyflakes", "old_version": [], "new_version": "3.2.0", "requested": True,
         "wheel": "pyflakes-3.2.0-py2.py3-none-any.whl", "direct_url": None},
    ]
    verbs = {"added": "add", "swapped": "swap", "removed": "remove"}
    done = {(verb, e["path"], tuple(e["distributions"]))
            for key, verb in verbs.items() for e in doc[key]}
    assert {(a, p) for a, p, _ in done} == planned
    owners = {p: d for _, p, d in done}
    assert owners[str(site / "six-1.16.0.dist-info")] == ("six",)  # the old version's
    assert owners[str(site / "six.py")] == ("six",)
    assert owners[str(venv.bin / "pyflakes")] == ("pyflakes",)
    assert pip_list(venv) == {"six": "1.17.0", "pyflakes": "3.2.0"}


def test_no_compile_and_quiet(make_venv: MakeVenv, wheelhouse: Wheelhouse) -> None:
    venv = make_venv()
    proc = ia_install(venv, wheelhouse, "-q", "--no-compile", "six==1.16.0", "markupsafe==2.1.5",
                      "pyflakes==3.2.0")
    assert (proc.stdout, proc.stderr) == ("", "")
    site = venv.site_packages
    assert sorted(p for p in venv.root.rglob("*.pyc")) == []
    assert not (site / "__pycache__").exists()
    for info in site.glob("*.dist-info"):
        assert record_problems(info) == []
        assert not any(p.suffix == ".pyc" for p, _, _ in record_rows(info))
    assert venv_files(venv) == listed_files(site)
    assert venv.run("-B", "-c", "import six, markupsafe; print(markupsafe.escape('<'))"
                    ).stdout.strip() == "&lt;"


def test_python_option_targets_another_interpreter(
    make_venv: MakeVenv, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    other = other_interpreter()
    if other is None:
        pytest.skip("no CPython 3.9+ other than the running one is installed")
    executable, cache_tag = other
    venv = make_venv()  # runs install-atomic (and pip) for the target below
    target_root = tmp_path / "other"
    run([executable, "-m", "venv", "--without-pip", target_root])  # no pip, no toolset
    target = Venv(root=target_root, flavour="other", tools=venv.tools)
    target_python = target.bin / "python3"
    ia_install(venv, wheelhouse, "-q", "--python", target_root, "six==1.16.0",
               "pyflakes==3.2.0")
    site = target.site_packages
    assert pip_list(venv, site) == {"six": "1.16.0", "pyflakes": "3.2.0"}
    # bytecode for the target's version, listed in RECORD; the script runs the target
    assert (site / "__pycache__" / f"six.{cache_tag}.pyc").is_file()
    assert not list(site.rglob(f"*.{sys.implementation.cache_tag}.pyc"))
    for info in site.glob("*.dist-info"):
        assert record_problems(info) == []
    assert venv_files(target) == listed_files(site)
    assert shebang(target.bin / "pyflakes") == f"#!{target_python}"
    out = run([target.bin / "pyflakes", "--version"]).stdout
    version = f"{cache_tag[len('cpython-'):][0]}.{cache_tag[len('cpython-') + 1:]}"
    assert out.startswith(f"3.2.0 Python {version}."), out
    assert run([target_python, "-c", "import six, sys; print(sys.implementation.cache_tag,"
                " six.__file__)"]).stdout.split() == [cache_tag, str(site / "six.py")]

    # a binary wheel built for the running interpreter is not one for the target
    before = tree_digest(target_root)
    mine = wheelhouse.wheel("markupsafe", "2.1.5")
    proc = ia_install(venv, wheelhouse, "--python", target_root, mine, status=1)
    assert mine.name in proc.stderr, proc.stderr
    assert tree_digest(target_root) == before


def test_releases_that_work_under_pip_pass_the_default_import_check(
    make_venv: MakeVenv, wheelhouse: Wheelhouse
) -> None:
    """pycryptodome 3.21 (42 shared libraries loaded with ctypes, no ``PyInit_``) and
    greenlet 3.1 (whose test package imports psutil, a test-only dependency) install
    with the default import check, as they do with pip, and work afterwards."""
    venv = make_venv()
    proc = ia_install(venv, wheelhouse, "pycryptodome==3.21.0", "greenlet==3.1.1")
    assert "failed" not in proc.stderr, proc.stderr
    out = venv.run("-c", "from Crypto.Cipher import AES; import greenlet;"
                   " c = AES.new(bytes(16), AES.MODE_ECB); print(c.encrypt(bytes(16)).hex(),"
                   " greenlet.greenlet(lambda: 7).switch())").stdout.split()
    assert out == ["66e94bd4ef8a2c3b884cfa59ca342b2e", "7"]
