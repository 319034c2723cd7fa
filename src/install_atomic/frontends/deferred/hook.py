"""The start-up hook: the next interpreter of an environment commits its pending installs.

While an install is pending in a site-packages directory, two files sit there
(and only then: with nothing pending there is no hook, and start-up costs
nothing):

* ``install-atomic-pending.pth``, whose ``import`` line ``site`` runs at every
  start of an interpreter using that directory (Python 3.9 to 3.17; from 3.18
  such lines are ignored, PEP 829);
* ``install-atomic-pending.start``, the PEP 829 entry point
  ``install_atomic.frontends.deferred.hook:run`` (Python 3.15 and later, which
  then skip the ``.pth`` file's import line).

:func:`run` never hurts the program being started:

* it never waits for an install: if another process holds the environment's
  lock, the install stays pending and the program starts;
* when several interpreters start at once, one commits (it holds the
  ``.pth`` file's ``flock``, as ``commit-pending`` and the next install do
  while they commit a pending install) and the others wait for that commit,
  no longer, then see the new version whole;
* it never raises: a failure is one line on standard error, and the reason
  is kept for ``install-atomic status``;
* it does nothing where the user may not write, in an interpreter that
  starts ``install-atomic`` itself (``status`` shows what is pending,
  ``discard-pending`` drops it), in the interpreters an install starts, or
  with ``INSTALL_ATOMIC_COMMIT_AT_START=0``;
* while every pending install is held by the live process that deferred it,
  it checks that with ``os`` and ``fcntl`` alone and imports nothing of the
  engine; it removes the hook files once nothing is pending.

``python -S`` (no ``site``) and embedded interpreters that skip ``site`` run
no hook: the install stays pending until an interpreter that runs it starts,
``install-atomic commit-pending``, or the next install.
"""

from __future__ import annotations

import os
import sys

HOOK = "install-atomic-pending"
ENTRY_POINT = "install_atomic.frontends.deferred.hook:run"

#: The ``.pth`` line.  ``site`` runs a line starting with ``import`` with ``exec``;
#: everything after it is guarded, so that a missing or broken install_atomic costs a
#: one-line warning, never a traceback.
_PTH_LINE = (
    "import sys; exec({code!r})\n"
)
_PTH_CODE = (
    "try:\n"
    " from install_atomic.frontends.deferred.hook import run\n"
    "except Exception as e:\n"
    " sys.stderr.write('install-atomic: an install is pending in {directory}, but"
    " install_atomic cannot be imported here (%s); run install-atomic commit-pending"
    " {directory}\\n' % (e,))\n"
    "else:\n"
    " run({directory!r})\n"
)


def hook_paths(directory: str) -> list[str]:
    return [os.path.join(directory, HOOK + ext) for ext in (".pth", ".start")]


def install(directory: str) -> None:
    """Write the hook files into *directory* (a site-packages), durably; call with its
    lock held."""
    from install_atomic.engine import trust
    from install_atomic.engine.primitives import write_durably

    code = _PTH_CODE.format(directory=directory)
    pth, start = hook_paths(directory)
    for path in (pth, start):
        # A temporary name of ours left by a killed deferral would make the write fail.
        if os.path.lexists(path + ".tmp") and trust.distrust_path(path + ".tmp", "file") is None:
            os.unlink(path + ".tmp")
    write_durably(pth, _PTH_LINE.format(code=code).encode())
    write_durably(start, (ENTRY_POINT + "\n").encode())


def remove(directory: str) -> None:
    """Remove the hook files from *directory*; call with its lock held and nothing
    pending there."""
    for path in hook_paths(directory):
        try:  # no contextlib here: see _all_held
            os.unlink(path)
        except FileNotFoundError:
            continue


def _hooked_directories() -> list[str]:
    seen: list[str] = []
    for entry in sys.path:
        if entry and os.path.isfile(os.path.join(entry, HOOK + ".start")):
            real = os.path.realpath(entry)
            if real not in seen:
                seen.append(real)
    return seen


#: Set to ``0`` to start interpreters without committing anything (to look at a
#: pending install, say); ``install-atomic`` itself always starts so.
DISABLE = "INSTALL_ATOMIC_COMMIT_AT_START"


def _starting_install_atomic() -> bool:
    """True if this interpreter starts install-atomic's command line, which deals with
    pending installs itself (``status`` shows them, ``discard-pending`` drops them)."""
    argv: list[str] = list(getattr(sys, "orig_argv", None) or sys.argv)
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "-m":
            return argv[i + 1:i + 2] == ["install_atomic"]
        if arg in ("-X", "-W"):  # options that take a value
            i += 2
            continue
        if arg in ("-c", "-") or not arg.startswith("-"):
            # the program: a script, or the console script install-atomic
            return os.path.basename(arg).startswith("install-atomic")
        i += 1
    return False


def run(directory: str | None = None) -> None:
    """Commit what is pending in *directory* (default: every directory on ``sys.path``
    holding the hook, as a PEP 829 entry point is called without arguments).

    Never raises and never waits: see the module docstring.
    """
    if os.environ.get(DISABLE) == "0" or _starting_install_atomic():
        return
    try:
        directories = [directory] if directory else _hooked_directories()
        for d in directories:
            _run_in(d)
    except Exception as exc:  # nothing may reach the program
        _warn(f"install-atomic: the pending install in {directory or 'site-packages'} was not"
              f" committed: {exc}; see 'install-atomic status'")


def _warn(message: str) -> None:
    stream = sys.stderr
    if stream is None:  # an embedded interpreter may have none
        return
    try:
        stream.write(message.replace("\n", " ") + "\n")
    except (OSError, ValueError):  # closed or broken: nothing to tell
        return


_PRIVATE = ".install-atomic-"
_OWNER = ".install-atomic-owner"


def _all_held(directory: str) -> bool:
    """True if the installs pending in *directory* are all held by live processes (the
    ones that deferred them), so that there is nothing to do: the usual case while a
    program that deferred an install runs.  Checked with ``os`` and ``fcntl`` alone,
    before anything else is imported: every staging directory here (a pending
    install's primary stage lies in its library directory) must have its owner file
    locked.  Any doubt (no staging directory, an unlocked or unreadable one, an
    interrupted commit's journal) answers False: the full path decides, and removes
    what is abandoned."""
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    private = [n for n in names if n.startswith(_PRIVATE)]
    if not any(n.endswith(".pending") for n in private) or any(
            n.endswith(".journal") for n in private):
        return False
    stages = [n for n in private if "." not in n[len(_PRIVATE):]]
    return bool(stages) and all(
        _locked(os.path.join(directory, n, _OWNER)) for n in stages)


def _locked(path: str) -> bool:
    """True if another process holds the ``flock`` of *path* (never waits, never follows
    a symbolic link, never blocks on a FIFO)."""
    import fcntl

    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


#: Directories this process has already run the hook for: ``site`` may process one
#: directory twice (under two names: ``lib64 -> lib``), and a failure is told once.
_DONE: set[str] = set()


def _run_in(directory: str) -> None:
    real = os.path.realpath(directory)
    if real in _DONE:
        return
    _DONE.add(real)
    if not os.access(directory, os.W_OK | os.X_OK):
        return  # another user's environment: its owner's next start commits it
    import fcntl

    # One starting interpreter commits; the others starting meanwhile wait for it (its
    # commit's time, never an install's lock), then import the new version whole.
    # Whoever commits a pending install holds this flock while it does.
    try:
        fd = os.open(os.path.join(directory, HOOK + ".pth"),
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return  # committed meanwhile: the hook is gone
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(fd, fcntl.LOCK_SH)  # until the committing one is done
            return
        # Only now: a committer adopts the staging directories, which then look held.
        if _all_held(directory):
            return  # every pending install waits for its process: import nothing more
        _commit_in(directory)
    finally:
        os.close(fd)


def _commit_in(directory: str) -> None:
    # Imported only now: with nothing pending there is no hook, so this never runs.
    from install_atomic.errors import LockTimeout
    from install_atomic.frontends.deferred import commits

    try:
        results = commits.commit_all(directory, lock_timeout=0, hold_hook=False)
    except LockTimeout:
        return  # an install holds the lock: start the program now, never wait for it
    for result in results:
        if result.outcome == "failed":
            _warn(f"install-atomic: the pending install of {result.record.description} into"
                  f" {directory} was not committed: {result.detail} (see 'install-atomic"
                  " status')")
