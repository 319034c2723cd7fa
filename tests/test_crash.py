"""End to end: real ``setup.py install_atomic`` processes killed with SIGKILL, then recovered.

Every installer here is a real process in a real venv (``make_venv``).  Where a kill must land
at an exact instant, the installer runs with a ``sitecustomize`` shim on ``PYTHONPATH``
(:data:`SHIM_SOURCE`): it wraps ``install_atomic.engine.locking.hold``,
``install_atomic.engine.steps.apply`` and the journal's write and removal, logs each point it
passes to an events file, and ``SIGKILL``s its own process, or pauses until a file appears,
at a chosen point.  The shim changes no behaviour: without a kill or pause point it only
logs.  Points, in commit order:

* ``lock-wait``: about to take the destination lock (build, staging and verify are done);
* ``locked``: the lock is held (``unlocking`` / ``unlocked`` when it is let go);
* ``journal-tmp``: the journal's temporary file is written, not yet renamed into place;
* ``apply:K``: K renames of the commit done (``apply:0`` before the first, ``apply:N`` after
  the last);
* ``journal-remove``: every rename done, backups and staging directories deleted, the journal
  not yet.

After each kill: ``python -m install_atomic status SITE`` must report the interrupted
transaction, and ``recover SITE`` (or simply the next install) must leave exactly one
consistent version (:func:`assert_consistent`) and nothing named ``.install-atomic*``.

``tests/test_concurrency.py`` imports the shim and the checks from here.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import MakeVenv, StrPath, Venv, clean_env, make_project, tree_digest

pytestmark = pytest.mark.slow

#: Generous upper bound for any wait on a real process (builds run through it).
WAIT = 120.0

# --------------------------------------------------------------------------- the shim

SHIM_SOURCE = r'''
"""sitecustomize installed by tests/test_crash.py: observe, kill or pause install_atomic."""
import os

_EVENTS = os.environ.pop("IA_SHIM_EVENTS", "")
_TAG = os.environ.pop("IA_SHIM_TAG", "")
_KILL = os.environ.pop("IA_SHIM_KILL", "")
_PAUSE = os.environ.pop("IA_SHIM_PAUSE", "")
_GO = os.environ.pop("IA_SHIM_GO", "")

if _EVENTS or _KILL or _PAUSE:
    import signal
    import time
    from contextlib import contextmanager, suppress

    from install_atomic.engine import journal as _journal
    from install_atomic.engine import locking as _locking
    from install_atomic.engine import primitives as _primitives
    from install_atomic.engine import steps as _steps

    def _event(what):
        if not _EVENTS:
            return
        line = f"{time.time():.6f} {_TAG or '-'} {os.getpid()} {what}\n".encode()
        fd = os.open(_EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def _point(name):
        _event(name)
        if name == _KILL:
            _event("killed:" + name)
            os.kill(os.getpid(), signal.SIGKILL)
        if name == _PAUSE:
            _event("paused:" + name)
            while not os.path.exists(_GO):
                time.sleep(0.01)
            _event("resumed:" + name)

    _orig_hold = _locking.hold

    @contextmanager
    def _hold(path, timeout):
        _point("lock-wait")
        with _orig_hold(path, timeout):
            _point("locked")
            try:
                yield
            finally:
                _event("unlocking")
        _event("unlocked")

    _locking.hold = _hold

    _orig_apply = _steps.apply
    _applied = [0]

    def _apply(step):
        if _applied[0] == 0:
            _point("apply:0")
        _orig_apply(step)
        _applied[0] += 1
        _point(f"apply:{_applied[0]}")

    _steps.apply = _apply

    _orig_remove = _journal.Journal.remove

    def _remove(self):
        _point("journal-remove")
        return _orig_remove(self)

    _journal.Journal.remove = _remove

    class _Os:
        """The ``os`` of the module writing the journal (``primitives.write_durably``), with
        a point before the journal's temporary file is renamed into place."""

        def __getattr__(self, name):
            return getattr(os, name)

        def replace(self, src, dst):
            if str(src).endswith(".journal.tmp"):
                _point("journal-tmp")
            return os.replace(src, dst)

    _primitives.os = _Os()
    _event("start")
'''


@dataclass(frozen=True)
class Event:
    time: float
    tag: str
    pid: int
    what: str


@dataclass
class Shim:
    """A directory holding the ``sitecustomize`` shim, and the events file its processes share."""

    directory: Path
    events: Path

    @classmethod
    def create(cls, base: Path) -> Shim:
        directory = base / "shim"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "sitecustomize.py").write_text(SHIM_SOURCE, encoding="utf-8")
        return cls(directory, base / "events.log")

    def env(
        self,
        tag: str,
        *,
        kill: str | None = None,
        pause: str | None = None,
        go: Path | None = None,
    ) -> dict[str, str]:
        env = {"PYTHONPATH": str(self.directory), "IA_SHIM_EVENTS": str(self.events),
               "IA_SHIM_TAG": tag}
        if kill:
            env["IA_SHIM_KILL"] = kill
        if pause:
            assert go is not None
            env["IA_SHIM_PAUSE"] = pause
            env["IA_SHIM_GO"] = str(go)
        return env

    def read(self) -> list[Event]:
        if not self.events.exists():
            return []
        out = []
        for line in self.events.read_text(encoding="utf-8").splitlines():
            stamp, tag, pid, what = line.split(" ", 3)
            out.append(Event(float(stamp), tag, int(pid), what))
        return out

    def seen(self, tag: str, what: str) -> bool:
        return any(e.tag == tag and e.what == what for e in self.read())


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    """A background process with its output in files (no pipe can fill up and block it)."""

    popen: subprocess.Popen[bytes]
    name: str
    out: Path
    err: Path
    cmd: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def describe(self) -> str:
        return (f"{self.name} (pid {self.pid}, exit {self.popen.returncode})\n"
                f"  command: {subprocess.list2cmdline(self.cmd)}\n"
                f"---- stdout ----\n{self.stdout()[-4000:]}\n"
                f"---- stderr ----\n{self.stderr()[-4000:]}")

    def wait(self, timeout: float = WAIT) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"timed out after {timeout}s: {self.describe()}") from None

    def kill(self) -> None:
        """SIGKILL the process group (the installer and any child it runs)."""
        if self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(30)

    def succeeded(self, timeout: float = WAIT) -> None:
        assert self.wait(timeout) == 0, self.describe()


def start(
    cmd: Sequence[StrPath],
    *,
    cwd: StrPath,
    logs: Path,
    name: str,
    env: Mapping[str, str | None] | None = None,
    stdin: int | None = subprocess.DEVNULL,
) -> Proc:
    logs.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"\W+", "-", name)
    n = len(list(logs.glob(f"{stem}-*.out")))
    out, err = logs / f"{stem}-{n}.out", logs / f"{stem}-{n}.err"
    args = [os.fspath(c) for c in cmd]
    with out.open("wb") as fo, err.open("wb") as fe:
        popen = subprocess.Popen(args, cwd=cwd, env=clean_env(env), stdin=stdin, stdout=fo,
                                 stderr=fe, start_new_session=True)
    return Proc(popen, name, out, err, args)


@contextmanager
def reaping(*procs: Proc) -> Iterator[list[Proc]]:
    """Kill whatever of *procs* (and of what is appended to the yielded list) still runs."""
    alive = list(procs)
    try:
        yield alive
    finally:
        for proc in alive:
            proc.kill()


def start_install(
    venv: Venv,
    project: Path,
    *args: str,
    logs: Path,
    env: Mapping[str, str | None] | None = None,
    name: str | None = None,
) -> Proc:
    return start([venv.python, "setup.py", "install_atomic", *args], cwd=project, logs=logs,
                 name=name or f"install-{project.name}", env=env)


def wait_until(
    condition: Callable[[], bool],
    what: str,
    *,
    timeout: float = WAIT,
    watch: Sequence[Proc] = (),
) -> None:
    """Poll *condition*; fail with *what* after *timeout*, or as soon as a watched process
    exits before the condition holds."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        for proc in watch:
            if proc.poll() is not None:
                if condition():
                    return
                raise AssertionError(f"{proc.name} exited while waiting for {what}:\n"
                                     f"{proc.describe()}")
        if time.monotonic() > deadline:
            details = "\n".join(p.describe() for p in watch)
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{details}")
        time.sleep(0.02)


@contextmanager
def lock_holder(venv: Venv, logs: Path) -> Iterator[Proc]:
    """A separate process holding ``filelock.FileLock(<venv>/.lock)`` until the block ends."""
    code = ("import sys; from filelock import FileLock; lock = FileLock(sys.argv[1]);"
            " lock.acquire(); print('held', flush=True); sys.stdin.read(); lock.release()")
    proc = start([venv.python, "-c", code, venv.root / ".lock"], cwd=venv.root, logs=logs,
                 name="lock-holder", stdin=subprocess.PIPE)
    try:
        wait_until(lambda: "held" in proc.stdout(), "the lock holder to take the lock",
                   watch=[proc])
        yield proc
    finally:
        assert proc.popen.stdin is not None
        proc.popen.stdin.close()
        proc.wait(30)


# --------------------------------------------------------------------------- scenarios & checks


@dataclass(frozen=True)
class Spec:
    """What a fixture scenario installs, to check one consistent version of it."""

    scenario: str
    dist: str
    egg: str
    top: tuple[str, ...]
    #: version -> every importable (sub)module of that version
    modules: Mapping[str, frozenset[str]]
    #: directories (relative to the venv root; ``{site}`` is site-packages) whose every file
    #: must be listed in the egg-info's installed-files.txt
    owned: tuple[str, ...]
    scripts: tuple[str, ...] = ()
    #: version -> files (relative to the venv root) only that version ships
    only: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"

SPECS: dict[str, Spec] = {
    "pkg": Spec(
        "pkg", "demo-pkg", "demo_pkg", ("demopkg",),
        {
            "1.0": frozenset({"demopkg", "demopkg.only_v1", "demopkg.sub"}),
            "2.0": frozenset({"demopkg", "demopkg.only_v2", "demopkg.sub", "demopkg.sub.extra"}),
            "3.0": frozenset({"demopkg", "demopkg.only_v2", "demopkg.sub", "demopkg.sub.extra"}),
        },
        ("{site}/demopkg",),
    ),
    "scripts": Spec(
        "scripts", "demo-scripts", "demo_scripts", ("demoscripts",),
        {v: frozenset({"demoscripts", "demoscripts.cli"}) for v in ("1.0", "2.0")},
        ("{site}/demoscripts", "share/demo-scripts", f"include/{PY}/demo-scripts"),
        scripts=("demo-cli", "demo-legacy-script"),
        only={"1.0": ("share/demo-scripts/v1-only.txt",),
              "2.0": ("share/demo-scripts/v2-only.txt",)},
    ),
    "module": Spec("module", "demo-module", "demo_module", ("demomod",),
                   {v: frozenset({"demomod"}) for v in ("1.0", "2.0")}, ()),
    "ext": Spec("ext", "demo-ext", "demo_ext", ("demoext",),
                {v: frozenset({"demoext", "demoext._speed"}) for v in ("1.0", "2.0")},
                ("{site}/demoext",)),
    "ns_pep420_a": Spec("ns_pep420_a", "demo-ns-a", "demo_ns_a", ("demons.alpha",),
                        {"1.0": frozenset({"demons.alpha", "demons.alpha.core",
                                           "demons.alpha.dropped"}),
                         "2.0": frozenset({"demons.alpha", "demons.alpha.core"})},
                        ("{site}/demons/alpha",)),
    "ns_pep420_b": Spec("ns_pep420_b", "demo-ns-b", "demo_ns_b", ("demons.beta",),
                        {"1.0": frozenset({"demons.beta", "demons.beta.core",
                                           "demons.beta.dropped"}),
                         "2.0": frozenset({"demons.beta", "demons.beta.core"})},
                        ("{site}/demons/beta",)),
}

_PROBE = r"""
import importlib, importlib.metadata as md, json, pkgutil, sys
dist, tops = sys.argv[1], sys.argv[2:]
try:
    version = md.version(dist)
except md.PackageNotFoundError:
    version = None
modules = {}
for top in tops:
    try:
        mod = importlib.import_module(top)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (top == exc.name or top.startswith(exc.name + ".")):
            raise
        continue
    modules[top] = getattr(mod, "VERSION", None)
    if top == "demoext":
        modules[top + "._speed"] = importlib.import_module(top + "._speed").version()
    for info in pkgutil.walk_packages(getattr(mod, "__path__", []), top + "."):
        if info.name not in modules:
            modules[info.name] = getattr(importlib.import_module(info.name), "VERSION", None)
print(json.dumps({"version": version, "modules": modules}))
"""


def leftovers(venv: Venv) -> list[str]:
    """Everything named ``.install-atomic*`` anywhere in the venv (site-packages, bin, ...)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(venv.root):
        for name in dirnames + filenames:
            if name.startswith(".install-atomic"):
                found.append(os.path.relpath(os.path.join(dirpath, name), venv.root))
        dirnames[:] = [d for d in dirnames if not d.startswith(".install-atomic")]
    return sorted(found)


def ownerless_stages(venv: Venv) -> list[Path]:
    """Staging directories (in the venv) without their ``.install-atomic-owner`` file."""
    dirs = [venv.root / p for p in leftovers(venv)]
    return [d for d in dirs if d.is_dir() and not (d / ".install-atomic-owner").exists()]


def installed_version(venv: Venv, spec: Spec) -> str | None:
    eggs = sorted(p.name for p in venv.site_packages.glob(f"{spec.egg}-*.egg-info"))
    assert len(eggs) <= 1, f"several {spec.dist} egg-infos: {eggs}"
    return eggs[0].split("-")[1] if eggs else None


def assert_consistent(venv: Venv, spec: Spec, version: str | None) -> None:
    """Exactly *version* of *spec* is installed (None: nothing of it), all parts agreeing."""
    site = venv.site_packages
    assert leftovers(venv) == [], f"leftovers in {venv.root}"
    eggs = sorted(p.name for p in site.glob(f"{spec.egg}-*"))
    assert eggs == ([f"{spec.egg}-{version}-py{PY[6:]}.egg-info"] if version else []), eggs

    probe = venv.run("-c", _PROBE, spec.dist, *spec.top)
    seen = json.loads(probe.stdout)
    assert seen["version"] == version, seen
    modules: dict[str, str | None] = seen["modules"]
    if version is None:
        assert modules == {}, f"{spec.dist} is not installed, yet these import: {modules}"
    else:
        assert set(modules) == spec.modules[version], modules
        assert set(modules.values()) == {version}, f"mixed versions: {modules}"

    listed: set[str] = set()
    if version is not None:
        egg = site / eggs[0]
        for line in (egg / "installed-files.txt").read_text(encoding="utf-8").splitlines():
            path = os.path.normpath(os.path.join(egg, line))
            assert os.path.lexists(path), f"installed-files.txt lists missing {path}"
            listed.add(path)
    for owned in spec.owned:
        top = venv.root / owned.format(site=os.path.relpath(site, venv.root))
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.normpath(os.path.join(dirpath, name))
                assert path in listed, f"{path} is on disk but not in {spec.dist} {version}"
    for script in spec.scripts:
        exe = venv.bin / script
        if version is None:
            assert not os.path.lexists(exe), f"{exe} left after {spec.dist} was rolled back"
            continue
        assert os.path.normpath(exe) in listed, exe
        proc = subprocess.run([str(exe)], env=clean_env(), capture_output=True, text=True,
                              timeout=60, check=False, cwd=venv.root)
        assert proc.returncode == 0 and proc.stdout.strip() == f"{script} {version}", proc
    for other, only in spec.only.items():
        for rel in only:
            assert (venv.root / rel).exists() == (other == version), (rel, version)


def site_digest(venv: Venv) -> dict[str, str]:
    """Everything under the venv (but the lock file): to show that nothing changed."""
    return tree_digest(venv.root, exclude=(".lock",))


def status(venv: Venv) -> str:
    return venv.run("-m", "install_atomic", "status", venv.site_packages).stdout


def recover(venv: Venv, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return venv.run("-m", "install_atomic", "recover", venv.site_packages, *args, check=check)


def planned_renames(venv: Venv, project: Path) -> int:
    """How many renames committing *project* into *venv* would make now (``--dry-run``)."""
    out = venv.setup_py(project, "install_atomic", "--dry-run").stdout
    match = re.search(r"dry run: (\d+) renames planned", out)
    assert match, out
    return int(match.group(1))


@dataclass
class World:
    """A venv plus fresh project copies on demand and a shim."""

    venv: Venv
    tmp: Path
    shim: Shim
    _copies: int = 0

    @property
    def logs(self) -> Path:
        return self.tmp / "logs"

    def project(self, scenario: str, version: str) -> Path:
        """A fresh copy (``setup.py`` writes build/ and egg-info into it)."""
        self._copies += 1
        return make_project(scenario, self.tmp / "src" / str(self._copies), version)

    def install(self, scenario: str, version: str, *args: str) -> str:
        proc = self.venv.setup_py(self.project(scenario, version), "install_atomic", *args)
        return proc.stdout + proc.stderr


@pytest.fixture
def world(make_venv: MakeVenv, tmp_path: Path) -> World:
    return World(make_venv("newest"), tmp_path, Shim.create(tmp_path))


# --------------------------------------------------------------------------- kills at every step


def crash_at(world: World, scenario: str, version: str, point: str) -> Proc:
    """Run an install of *scenario* *version* that SIGKILLs itself at *point*; return it."""
    proc = start_install(world.venv, world.project(scenario, version), logs=world.logs,
                         env=world.shim.env(point, kill=point))
    rc = proc.wait()
    assert rc == -signal.SIGKILL, f"expected a kill at {point}: {proc.describe()}"
    assert world.shim.seen(point, "killed:" + point), proc.describe()
    return proc


def kill_points(renames: int, *, journal_less: bool = True) -> list[tuple[str, int | None]]:
    """(shim point, renames done at that point; None: no journal yet)."""
    points: list[tuple[str, int | None]] = [(f"apply:{k}", k) for k in range(renames + 1)]
    points.append(("journal-remove", renames))
    if journal_less:
        points += [("lock-wait", None), ("journal-tmp", None)]
    return points


STEP_CASES = [
    # scenario, installed before, version whose install is killed, flavour, recovery
    ("pkg", "1.0", "2.0", "newest", "recover-cli"),
    ("pkg", "1.0", "2.0", "newest", "next-install"),
    ("pkg", "1.0", "2.0", "66", "recover-cli"),
    ("scripts", "1.0", "2.0", "newest", "recover-cli"),
    ("scripts", "1.0", "2.0", "newest", "next-install"),
    ("scripts", None, "1.0", "newest", "recover-cli"),
    ("scripts", None, "1.0", "66", "next-install"),
]


@pytest.mark.parametrize(
    ("scenario", "before", "after", "flavour", "recovery"),
    STEP_CASES,
    ids=[f"{c[0]}-{c[1] or 'none'}-{c[2]}-{c[3]}-{c[4]}" for c in STEP_CASES],
)
def test_kill_at_every_step_of_the_commit(
    make_venv: MakeVenv,
    tmp_path: Path,
    scenario: str,
    before: str | None,
    after: str,
    flavour: str,
    recovery: str,
) -> None:
    """SIGKILL at each point of the commit: status reports it; recovery (``recover SITE``, or
    the next install, of another project) rolls back before the last rename and forward
    after it; a later install succeeds."""
    world = World(make_venv(flavour), tmp_path, Shim.create(tmp_path))
    venv, spec = world.venv, SPECS[scenario]
    if before:
        world.install(scenario, before, "--no-fsync")
    assert_consistent(venv, spec, before)
    renames = planned_renames(venv, world.project(scenario, after))
    assert renames >= 2
    for point, done in kill_points(renames):
        try:
            _kill_and_recover(world, spec, before, after, point, done, renames, recovery)
        except AssertionError as exc:
            raise AssertionError(f"killed at {point} ({done}/{renames} renames done) while"
                                 f" installing {spec.dist} {after} over {before}, recovered"
                                 f" by {recovery}:\n{exc}") from None
    world.install(scenario, after)
    assert_consistent(venv, spec, after)


def _kill_and_recover(
    world: World,
    spec: Spec,
    before: str | None,
    after: str,
    point: str,
    done: int | None,
    renames: int,
    recovery: str,
) -> None:
    venv = world.venv
    crash_at(world, spec.scenario, after, point)
    expected = after if done == renames else before
    outcome = "rolled forward" if done == renames else "rolled back"
    report = status(venv)
    if done is None:
        # Killed before the journal existed: only its staging directories remain.
        assert "renames done" not in report, report
        assert "leftover staging directory" in report, report
    else:
        assert re.search(rf"{spec.dist}: interrupted, pid \d+, {done}/{renames} renames done",
                         report), report
    if recovery == "recover-cli":
        out = recover(venv).stdout
        said = (
            "recovered 0 interrupted install(s), removed"
            if done is None
            else f"{spec.dist}: {outcome}"
        )
        assert said in out, out
    else:
        out = world.install("module", "1.0", "--no-fsync")
        if done is not None:
            assert f"recovered an interrupted install of {spec.dist}: {outcome}" in out, out
        assert_consistent(venv, SPECS["module"], "1.0")
    assert_consistent(venv, spec, expected)
    assert "no interrupted installs" in status(venv)
    if expected != before:  # rolled forward: a later install puts the start back
        if before:
            world.install(spec.scenario, before, "--no-fsync")
        else:
            venv.run("-m", "install_atomic", "uninstall", spec.dist)
        assert_consistent(venv, spec, before)


def test_recover_cleans_stray_stages_of_every_destination(world: World) -> None:
    """An installer killed while waiting for the lock (nothing renamed, no journal) leaves a
    staging directory in every destination it installs into: site-packages, bin, the headers
    directory and the venv root (data files).  ``status SITE`` must report them all and
    ``recover SITE`` must remove them all, as the next install of that project does
    (test_next_install_cleans_stray_stages_of_every_destination)."""
    venv, spec = world.venv, SPECS["scripts"]
    world.install("scripts", "1.0", "--no-fsync")
    with lock_holder(venv, world.logs):
        proc = start_install(venv, world.project("scripts", "2.0"), "--lock-timeout", "-1",
                             logs=world.logs, env=world.shim.env("waiter"))
        with reaping(proc):
            wait_until(lambda: world.shim.seen("waiter", "lock-wait"), "the installer to wait",
                       watch=[proc])
            proc.kill()
    stages = [venv.root / p for p in leftovers(venv) if not p.endswith("-owner")]
    assert {s.parent for s in stages} == {
        venv.site_packages, venv.bin, venv.root,
        venv.root / "include" / "site" / PY / "demo-scripts",
    }, stages
    report = status(venv)
    assert "renames done" not in report, report
    unreported = [str(s) for s in stages if f"leftover staging directory {s}" not in report]
    recover(venv)
    remaining = [str(venv.root / p) for p in leftovers(venv) if not p.endswith("-owner")]
    assert (unreported, remaining) == ([], []), (
        f"status {venv.site_packages} did not report {unreported}; recover"
        f" {venv.site_packages} did not remove {remaining}"
    )
    assert_consistent(venv, spec, "1.0")


def test_next_install_cleans_stray_stages_of_every_destination(world: World) -> None:
    """Killed with the journal's temporary file written (no journal yet): the next install of
    the project removes the dead staging directories of every destination and the temporary
    journal, and installs."""
    venv, spec = world.venv, SPECS["scripts"]
    world.install("scripts", "1.0", "--no-fsync")
    crash_at(world, "scripts", "2.0", "journal-tmp")
    stray = leftovers(venv)
    assert any(p.startswith("bin/") for p in stray), stray
    assert list(venv.site_packages.glob(".install-atomic-*.journal.tmp")), stray
    world.install("scripts", "2.0")
    assert_consistent(venv, spec, "2.0")


def test_kill_while_waiting_for_the_lock(world: World) -> None:
    """The commit is blocked on a lock the test holds; the installer is killed there: no
    journal, only a dead staging directory, which ``recover`` removes once it can take the
    lock; while the holder lives, ``recover --lock-timeout 1`` fails naming it."""
    venv, spec = world.venv, SPECS["pkg"]
    world.install("pkg", "1.0")
    with lock_holder(venv, world.logs) as holder:
        proc = start_install(venv, world.project("pkg", "2.0"), "--lock-timeout", "-1",
                             logs=world.logs, env=world.shim.env("waiter"))
        with reaping(proc):
            wait_until(lambda: world.shim.seen("waiter", "lock-wait"),
                       "the installer to reach the lock", watch=[proc])
            stages = [p for p in leftovers(venv) if "site-packages" in p]
            assert len(stages) == 1, stages
            assert (venv.root / stages[0] / "demopkg" / "only_v2.py").is_file()
            proc.kill()
        assert not world.shim.seen("waiter", "locked")
        report = status(venv)
        assert f"leftover staging directory {venv.root / stages[0]}" in report, report
        assert not list(venv.site_packages.glob(".install-atomic-*.journal")), report
        before = site_digest(venv)
        failed = recover(venv, "--lock-timeout", "1", check=False)
        assert failed.returncode == 1, failed
        assert f"held by process {holder.pid}" in failed.stderr, failed.stderr
        assert site_digest(venv) == before
    out = recover(venv).stdout
    assert "recovered 0 interrupted install(s), removed 1 abandoned staging directory" in out
    assert_consistent(venv, spec, "1.0")
    assert "no interrupted installs" in status(venv)
    world.install("pkg", "2.0")
    assert_consistent(venv, spec, "2.0")


def test_recover_never_touches_a_live_transaction(world: World) -> None:
    """An installer paused in the middle of its commit (one rename done, lock held): status
    says "in progress"; ``recover --lock-timeout 1`` fails with a message naming it and
    changes nothing; let go, the installer completes its own commit."""
    venv, spec = world.venv, SPECS["pkg"]
    world.install("pkg", "1.0")
    go = world.tmp / "go"
    proc = start_install(venv, world.project("pkg", "2.0"), logs=world.logs,
                         env=world.shim.env("live", pause="apply:1", go=go))
    with reaping(proc):
        wait_until(lambda: world.shim.seen("live", "paused:apply:1"),
                   "the installer to pause after its first rename", watch=[proc])
        report = status(venv)
        assert re.search(rf"demo-pkg: in progress \(lock held\), pid {proc.pid}, 1/\d+ renames",
                         report), report
        before = site_digest(venv)
        for _ in range(2):
            failed = recover(venv, "--lock-timeout", "1", check=False)
            assert failed.returncode == 1, failed
            assert f"held by process {proc.pid}" in failed.stderr, failed.stderr
            assert site_digest(venv) == before
        # Neither does another installer: it waits for the lock and gives up.
        other = world.venv.setup_py(world.project("module", "1.0"), "install_atomic",
                                    "--lock-timeout", "1", check=False)
        assert other.returncode != 0 and f"held by process {proc.pid}" in other.stderr, other
        assert site_digest(venv) == before
        go.touch()
        proc.succeeded()
    assert_consistent(venv, spec, "2.0")
    assert_consistent(venv, SPECS["module"], None)
    assert "no interrupted installs" in status(venv)


def test_waiting_installer_recovers_a_committer_killed_mid_commit(world: World) -> None:
    """Installer A is killed with one rename of its commit done while installer B waits for
    the lock: B takes the lock, rolls A's commit back, then commits its own install."""
    venv = world.venv
    world.install("pkg", "1.0", "--no-fsync")
    go = world.tmp / "go"
    a = start_install(venv, world.project("pkg", "2.0"), logs=world.logs, name="A",
                      env=world.shim.env("A", pause="apply:1", go=go))
    with reaping(a) as alive:
        wait_until(lambda: world.shim.seen("A", "paused:apply:1"), "A's first rename",
                   watch=[a])
        b = start_install(venv, world.project("module", "2.0"), logs=world.logs, name="B",
                          env=world.shim.env("B"))
        alive.append(b)
        wait_until(lambda: world.shim.seen("B", "lock-wait"), "B to wait for the lock",
                   watch=[a, b])
        assert not world.shim.seen("B", "locked")
        a.kill()
        b.succeeded()
    assert "recovered an interrupted install of demo-pkg: rolled back" in b.stderr(), b.describe()
    assert_consistent(venv, SPECS["pkg"], "1.0")
    assert_consistent(venv, SPECS["module"], "2.0")
    assert "no interrupted installs" in status(venv)


# --------------------------------------------------------------------------- kills at random


def test_kill_at_random_instants(world: World) -> None:
    """Installs SIGKILLed at random instants (seeded: reproducible) over their whole run:
    after each, status and recover (or the next install) leave exactly one consistent
    version, the old or the new."""
    venv, spec = world.venv, SPECS["pkg"]
    rng = random.Random(20240611)
    world.install("pkg", "1.0")
    started = time.monotonic()
    world.install("pkg", "2.0")
    duration = time.monotonic() - started
    current = "2.0"
    outcomes: list[str] = []
    for i in range(10):
        target = "1.0" if current != "1.0" else rng.choice(["2.0", "3.0"])
        proc = start_install(venv, world.project("pkg", target), logs=world.logs,
                             env=world.shim.env(f"random-{i}"))
        time.sleep(rng.uniform(0.0, duration * 1.2))
        proc.kill()
        rc = proc.popen.returncode
        assert rc in (0, -signal.SIGKILL), proc.describe()
        report = status(venv)
        journals = list(venv.site_packages.glob(".install-atomic-*.journal"))
        if journals:
            assert "demo-pkg: interrupted" in report, report
        if i % 2:
            out = recover(venv).stdout
            assert ("rolled" in out) == bool(journals), out
        else:
            world.install("module", "1.0")
        # A kill between a staging directory's mkdtemp and the creation of its owner file
        # leaves a directory recovery presumes alive for staging.YOUNG_SECONDS: by design.
        for young in ownerless_stages(venv):
            outcomes.append(f"ownerless staging directory left by design: {young}")
            shutil.rmtree(young)
        after = installed_version(venv, spec)
        assert after in (current, target), (current, target, after)
        assert_consistent(venv, spec, after)
        outcomes.append(f"{current}->{target}: {'done' if rc == 0 else 'killed'},"
                        f" journal={bool(journals)}, now {after}")
        assert after is not None
        current = after
    print("\n".join(outcomes))
    assert any("killed" in o for o in outcomes), outcomes
    world.install("pkg", "3.0")
    assert_consistent(venv, spec, "3.0")
