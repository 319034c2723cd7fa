"""End to end: concurrent ``setup.py install_atomic`` processes, uv, and readers.

* Several installers into one venv at once all succeed, and their commits never overlap
  (the shim of ``test_crash`` logs when each takes and lets go of the lock);
* builds and staging run in parallel: an installer paused inside its commit holds the lock
  while another builds, stages, verifies and waits for the lock;
* the lock is uv's: ``uv pip install`` waits for a committing install_atomic, and
  install_atomic waits for (or times out naming) a ``uv pip install`` that holds it;
* readers importing a package in fresh interpreters while it is upgraded over and over never
  see it broken.

Waits are asserted by ordering (events, ``/proc/locks``), never by durations.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import re
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from enginekit import Scenario, diff, digest, start_paused_commit, upgrade_scenario
from enginekit import leftovers as private_entries
from helpers import MakeVenv, Venv, clean_env, flock_holders, run
from install_atomic.errors import LockTimeout
from test_crash import (
    PY,
    SPECS,
    WAIT,
    Event,
    Shim,
    World,
    assert_consistent,
    installed_version,
    leftovers,
    lock_holder,
    reaping,
    site_digest,
    start,
    start_install,
    status,
    wait_until,
)

pytestmark = pytest.mark.slow


def assert_serialized(events: list[Event]) -> list[str]:
    """The lock's critical sections in *events* never overlap; return the holders' tags in
    order."""
    holder: Event | None = None
    order = []
    for event in events:
        if event.what == "locked":
            assert holder is None, (
                f"{event.tag} took the lock while {holder.tag} held it:\n"
                + "\n".join(f"{e.tag} {e.pid} {e.what}" for e in events if e.what != "start")
            )
            holder = event
            order.append(event.tag)
        elif event.what == "unlocking":
            assert holder is not None and holder.pid == event.pid, (holder, event)
            holder = None
    assert holder is None, f"{holder} never let go of the lock"
    return order


@pytest.fixture
def world(make_venv: MakeVenv, tmp_path: Path) -> World:
    return World(make_venv("newest"), tmp_path, Shim.create(tmp_path))


# --------------------------------------------------------------------------- many installers


def test_distinct_projects_install_concurrently(world: World) -> None:
    """Six installers (package, module, scripts + data + headers, C extension, two portions
    of one PEP 420 namespace) started at once into one venv: all succeed, all land, one
    commit at a time, nothing left behind."""
    venv = world.venv
    scenarios = ["pkg", "module", "scripts", "ext", "ns_pep420_a", "ns_pep420_b"]
    projects = {s: world.project(s, "1.0") for s in scenarios}
    procs = [start_install(venv, projects[s], logs=world.logs, env=world.shim.env(s), name=s)
             for s in scenarios]
    with reaping(*procs):
        for proc in procs:
            proc.succeeded()
    order = assert_serialized(world.shim.read())
    assert sorted(order) == sorted(scenarios)
    for scenario in scenarios:
        assert_consistent(venv, SPECS[scenario], "1.0")
    assert "no interrupted installs" in status(venv)


@pytest.mark.parametrize("flavour", ["newest", "66"])
def test_versions_of_one_project_install_concurrently(
    make_venv: MakeVenv, tmp_path: Path, flavour: str
) -> None:
    """Three versions of one project at once into an empty venv, then two upgrades at once:
    every installer succeeds, the commits are serialized, and the result is exactly the
    version whose commit came last, consistent."""
    world = World(make_venv(flavour), tmp_path, Shim.create(tmp_path))
    spec = SPECS["pkg"]
    for round_, versions in enumerate([("1.0", "2.0", "3.0"), ("2.0", "3.0")]):
        procs = [start_install(world.venv, world.project("pkg", v), logs=world.logs,
                               env=world.shim.env(f"{round_}:{v}"), name=f"pkg-{v}")
                 for v in versions]
        with reaping(*procs):
            for proc in procs:
                proc.succeeded()
        order = [tag for tag in assert_serialized(world.shim.read())
                 if tag.startswith(f"{round_}:")]
        assert sorted(order) == sorted(f"{round_}:{v}" for v in versions)
        last = order[-1].split(":")[1]
        assert_consistent(world.venv, spec, last)


def test_staging_runs_in_parallel_only_the_commit_is_serialized(world: World) -> None:
    """Installer A is paused inside its commit, holding the lock.  Meanwhile installer B
    builds, stages, byte-compiles and verifies (its staging directory and A's coexist in
    site-packages) and then waits for the lock; it takes it only after A let go."""
    venv = world.venv
    go = world.tmp / "go"
    a = start_install(venv, world.project("pkg", "2.0"), logs=world.logs, name="A",
                      env=world.shim.env("A", pause="locked", go=go))
    with reaping(a) as alive:
        wait_until(lambda: world.shim.seen("A", "paused:locked"), "A to hold the lock",
                   watch=[a])
        b = start_install(venv, world.project("pkg", "3.0"), logs=world.logs, name="B",
                          env=world.shim.env("B"))
        alive.append(b)
        wait_until(lambda: world.shim.seen("B", "lock-wait"), "B to finish staging",
                   watch=[a, b])
        stages = sorted(p for p in venv.site_packages.iterdir()
                        if p.name.startswith(".install-atomic-") and p.is_dir())
        versions = sorted((s / "demopkg" / "__init__.py").read_text(encoding="utf-8")
                          for s in stages)
        assert versions == ['VERSION = "2.0"\n', 'VERSION = "3.0"\n'], stages
        # B's bytecode was compiled in its staging directory, for its final path.
        assert any((s / "demopkg" / "__pycache__").is_dir() for s in stages), stages
        assert not world.shim.seen("B", "locked")
        assert installed_version(venv, SPECS["pkg"]) is None
        go.touch()
        a.succeeded()
        b.succeeded()
    events = world.shim.read()
    assert assert_serialized(events) == ["A", "B"]
    whats = [(e.tag, e.what) for e in events]
    assert whats.index(("B", "lock-wait")) < whats.index(("A", "resumed:locked"))
    assert_consistent(venv, SPECS["pkg"], "3.0")


def test_lock_timeout_names_the_holder(world: World) -> None:
    """A lock held past ``--lock-timeout``: the install fails, naming the holder's pid, and
    changes nothing; once the holder is gone the same install succeeds."""
    venv = world.venv
    world.install("pkg", "1.0", "--no-fsync")
    project = world.project("pkg", "2.0")
    before = site_digest(venv)
    with lock_holder(venv, world.logs) as holder:
        failed = venv.setup_py(project, "install_atomic", "--lock-timeout", "1", check=False)
        assert failed.returncode != 0, failed
        lock = re.escape(str(venv.root / ".lock"))
        assert re.search(rf"timed out after [\d.]+s waiting for the lock {lock},"
                         rf" held by process {holder.pid}\b", failed.stderr), failed.stderr
        assert site_digest(venv) == before
        assert leftovers(venv) == []
    venv.setup_py(project, "install_atomic", "--lock-timeout", "1")
    assert_consistent(venv, SPECS["pkg"], "2.0")


# --------------------------------------------------------------------------- the lock file

#: A process holding ``FileLock(argv[1])`` until a line on stdin (or 120 s: a commit that
#: ignores its timeout then gets the lock and the test fails instead of hanging).
_HOLD_LOCK = """
import select, sys
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
select.select([sys.stdin], [], [], 120)
lock.release()
"""


@pytest.mark.parametrize("in_venv", [False, True], ids=["plain-directory", "venv"])
def test_commit_holds_the_lock_of_its_destination(in_venv: bool, tmp_path: Path) -> None:
    """A commit stopped after its first rename holds ``flock`` on ``<venv>/.lock`` inside a
    virtual environment (the file uv locks), on ``<site-packages>/.lock`` outside one, and
    on no other ``.lock``; the next commit recovers the interrupted one and installs."""
    scenario = upgrade_scenario(tmp_path / "env")
    if in_venv:
        scenario = Scenario(scenario.prefix, scenario.new, scenario.old,
                            extra={"../../pyvenv.cfg": b"home = /usr/bin\n"})
    scenario.build()
    expected = scenario.expected(tmp_path / "reference")
    lock, elsewhere = scenario.site / ".lock", scenario.prefix / ".lock"
    if in_venv:
        lock, elsewhere = elsewhere, lock
    child = start_paused_commit(scenario, 1, tmp_path)
    try:
        assert lock.is_file()
        assert flock_holders(lock) == [child.pid], f"{lock} is not locked by the committer"
        assert not elsewhere.exists()
    finally:
        child.communicate("", timeout=WAIT)  # the paused child then dies (exit 137)
    assert child.returncode == 137, child.returncode
    assert flock_holders(lock) == []
    result = scenario.commit()
    assert [r.project for r in result.recovered] == [scenario.new.name]
    assert digest(scenario.prefix) == expected, diff(digest(scenario.prefix), expected)
    assert private_entries(scenario.prefix) == []
    assert not elsewhere.exists()


def test_retry_with_a_longer_timeout_after_a_lock_timeout(tmp_path: Path) -> None:
    """Another process holds the destination lock: a commit with ``lock_timeout=0`` fails
    with LockTimeout naming the lock file and the holder, changing nothing.  Retrying
    inside the ``except`` block (the error, whose traceback references filelock's
    singleton lock object, still alive) once the holder is gone gets the lock and installs."""
    scenario = upgrade_scenario(tmp_path / "env")
    before = scenario.build()
    expected = scenario.expected(tmp_path / "reference")
    lock = scenario.site / ".lock"
    with subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(lock)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        try:
            assert holder.stdout.readline() == "locked\n"
            assert flock_holders(lock) == [holder.pid]
            try:
                scenario.commit(lock_timeout=0)
            except LockTimeout as exc:
                assert exc.path == str(lock) and exc.holder == holder.pid, exc
                assert f"waiting for the lock {lock}, held by process {holder.pid}" in str(exc)
                assert digest(scenario.prefix) == before, "changed while the lock was held"
                assert private_entries(scenario.prefix) == []
                holder.stdin.write("done\n")  # the holder lets go and exits
                holder.stdin.flush()
                assert holder.wait(WAIT) == 0
                assert flock_holders(lock) == []
                result = scenario.commit(lock_timeout=30)
            else:
                pytest.fail(f"the commit did not wait for the lock {lock} held by {holder.pid}")
        finally:
            holder.kill()
    assert result.recovered == []
    assert digest(scenario.prefix) == expected, diff(digest(scenario.prefix), expected)
    assert private_entries(scenario.prefix) == []


# --------------------------------------------------------------------------- uv


@pytest.fixture(scope="session")
def uv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``uv`` binary, pip-installed once per session (skip if it cannot be)."""
    target = tmp_path_factory.mktemp("uv")
    try:
        run([sys.executable, "-m", "pip", "install", "--no-warn-script-location",
             "--target", target, "uv"], timeout=600)
    except AssertionError as exc:
        pytest.skip(f"uv could not be pip-installed, so the uv lock tests cannot run: {exc}")
    binary = target / "bin" / "uv"
    if not binary.is_file():
        pytest.skip(f"pip installed uv without a binary at {binary}")
    return binary


def build_wheel(directory: Path, name: str, version: str, module: str) -> Path:
    """A minimal pure-Python wheel holding one module ``<module>.py``."""
    stem = f"{name.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    files = {
        f"{module}.py": f"VERSION = {version!r}\n".encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": (b"Wheel-Version: 1.0\nGenerator: test_concurrency\n"
                          b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel


def uv_env(tmp: Path) -> dict[str, str]:
    return {"UV_CACHE_DIR": str(tmp / "uv-cache"), "UV_NO_CONFIG": "1",
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def lock_waiters(lock_path: Path) -> list[int]:
    """Pids blocked in ``flock`` on *lock_path*, from ``/proc/locks`` (Linux)."""
    st = os.stat(lock_path)
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    with open("/proc/locks", encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if "->" in parts:
                rest = parts[parts.index("->") + 1:]
                if len(rest) >= 5 and rest[0] == "FLOCK" and rest[4] == wanted:
                    pids.append(int(rest[3]))
    return pids


_UV_WAITING = re.compile(r"[Ww]aiting to acquire .*lock")


def test_uv_waits_for_a_committing_install_atomic(world: World, uv: Path) -> None:
    """install_atomic holds the venv lock (paused inside its commit): ``uv pip install`` into
    the same venv blocks on ``<venv>/.lock`` until the commit is over, then installs."""
    venv = world.venv
    wheel = build_wheel(world.tmp / "wheels", "uv-demo", "1.0", "uvdemo")
    go = world.tmp / "go"
    a = start_install(venv, world.project("pkg", "2.0"), logs=world.logs, name="A",
                      env=world.shim.env("A", pause="locked", go=go))
    with reaping(a) as alive:
        wait_until(lambda: world.shim.seen("A", "paused:locked"), "A to hold the lock",
                   watch=[a])
        assert flock_holders(venv.root / ".lock") == [a.pid]
        u = start([uv, "pip", "install", "-v", "--no-deps", "--no-index", "--python",
                   venv.python, wheel], cwd=world.tmp, logs=world.logs, name="uv",
                  env=uv_env(world.tmp))
        alive.append(u)
        wait_until(lambda: u.pid in lock_waiters(venv.root / ".lock")
                   or bool(_UV_WAITING.search(u.stderr())), "uv to wait for the lock",
                   watch=[u])
        assert u.poll() is None
        assert not (venv.site_packages / "uvdemo.py").exists()
        go.touch()
        a.succeeded()
        u.succeeded()
    assert (venv.site_packages / "uvdemo.py").read_text() == "VERSION = '1.0'\n"
    assert_consistent(venv, SPECS["pkg"], "2.0")


@dataclass
class StallingIndex:
    """A PEP 503 index on localhost serving one wheel; the project page is answered only when
    :attr:`release` is set, so a ``uv pip install`` resolving from it holds the venv lock."""

    wheel: Path
    requested: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    @contextmanager
    def serving(self) -> Iterator[StallingIndex]:
        index = self
        data = self.wheel.read_bytes()
        sha = hashlib.sha256(data).hexdigest()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    if self.path.startswith("/files/"):
                        self._send(data, "application/octet-stream")
                    elif self.path.startswith("/simple/"):
                        index.requested.set()
                        index.release.wait(WAIT)
                        link = f'<a href="/files/{index.wheel.name}#sha256={sha}">' \
                               f"{index.wheel.name}</a>"
                        self._send(f"<html><body>{link}</body></html>".encode(), "text/html")
                    else:
                        self.send_error(404)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, body: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
        try:
            yield self
        finally:
            self.release.set()
            server.shutdown()
            server.server_close()
            thread.join(30)


def test_install_atomic_waits_for_uv(world: World, uv: Path) -> None:
    """``uv pip install`` holds the venv lock while it resolves from a (stalled) index:
    install_atomic with ``--lock-timeout 1`` fails naming uv's pid and changes nothing;
    without a timeout it waits, takes the lock only after uv is done, and installs."""
    venv = world.venv
    world.install("pkg", "1.0", "--no-fsync")
    index = StallingIndex(build_wheel(world.tmp / "wheels", "uv-demo", "1.0", "uvdemo"))
    with index.serving():
        u = start([uv, "pip", "install", "--no-deps", "--index-url", index.url, "--python",
                   venv.python, "uv-demo"], cwd=world.tmp, logs=world.logs, name="uv",
                  env=uv_env(world.tmp))
        with reaping(u) as alive:
            wait_until(index.requested.is_set, "uv to ask the index", watch=[u])
            assert flock_holders(venv.root / ".lock") == [u.pid]
            before = site_digest(venv)
            failed = venv.setup_py(world.project("pkg", "2.0"), "install_atomic",
                                   "--lock-timeout", "1", check=False)
            assert failed.returncode != 0
            assert f"held by process {u.pid}" in failed.stderr, failed.stderr
            assert site_digest(venv) == before
            a = start_install(venv, world.project("pkg", "2.0"), "--lock-timeout", "-1",
                              logs=world.logs, name="A", env=world.shim.env("A"))
            alive.append(a)
            wait_until(lambda: world.shim.seen("A", "lock-wait"), "A to reach the lock",
                       watch=[a, u])
            assert u.poll() is None and not world.shim.seen("A", "locked")
            index.release.set()
            u.succeeded()
            a.succeeded()
    assert (venv.site_packages / "uvdemo.py").read_text() == "VERSION = '1.0'\n"
    assert_consistent(venv, SPECS["pkg"], "2.0")


# --------------------------------------------------------------------------- readers


MODULES = 50

_INIT = '''"""rdpkg {version}: {count} submodules; check() imports them all."""

VERSION = "{version}"
NAMES = {names!r}


class MixedVersionsError(AssertionError):
    pass


def check():
    import importlib

    versions = {{importlib.import_module("rdpkg." + n).VERSION for n in NAMES}}
    if versions != {{VERSION}}:
        raise MixedVersionsError(f"{{VERSION}} with {{sorted(versions)}}")
    return VERSION
'''


def reader_project(root: Path, version: str) -> Path:
    names = [f"mod_{i:02d}" for i in range(MODULES)]
    project = root / f"rdpkg-{version}"
    (project / "rdpkg").mkdir(parents=True)
    (project / "setup.py").write_text(
        f"from setuptools import setup\nsetup(name='rdpkg', version='{version}',"
        " packages=['rdpkg'])\n", encoding="utf-8")
    (project / "rdpkg" / "__init__.py").write_text(
        _INIT.format(version=version, count=MODULES, names=names), encoding="utf-8")
    for i, name in enumerate(names):
        pad = "# second release\n" if version == "2.0" else ""
        body = "".join(f"\ndef f_{k}(x):\n    return x * {k} + {i}\n" for k in range(8))
        (project / "rdpkg" / f"{name}.py").write_text(
            f'VERSION = "{version}"\n{pad}TABLE = tuple(range({i}, {i} + 32))\n{body}',
            encoding="utf-8")
    return project


_EXC = re.compile(r"^(\w[\w.]*)(?::|$)")


@dataclass
class Reads:
    outcomes: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def reader(venv: Venv, cwd: Path, stop: threading.Event, reads: Reads) -> None:
    env = clean_env({"PYTHONDONTWRITEBYTECODE": None})  # readers write bytecode, as in life
    while not stop.is_set():
        proc = subprocess.run([str(venv.python), "-c", "import rdpkg; print(rdpkg.check())"],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=WAIT,
                              check=False)
        with reads.lock:
            if proc.returncode == 0:
                reads.outcomes["ok"] += 1
                reads.versions[proc.stdout.strip()] += 1
                continue
            lines = proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"]
            match = _EXC.match(lines[-1])
            kind = match.group(1) if match else f"exit {proc.returncode}"
            outcome = "mixed" if kind.endswith("MixedVersionsError") else f"broken:{kind}"
            reads.outcomes[outcome] += 1
            reads.samples.setdefault(outcome, proc.stderr[-1500:])


def test_readers_never_see_a_broken_package(world: World) -> None:
    """Two readers import a 50-module package in fresh interpreters, in a loop, while
    install_atomic alternates its two versions ten times: no import ever fails."""
    venv = world.venv
    projects = {v: reader_project(world.tmp / "rd", v) for v in ("1.0", "2.0")}
    venv.setup_py(projects["1.0"], "install_atomic")
    empty = world.tmp / "cwd"
    empty.mkdir()
    reads, stop = Reads(), threading.Event()
    threads = [threading.Thread(target=reader, args=(venv, empty, stop, reads), daemon=True)
               for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for i in range(10):
            version = "2.0" if i % 2 == 0 else "1.0"
            with reads.lock:
                seen = reads.versions[version]
            venv.setup_py(projects[version], "install_atomic")
            # Let the readers see this version before the next upgrade.
            deadline = time.monotonic() + WAIT
            while reads.versions[version] == seen and time.monotonic() < deadline:
                time.sleep(0.01)
            assert reads.versions[version] > seen, f"no reader saw {version}: {reads}"
    finally:
        stop.set()
        for thread in threads:
            thread.join(WAIT)
    print(f"reads: {dict(reads.outcomes)}, versions: {dict(reads.versions)}")
    broken = {k: n for k, n in reads.outcomes.items() if k.startswith("broken")}
    assert broken == {}, (broken, reads.samples)
    assert reads.outcomes["ok"] >= 10
    assert_consistent_rdpkg(venv)


def assert_consistent_rdpkg(venv: Venv) -> None:
    assert leftovers(venv) == []
    eggs = sorted(p.name for p in venv.site_packages.glob("rdpkg-*"))
    assert eggs == [f"rdpkg-1.0-py{PY[6:]}.egg-info"], eggs
    assert venv.run("-c", "import rdpkg; print(rdpkg.check())").stdout.strip() == "1.0"
