"""A real unprivileged user for the tests that play an attacker or a careless neighbour.

:func:`other_user` creates (once per machine, idempotently) the system user
``ia-test-neighbour`` with ``useradd`` and returns its ids.  It needs root: run as
anyone else the tests that use it are skipped with the reason.  :meth:`User.run`
runs a command as that user (``setuid`` / ``setgid`` in the child, no shell), so what
the user plants is really owned by the user, and what the kernel refuses it is
really refused.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

NAME = "ia-test-neighbour"


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int

    def _demote(self) -> None:
        os.setgroups([])
        os.setgid(self.gid)
        os.setuid(self.uid)

    def run(
        self, argv: Sequence[str], *, cwd: str | None = None, timeout: float = 600.0,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run *argv* as this user; with *check*, fail the test on a non-zero exit."""
        proc = subprocess.run(
            list(argv), cwd=cwd or "/", preexec_fn=self._demote, capture_output=True,
            text=True, timeout=timeout, check=False,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/"},
        )
        if check and proc.returncode != 0:
            pytest.fail(f"{argv} as {self.name} exited {proc.returncode}:\n"
                        f"{proc.stdout}\n{proc.stderr}")
        return proc

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[str]:
        """Start *argv* as this user."""
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            list(argv), preexec_fn=self._demote, text=True, cwd="/", **kwargs
        )


def other_user() -> User:
    """The unprivileged test user; skip the calling test where it cannot exist."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to create an unprivileged user and to act as root beside it")
    try:
        entry = pwd.getpwnam(NAME)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            pytest.skip("useradd is not available to create an unprivileged test user")
        proc = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", NAME],
            capture_output=True, text=True, check=False,
        )
        try:
            entry = pwd.getpwnam(NAME)
        except KeyError:
            pytest.skip(f"could not create the test user {NAME}: {proc.stderr.strip()}")
    return User(NAME, entry.pw_uid, entry.pw_gid)


def shared_dir(path: str, user: User, mode: int = 0o1777) -> str:
    """Make *path* (and its parents up to /) traversable, and *path* writable by *user*.

    ``mode`` 0o1777 is a sticky world-writable directory like ``/tmp``; 0o2775 with
    the user's group, a group-writable one like Debian's ``dist-packages``.
    """
    os.makedirs(path, exist_ok=True)
    current = path
    while True:
        st = os.stat(current)
        os.chmod(current, st.st_mode | 0o011)  # others (and group) may traverse
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if mode & 0o020:  # group-writable: give the directory the user's group
        os.chown(path, 0, user.gid)
    os.chmod(path, mode)
    return path


_PR_CAPBSET_DROP = 24
#: CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER: what lets root ignore file modes.
_DAC_CAPS = (1, 2, 3)


def drop_dac_capabilities() -> None:
    """A ``preexec_fn``: file modes bind the child as they bind an unprivileged owner,
    even when it runs as root (its bounding set loses the capabilities that bypass them)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _DAC_CAPS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))


_TESTS_DIR = Path(__file__).resolve().parent
_SRC_DIR = _TESTS_DIR.parent / "src"


def run_without_dac(code: str, *args: str, timeout: float = 600.0) -> Any:
    """Run *code* (with ``src/`` and ``tests/`` on ``sys.path``) in a child for which file
    modes apply even to root (:func:`drop_dac_capabilities`); return the JSON it prints.
    Skips the calling test where the capabilities cannot be dropped."""
    preexec = None
    if os.geteuid() == 0:
        if not sys.platform.startswith("linux"):
            pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE on this platform")
        preexec = drop_dac_capabilities
    prologue = f"import sys\nsys.path[:0] = [{str(_SRC_DIR)!r}, {str(_TESTS_DIR)!r}]\n"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", prologue + textwrap.dedent(code), *args],
            capture_output=True, text=True, timeout=timeout, preexec_fn=preexec, check=False,
        )
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot drop the DAC capabilities for a child process: {exc}")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
