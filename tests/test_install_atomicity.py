"""``install-atomic install`` is all or nothing over the whole set of distributions: a
tampered wheel, a failing import check or verify command, a wheel for another interpreter
leave the environment byte for byte as it was; an upgrade of several distributions at
once leaves exactly the new set, file for file what pip installs."""

from __future__ import annotations

import hashlib
import http.server
import re
import shlex
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import (
    FOREIGN_PYTHON,
    MakeVenv,
    Venv,
    Wheelhouse,
    ia_install,
    ia_run,
    leftovers,
    listed_files,
    make_wheel,
    pip_list,
    record_rows,
    session_wheelhouse,
    tamper_wheel,
    tree_digest,
    venv_files,
)

pytestmark = pytest.mark.slow

OLD = {"six": "1.16.0", "markupsafe": "2.1.5", "pyflakes": "3.1.0", "idna": "3.7"}
NEW = {"six": "1.17.0", "markupsafe": "3.0.2", "pyflakes": "3.2.0", "idna": "3.10"}


def pins(versions: dict[str, str]) -> list[str]:
    return [f"{name}=={version}" for name, version in versions.items()]


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    return session_wheelhouse(tmp_path_factory.mktemp)


@pytest.fixture
def old_venv(make_venv: MakeVenv, wheelhouse: Wheelhouse) -> Venv:
    """A venv holding the OLD versions (installed by install-atomic)."""
    venv = make_venv()
    ia_install(venv, wheelhouse, "-q", *pins(OLD))
    assert pip_list(venv) == OLD
    return venv


def assert_unchanged(venv: Venv, before: dict[str, str]) -> None:
    assert tree_digest(venv.root) == before
    assert pip_list(venv) == OLD
    assert leftovers(venv.root) == []


def test_tampered_wheel_in_a_set_of_five(
    old_venv: Venv, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    venv = old_venv
    before = tree_digest(venv.root)
    tampered = tamper_wheel(wheelhouse.wheel("idna", "3.10"), tmp_path / "bad", "idna/core.py")
    others = [wheelhouse.wheel(n, v) for n, v in NEW.items() if n != "idna"]
    proc = ia_install(venv, wheelhouse, *others, tampered, "jmespath==1.0.1", status=1)
    error = proc.stderr
    assert f"install_atomic: error: {tampered} is corrupt or was tampered with" in error, error
    assert "idna/core.py" in error
    assert "Nothing was changed" in error
    assert_unchanged(venv, before)

    # the genuine wheel of the same set goes in, all five at once
    ia_install(venv, wheelhouse, "-q", *others, wheelhouse.wheel("idna", "3.10"),
               "jmespath==1.0.1")
    assert pip_list(venv) == {**NEW, "jmespath": "1.0.1"}


def test_failing_import_check_installs_none_of_the_set(
    old_venv: Venv, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    venv = old_venv
    before = tree_digest(venv.root)
    boom = make_wheel(tmp_path, "boom-on-import", "1.0", {
        "boom_on_import/__init__.py": "raise RuntimeError('boom: refuses to be imported')\n"})
    proc = ia_install(venv, wheelhouse, *pins(NEW), boom, "jmespath==1.0.1", status=1)
    assert "importing 'boom_on_import' from the staged tree failed" in proc.stderr, proc.stderr
    assert "RuntimeError: boom: refuses to be imported" in proc.stderr
    assert "nothing was installed" in proc.stderr
    assert_unchanged(venv, before)

    # --verify-command runs against the staged tree (it sees the new six there); its
    # failure, too, changes nothing
    check = "import six, sys; sys.exit(0 if six.__version__ == {!r} else 7)"
    fails = f"{shlex.quote(str(venv.python))} -c {shlex.quote(check.format('1.16.0'))}"
    proc = ia_install(venv, wheelhouse, "--verify-command", fails, *pins(NEW), status=1)
    assert "--verify-command" in proc.stderr and "7" in proc.stderr, proc.stderr
    assert_unchanged(venv, before)

    # without the import check (the verify command still runs, and passes) the same set
    # goes in: the import check was what refused it
    passes = f"{shlex.quote(str(venv.python))} -c {shlex.quote(check.format('1.17.0'))}"
    ia_install(venv, wheelhouse, "-q", "--no-verify", "--verify-command", passes, *pins(NEW),
               boom, "jmespath==1.0.1")
    assert pip_list(venv) == {**NEW, "boom-on-import": "1.0", "jmespath": "1.0.1"}


def test_wheel_for_another_interpreter_is_refused(
    old_venv: Venv, wheelhouse: Wheelhouse
) -> None:
    venv = old_venv
    before = tree_digest(venv.root)
    [foreign] = wheelhouse.foreign.glob("*.whl")
    tag = "cp" + FOREIGN_PYTHON.replace(".", "")
    assert f"-{tag}-{tag}-" in foreign.name
    proc = ia_install(venv, wheelhouse, "six==1.17.0", foreign, status=1)
    error = proc.stderr
    assert error.startswith("install_atomic: error: "), error
    assert foreign.name in error  # the file name carries its tags: cp39-cp39-manylinux...
    assert "not a supported wheel" in error or "none of its tags" in error, error
    assert_unchanged(venv, before)


def relative_files(venv: Venv) -> dict[str, Path]:
    return {str(p.relative_to(venv.root)): p for p in venv_files(venv)}


def dist_infos(files: dict[str, Path]) -> set[str]:
    return {part for rel in files for part in rel.split("/") if part.endswith(".dist-info")}


def test_upgrade_of_several_leaves_exactly_the_new_set(
    make_venv: MakeVenv, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    old = ["requests==2.31.0", "urllib3==1.26.20", "idna==3.7", "charset-normalizer==3.3.2",
           "certifi==2024.7.4"]
    new = ["requests==2.32.3", "urllib3==2.2.3", "idna==3.10", "charset-normalizer==3.4.0",
           "certifi==2024.8.30"]
    upgraded = make_venv(name="upgraded")
    upgraded.pip("install", *wheelhouse.pip_args(), *old)
    old_files = {path for info in upgraded.site_packages.glob("*.dist-info")
                 for path, _, _ in record_rows(info)}
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("".join(f"{pin}\n" for pin in new))
    ia_install(upgraded, wheelhouse, "-q", "-r", requirements)
    fresh = make_venv(name="fresh")
    fresh.pip("install", *wheelhouse.pip_args(), *new)

    expected = {pin.split("==")[0]: pin.split("==")[1] for pin in new}
    assert pip_list(upgraded) == pip_list(fresh) == expected
    # exactly what the new RECORDs list, so no file of the old versions (urllib3 1.26's
    # contrib/appengine.py, packages/six.py, their bytecode...) is left
    assert venv_files(upgraded) == listed_files(upgraded.site_packages)
    new_files = listed_files(upgraded.site_packages)
    gone = old_files - new_files
    assert upgraded.site_packages / "urllib3" / "packages" / "six.py" in gone
    assert not [p for p in gone if p.exists()]

    # file for file what pip installs fresh: same modules with the same bytes, same
    # bytecode files, same scripts, same metadata directories
    mine, pips = relative_files(upgraded), relative_files(fresh)

    def code(files: dict[str, Path]) -> dict[str, bytes]:
        return {rel: p.read_bytes() for rel, p in files.items()
                if ".dist-info/" not in rel and not rel.endswith(".pyc")
                and not rel.startswith("bin/")}

    assert code(mine) == code(pips)
    assert {r for r in mine if r.endswith(".pyc")} == {r for r in pips if r.endswith(".pyc")}
    assert {r for r in mine if r.startswith("bin/")} == {r for r in pips if r.startswith("bin/")}
    assert dist_infos(mine) == dist_infos(pips) == {
        f"{name.replace('-', '_')}-{version}.dist-info" for name, version in expected.items()}
    assert upgraded.run("-c", "import requests, urllib3; print(requests.__version__,"
                        " urllib3.__version__)").stdout.split() == ["2.32.3", "2.2.3"]


def crash_after_rename(venv: Venv, wheelhouse: Wheelhouse, n: int, *specs: str) -> None:
    """Run ``install-atomic install SPECS`` in *venv*, killed (``os._exit``) right after the
    *n*-th rename of its commit."""
    code = (
        "import os, sys\n"
        "from install_atomic.engine import steps\n"
        "from install_atomic.frontends import cli\n"
        "real, done = steps.apply, []\n"
        "def apply(step):\n"
        "    real(step)\n"
        "    done.append(step)\n"
        f"    if len(done) == {n}:\n"
        "        os._exit(9)\n"
        "steps.apply = apply\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    proc = venv.run("-c", code, "install", "-q", *wheelhouse.pip_args(), *specs, check=False)
    assert proc.returncode == 9, proc.stderr


def test_killed_commit_is_recovered_as_a_whole(old_venv: Venv, wheelhouse: Wheelhouse) -> None:
    venv = old_venv
    before = tree_digest(venv.root)
    proc = ia_install(venv, wheelhouse, "--dry-run", *pins(NEW))
    planned = re.search(r"^dry run: (\d+) renames planned", proc.stdout, re.M)
    assert planned is not None, proc.stdout
    renames = int(planned.group(1))
    assert renames >= 8  # four distributions: code, metadata and a script each at least

    # killed after the second rename: half of the set is in place, recover undoes it all
    crash_after_rename(venv, wheelhouse, 2, *pins(NEW))
    status = ia_run(venv, "status", venv.site_packages).stdout
    assert "interrupted" in status, status
    assert "rolled back" in ia_run(venv, "recover", venv.site_packages, venv.bin).stdout
    assert_unchanged(venv, before)

    # killed after the last rename: recover finishes it, for every distribution
    crash_after_rename(venv, wheelhouse, renames, *pins(NEW))
    assert "rolled forward" in ia_run(venv, "recover", venv.site_packages, venv.bin).stdout
    assert pip_list(venv) == NEW
    assert venv_files(venv) == listed_files(venv.site_packages)
    assert leftovers(venv.root) == []


class SwappingIndex(http.server.ThreadingHTTPServer):
    """A package index (PEP 503) for one wheel file name whose file is *genuine* on the
    first download and *evil* (another valid wheel of the same name) on every later one."""

    def __init__(self, genuine: Path, evil: Path) -> None:
        self.genuine, self.evil = genuine.read_bytes(), evil.read_bytes()
        self.filename = genuine.name
        self.project = genuine.name.split("-")[0]
        self.downloads = 0
        super().__init__(("127.0.0.1", 0), _IndexHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/simple/"


class _IndexHandler(http.server.BaseHTTPRequestHandler):
    server: SwappingIndex

    def do_GET(self) -> None:
        index = self.server
        if self.path.rstrip("/") == f"/simple/{index.project}":
            body = f'<a href="/files/{index.filename}">{index.filename}</a>'.encode()
            content_type = "text/html"
        elif self.path == f"/files/{index.filename}":
            index.downloads += 1
            body = index.genuine if index.downloads == 1 else index.evil
            content_type = "application/octet-stream"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def swapping_index(wheelhouse: Wheelhouse, tmp_path: Path) -> Iterator[SwappingIndex]:
    genuine = wheelhouse.wheel("six", "1.16.0")
    evil = make_wheel(tmp_path / "evil", "six", "1.16.0", {
        "six.py": "EVIL = True\n__version__ = '1.16.0'\n"}, tag="py2.py3-none-any")
    assert evil.name == genuine.name
    server = SwappingIndex(genuine, evil)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_hash_checked_requirements_install_the_checked_wheel(
    make_venv: MakeVenv, wheelhouse: Wheelhouse, swapping_index: SwappingIndex,
    tmp_path: Path
) -> None:
    venv = make_venv()
    digest = hashlib.sha256(wheelhouse.wheel("six", "1.16.0").read_bytes()).hexdigest()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"six==1.16.0 --hash=sha256:{digest}\n")
    # only this index: no pip configuration file (its find-links, extra indexes)
    env = {"PIP_CONFIG_FILE": "/dev/null", "PIP_FIND_LINKS": None, "PIP_INDEX_URL": None,
           "PIP_EXTRA_INDEX_URL": None, "PIP_NO_CACHE_DIR": "1"}
    proc = ia_run(venv, "install", "-q", "--index-url", swapping_index.url, "-r", requirements,
                  status=None, env=env)
    assert swapping_index.downloads >= 1, proc.stderr
    six_py = venv.site_packages / "six.py"
    # refused, or the genuine wheel: never one whose hash the requirements file refuses
    assert not (six_py.exists() and "EVIL" in six_py.read_text()), (
        f"installed a wheel that fails its --hash ({swapping_index.downloads} downloads)")
