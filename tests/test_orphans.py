"""No process outlives the installer that started it: real installs, real kills.

A generated package of :data:`MODULES` modules (more than
``bytecode.PARALLEL_THRESHOLD``, so it is byte-compiled by worker processes) is
installed with a real ``python setup.py install_atomic`` in a venv from
``make_venv``.  As soon as the installer has compile workers (its children in
``/proc``), the installer alone (not its process group) is sent ``SIGKILL`` or
``SIGTERM``.  Then every process that was a descendant of the installer, and
every process still running the venv's interpreter, must be gone, and
``python -m install_atomic recover <site-packages>`` must leave nothing named
``.install-atomic*`` in site-packages or bin.  The same for an installer killed
during its import check (a module that blocks when imported from the staged
tree).

Before the compile workers were the installer's own (``compileall``'s process
pool forked them with every descriptor of the installer), they survived the
kill, blocked on their pipe for ever, and held the staging directory's owner
lock, so ``recover`` kept the stage.

The helpers reading ``/proc`` are shared with ``test_bytecode.py`` and
``test_verify.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import MakeVenv, Venv, clean_env, leftovers

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.isdir(f"/proc/{os.getpid()}/task"), reason="needs /proc"),
]

#: Generous bound of every wait on a real process (builds of 640 modules run through it).
WAIT = 300.0
MODULES = 640
#: In the import check's command line (install_atomic.checks.verify._IMPORT_ALL).
IMPORT_CHECK = b"importlib.import_module"
#: In a compile worker's command line (install_atomic.checks.bytecode._WORKER).
WORKER = b"install-atomic compile worker"


# --------------------------------------------------------------------------- /proc


def cmdline(pid: int) -> bytes:
    """The command line of *pid* (arguments separated by NUL), b"" if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def children(pid: int) -> list[int]:
    """The children of *pid* (of every thread of it)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    if not out and not os.path.exists(f"/proc/{pid}/task/{pid}/children"):
        out = [p for p, parent in _parents().items() if parent == pid]  # no CONFIG_PROC_CHILDREN
    return out


def _parents() -> dict[int, int]:
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError), open(
                f"/proc/{name}/stat"
            ) as f:
                found[int(name)] = int(f.read().rpartition(")")[2].split()[1])
    return found


def descendants(pid: int) -> list[int]:
    """Every descendant of *pid*, children first."""
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = children(todo.pop())
        found += kids
        todo += kids
    return found


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of *pid*, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[0], fields[19]


@dataclass(frozen=True)
class Proc:
    """A process seen at one moment: its pid and start time (a reused pid is another)."""

    pid: int
    start: str
    cmd: bytes

    @classmethod
    def of(cls, pid: int) -> Proc | None:
        stat = _stat(pid)
        return None if stat is None else cls(pid, stat[1], cmdline(pid))

    def alive(self) -> bool:
        """Still there, and not a zombie (a zombie holds no descriptor nor lock)."""
        stat = _stat(self.pid)
        return stat is not None and stat[1] == self.start and stat[0] not in ("Z", "X")

    def __str__(self) -> str:
        shown = self.cmd.replace(b"\0", b" ")[:200].decode(errors="replace")
        return f"{self.pid}: {shown}"


def alive(pid: int) -> bool:
    """True while *pid* exists and is not a zombie."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def survivors(procs: list[Proc], seconds: float = 120.0) -> list[Proc]:
    """Poll until every one of *procs* is gone; those still alive after *seconds*."""
    deadline = time.monotonic() + seconds
    while True:
        left = [p for p in procs if p.alive()]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def running(needle: bytes) -> list[Proc]:
    """Every live process whose command line contains *needle*."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and needle in cmdline(int(name)):
            proc = Proc.of(int(name))
            if proc is not None and proc.alive():
                found.append(proc)
    return found


def kill_all(procs: list[Proc]) -> None:
    """Clean-up after a failure: SIGKILL whatever of *procs* is still alive."""
    for proc in procs:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)


# --------------------------------------------------------------------------- the project


def make_big_project(root: Path, version: str, *, modules: int = MODULES,
                     block_import: bool = False) -> Path:
    """A project ``orphanpkg`` of *modules* modules and a console script."""
    project = root / f"orphanpkg-{version}"
    pkg = project / "orphanpkg"
    pkg.mkdir(parents=True)
    (project / "setup.py").write_text(
        "from setuptools import setup\n\n"
        f"setup(name='orphanpkg', version={version!r}, packages=['orphanpkg'],\n"
        "      entry_points={'console_scripts': ['orphanpkg-tool = orphanpkg:main']})\n"
    )
    init = f'VERSION = "{version}"\n\n\ndef main():\n    print(VERSION)\n'
    if block_import:  # block in the import check (it runs with INSTALL_ATOMIC_STAGE set)
        init += (
            "\nimport os, time\n"
            "if os.environ.get('INSTALL_ATOMIC_STAGE') and os.environ.get('IA_TEST_PIDFILE'):\n"
            "    with open(os.environ['IA_TEST_PIDFILE'] + '.tmp', 'w') as f:\n"
            "        f.write(str(os.getpid()))\n"
            "    os.rename(os.environ['IA_TEST_PIDFILE'] + '.tmp',"
            " os.environ['IA_TEST_PIDFILE'])\n"
            "    while True:\n"
            "        time.sleep(3600)\n"
        )
    (pkg / "__init__.py").write_text(init)
    body = "".join(f"\n\ndef f{k}(x):\n    return x + {k}\n" for k in range(20))
    for i in range(modules):
        (pkg / f"mod_{i:03d}.py").write_text(f'VERSION = "{version}"\n{body}')
    return project


class Installer:
    """``python setup.py install_atomic`` in its own session, output to a file."""

    def __init__(self, venv: Venv, project: Path, log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.site = venv.site_packages
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(venv.python), "setup.py", "install_atomic"], cwd=project,
                env=clean_env({"PYTHONDONTWRITEBYTECODE": "1", **env}),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        """The end of what the installer printed (for failure messages)."""
        return self.log.read_text(errors="replace")[-3000:]

    def compile_workers(self) -> list[int]:
        """The installer's compile workers: its children running the worker program, or,
        once byte-compilation has begun, its children that are bare forks of it (what
        ``compileall``'s process pool started before the fix; the installer has other
        children, e.g. ``ldconfig`` run by ``ctypes.util.find_library``)."""
        kids = children(self.proc.pid)
        workers = [pid for pid in kids if WORKER in cmdline(pid)]
        forks = [pid for pid in kids if cmdline(pid) == cmdline(self.proc.pid)]
        if forks and not workers and self._compiling():
            workers = forks
        return workers

    def _compiling(self) -> bool:
        """A ``__pycache__`` exists in a staging directory."""
        for name in os.listdir(self.site):
            if name.startswith(".install-atomic-"):
                for _, dirnames, _ in os.walk(self.site / name):
                    if "__pycache__" in dirnames:
                        return True
        return False


def wait_for_compile_workers(inst: Installer) -> bool:
    """Poll until the installer has compile workers (True) or has gone past compiling
    without our seeing them (False: it finished, or its import check started)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if inst.compile_workers():
            return True
        if inst.proc.poll() is not None or any(
            IMPORT_CHECK in cmdline(pid) for pid in children(inst.proc.pid)
        ):
            return False
        time.sleep(0.0005)
    raise AssertionError(f"no compile worker within {WAIT} s:\n{inst.output()}")


def kill_and_check(venv: Venv, inst: Installer, signum: int) -> bool:
    """Send *signum* to the installer alone; check that everything it started is gone and
    that ``recover`` leaves nothing behind.  False if the install had finished first."""
    seen = [p for p in map(Proc.of, descendants(inst.proc.pid)) if p is not None]
    inst.proc.send_signal(signum)
    status = inst.proc.wait(timeout=WAIT)
    venv_python = str(venv.root).encode()
    try:
        if status == 0:
            return False
        if signum == signal.SIGKILL:
            assert status == -signum, f"exit status {status}:\n{inst.output()}"
        left = survivors(seen)
        assert not left, (
            "processes of the killed installer survived it:\n"
            + "\n".join(map(str, left)) + f"\n{inst.output()}"
        )
        strays = running(venv_python)
        assert not strays, "processes still run the venv's interpreter:\n" + "\n".join(
            map(str, strays))
        rec = venv.run("-m", "install_atomic", "recover", venv.site_packages, check=False)
        assert rec.returncode == 0, rec.stdout + rec.stderr
        assert leftovers(venv.site_packages, venv.bin) == [], rec.stdout + rec.stderr
        return True
    finally:
        kill_all(seen + running(venv_python))


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_kill_while_compiling_leaves_no_process_and_no_stage(
    make_venv: MakeVenv, tmp_path: Path, signum: int
) -> None:
    venv = make_venv("newest")
    versions = ["1.0", "2.0", "3.0"]
    for attempt, version in enumerate(versions):
        project = make_big_project(tmp_path / "src", version)
        inst = Installer(venv, project, tmp_path / f"install-{attempt}.log", {})
        try:
            if wait_for_compile_workers(inst) and kill_and_check(venv, inst, signum):
                return
            # Compilation went by between two looks, or the install finished before the
            # signal (a very busy machine): let it finish and try the next version.
            assert inst.proc.wait(timeout=WAIT) == 0, inst.output()
        finally:
            if inst.proc.poll() is None:
                inst.proc.kill()
                inst.proc.wait()
    pytest.fail(f"never saw a compile worker in {len(versions)} installs")


def test_kill_during_import_check_leaves_no_process_and_no_stage(
    make_venv: MakeVenv, tmp_path: Path
) -> None:
    venv = make_venv("newest")
    project = make_big_project(tmp_path / "src", "1.0", modules=20, block_import=True)
    pidfile = tmp_path / "import-check.pid"
    inst = Installer(venv, project, tmp_path / "install.log",
                     {"IA_TEST_PIDFILE": str(pidfile)})
    try:
        deadline = time.monotonic() + WAIT
        while not pidfile.exists():
            assert inst.proc.poll() is None, inst.output()
            assert time.monotonic() < deadline, f"the import check never started\n{inst.output()}"
            time.sleep(0.01)
        assert int(pidfile.read_text()) in descendants(inst.proc.pid)
        assert kill_and_check(venv, inst, signal.SIGKILL)
    finally:
        if inst.proc.poll() is None:
            inst.proc.kill()
            inst.proc.wait()


def test_proc_helpers_see_a_grandchild(tmp_path: Path) -> None:
    """The helpers above find a grandchild and tell a live process from a dead one."""
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(3600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    try:
        grandchild = int(parent.stdout.readline())
        assert descendants(parent.pid) == [grandchild]
        procs = [p for p in map(Proc.of, [parent.pid, grandchild]) if p is not None]
        assert len(procs) == 2 and all(p.alive() for p in procs)
        os.kill(grandchild, signal.SIGKILL)
        assert survivors(procs[1:]) == []
        assert procs[0].alive() and not alive(grandchild)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
