"""Child processes that never outlive the installer.

Every process install-atomic starts (pip resolving or building, the import
check, ``--verify-command``) runs through :func:`run_in_own_group`: in a
session and process group of its own, with ``SIGKILL`` from the kernel the
moment the installer dies (``prctl(PR_SET_PDEATHSIG)`` on Linux, set between
``fork`` and ``exec`` and followed by a check that the installer is still the
parent), and with its whole process group killed on a timeout, on any
exception while waiting (Ctrl-C), and once it has exited.

The kernel's signal reaches only the direct child.  The grandchildren (a
build backend pip started, say) are in the child's process group, which a
guard kills when the installer dies, even by ``SIGKILL``: the first child
started also starts the guard, a small interpreter of its own that reads the
groups to kill from a pipe only the installer writes to, and kills them when
that pipe ends (the installer is gone, however it went), then exits.
Processes that leave the process group (``setsid``, daemons) are never
tracked.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

#: prctl(2) option: the signal this process gets when its parent (thread) dies.
PR_SET_PDEATHSIG = 1

#: Set to "0" for every child: an interpreter the installer starts (pip, the checks,
#: the compile workers) never commits a pending install at its start
#: (:data:`install_atomic.frontends.deferred.hook.DISABLE`, the same name).
COMMIT_AT_START = "INSTALL_ATOMIC_COMMIT_AT_START"


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child: *env* (default: this process's) with
    :data:`COMMIT_AT_START` off."""
    return {**(os.environ if env is None else env), COMMIT_AT_START: "0"}


def run_in_own_group(
    cmd: str | Sequence[str],
    *,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    shell: bool = False,
    timeout: float | None = None,
) -> tuple[int, str, str]:
    """Run *cmd* in a new session; kill its whole process group on a timeout, on any
    exception while waiting, and after it exits.  Returns (exit status, stdout, stderr);
    raises :class:`subprocess.TimeoutExpired` on a timeout."""
    _tell_guard("")  # the guard runs before the child can start anything
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=child_env(env),
        shell=shell,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        close_fds=True,
        start_new_session=True,
        preexec_fn=die_with_parent(),
    )
    _tell_guard(f"+{proc.pid}\n")
    try:
        try:
            stdout, stderr = _communicate(proc, timeout)
        except BaseException:
            # The group is the child's pid (start_new_session); while the child is not
            # reaped, that number cannot name another group.
            kill_group(proc.pid)
            proc.kill()
            proc.wait()
            raise
        # What it left running in its group.  The child is reaped now, but its pid still
        # names the group while the group has members; once the group is empty the
        # number could only name another group after the kernel's pids have wrapped
        # around in between.
        kill_group(proc.pid)
    finally:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return proc.returncode, stdout, stderr


#: Longest wait in one system call: a signal (Ctrl-C) that interrupts no system call of
#: this thread (delivered to another thread) is still acted on within this many seconds.
_POLL_SECONDS = 0.5


def _communicate(proc: subprocess.Popen[str], timeout: float | None) -> tuple[str, str]:
    """``proc.communicate(timeout)``, waiting in short steps (retrying loses no output)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = _POLL_SECONDS
        if deadline is not None:
            step = max(0.0, min(step, deadline - time.monotonic()))
        try:
            return proc.communicate(timeout=step)
        except subprocess.TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(proc.args, timeout or 0.0) from None


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    _tell_guard(f"-{pgid}\n")


#: The guard: reads "+PGID" / "-PGID" lines; at the end of its input (this process is
#: gone, or closed the pipe at exit) it kills every group still listed, then exits.
_GUARD = r"""
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the installer's to handle
groups = set()
for line in sys.stdin:
    pgid = int(line[1:])
    if line[0] == "+":
        groups.add(pgid)
    else:
        groups.discard(pgid)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""
_guard: subprocess.Popen[str] | None = None
_guard_pid = 0  # the process that started the guard (a forked child did not)
_guard_lock = threading.Lock()


def _stop_guard() -> None:
    """At exit: end the guard's input and wait for it (it has nothing left to kill)."""
    guard = _guard
    if guard is None or os.getpid() != _guard_pid:
        return
    with contextlib.suppress(OSError, ValueError, subprocess.TimeoutExpired):
        if guard.stdin is not None:
            guard.stdin.close()
        guard.wait(timeout=60)


def _tell_guard(line: str) -> None:
    """Send *line* to the guard, starting it first if needed (see the module docstring).
    Without a guard (it could not start, or died), children are still killed by every
    other means."""
    global _guard, _guard_pid
    with _guard_lock:
        try:
            if _guard is None or _guard.poll() is not None or _guard_pid != os.getpid():
                if line.startswith("-"):
                    return
                if _guard is None:
                    atexit.register(_stop_guard)
                _guard_pid = os.getpid()
                _guard = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _GUARD, "install-atomic guard"],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, text=True, close_fds=True,
                    start_new_session=True,
                )
            assert _guard.stdin is not None
            _guard.stdin.write(line)
            _guard.stdin.flush()
        except (OSError, ValueError):
            _guard = None


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` giving the child ``SIGKILL`` when this process dies (Linux), or
    None where that is not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def preexec() -> None:  # in the child, between fork and exec: no allocation-heavy work
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the installer died before prctl
            os._exit(1)

    return preexec
