"""Byte-compiling the staged tree with the paths it will have once installed.

Every ``.py`` below the staging directory is compiled as
``compileall.compile_file(path, stripdir=stage, prependdir=final)`` would:
the ``__pycache__`` files are written inside the staging directory while
every code object gets the *final* ``co_filename``, so tracebacks name the
installed file and the bytecode that lands is the bytecode that was checked.
Nothing in the destination is written by any process's import system in the
meantime.

Invalidation modes (``--pyc-mode``):

``checked-hash`` (default)
    The pyc stores a hash of its source and the import system checks it.
    Timestamp pycs record the source's mtime with one-second resolution and
    its size: two versions of a file with the same size written within one
    second look identical, and the stale pyc would be used.
``timestamp``
    What ``setup.py install`` and pip write; cheapest to check at import.
``unchecked-hash``
    Never re-checked: for read-only trees that are only replaced whole.

Worker processes
----------------

Large trees are compiled by worker processes this module starts itself
(``compileall``'s own process pool forks workers that inherit every
descriptor of the installer, the stage's flock-ed owner file included, and
that wait forever on their pipe once the installer is killed: the stage then
looks alive to ``recover`` for good).  Each worker is a fresh interpreter
(``python -I -S -c <_WORKER>``) started with ``close_fds=True``: it holds no
descriptor of the installer but its own stdin and stdout pipes, never the
owner lock.  It receives its share of the files as one line on stdin, keeps
stdin open, and compiles.  What happens when the installer dies, at each
point:

* **before or while a worker is being started** (between ``fork`` and
  ``exec`` the child still has the installer's descriptors; ``exec`` closes
  them): the worker first asks the kernel for ``SIGKILL`` when its parent
  dies (``prctl(PR_SET_PDEATHSIG)``, Linux), then checks that its parent is
  still the installer (``os.getppid()``), and exits at once if not;
* **before the worker has read its files**: reading stdin gives end-of-file
  (only the installer held the write end), and the worker exits;
* **while it compiles**: on Linux the kernel kills it with ``SIGKILL`` as
  the installer dies, whatever killed the installer (``SIGKILL``,
  ``SIGTERM``, a crash).  Everywhere, a thread of the worker reads stdin
  until end-of-file, which comes the moment the installer is gone, and then
  ends the worker with ``os._exit``.  A pyc being written is written to a
  temporary file in the stage's ``__pycache__`` and renamed, so at worst a
  complete or a temporary file is left in the stage, which ``recover``
  removes with the stage (it can: no worker ever held the owner lock);
* **when the installer gets an exception** (``KeyboardInterrupt``, a signal
  turned into an exception): :func:`compile_tree` kills and reaps every
  worker before passing the exception on;
* **when a worker dies on its own** (the OOM killer, say): its files are
  compiled in the installer's process instead.

``PR_SET_PDEATHSIG`` fires when the *thread* that started the worker ends;
:func:`compile_tree` waits for its workers in the thread that started them,
so that thread cannot end first.  Workers ignore ``SIGINT``: a Ctrl-C reaches
the installer, which stops them.
"""

from __future__ import annotations

import compileall
import contextlib
import json
import os
import py_compile
import subprocess
import sys
from collections.abc import Iterator, Sequence

from install_atomic import children

MODES = {
    "timestamp": py_compile.PycInvalidationMode.TIMESTAMP,
    "checked-hash": py_compile.PycInvalidationMode.CHECKED_HASH,
    "unchecked-hash": py_compile.PycInvalidationMode.UNCHECKED_HASH,
}
DEFAULT_MODE = "checked-hash"
#: Above this many modules, compile with one process per core.
PARALLEL_THRESHOLD = 200
#: Fewest files worth a worker process of their own.
MIN_FILES_PER_WORKER = 25
#: Exit status of a worker that cannot compile as the installer would (another
#: interpreter, another filesystem encoding) or whose parent is gone.
_WORKER_REFUSED = 70

#: The program of a worker: ``python -I -S -c _WORKER <installer pid>``.  It reads
#: one JSON line from stdin, compiles those files, prints compileall's error
#: messages on stdout and exits with 0 (all compiled) or 1 (some failed).
_WORKER = r"""# install-atomic compile worker (install_atomic.checks.bytecode)
import os, signal, sys

parent = int(sys.argv[1])
if sys.platform.startswith("linux"):
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
        prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
if os.getppid() != parent:  # the installer died before prctl: nobody to work for
    os._exit(70)
signal.signal(signal.SIGINT, signal.SIG_IGN)

line = b""
while not line.endswith(b"\n"):
    chunk = os.read(0, 1 << 16)
    if not chunk:
        os._exit(70)
    line += chunk


def watch():
    # Nothing more is ever written: end-of-file means the installer is gone.
    while os.read(0, 1 << 12):
        pass
    os._exit(70)


import threading
threading.Thread(target=watch, daemon=True).start()

import compileall, json, py_compile
job = json.loads(line)
if (job["encoding"] != sys.getfilesystemencoding() or job["tag"] != sys.implementation.cache_tag
        or job["prefix"] != sys.pycache_prefix):
    os._exit(70)  # compiled otherwise than the installer would: it compiles them itself
sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace")
mode = py_compile.PycInvalidationMode[job["mode"]]
ok = True
for rel in job["files"]:
    ok = compileall.compile_file(
        os.path.join(job["stage"], *rel), stripdir=job["stage"], prependdir=job["final"],
        optimize=job["optimize"], invalidation_mode=mode, quiet=1,
    ) and ok
sys.stdout.flush()
os._exit(0 if ok else 1)
"""


def count_sources(tree: str) -> int:
    """Number of ``.py`` files below *tree*."""
    return sum(
        1 for _, _, files in os.walk(tree) for name in files if name.endswith(".py")
    )


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def compile_tree(
    stage: str,
    final: str,
    *,
    optimize: Sequence[int] = (0,),
    mode: str = DEFAULT_MODE,
    workers: int | None = None,
    python: str | None = None,
    cache_tag: str | None = None,
) -> bool:
    """Compile every ``.py`` below *stage* as if it lived below *final*.

    *python* and *cache_tag* name another interpreter to compile for (``--python``
    of ``install-atomic install``): then every file is compiled by worker processes
    running that interpreter, never in this one.

    *optimize* lists the levels to write (0, 1, 2); *workers* = 0 uses one
    worker process per core, N > 1 uses N processes, 1 compiles in this
    process, None (the default) uses every core for trees of more than
    :data:`PARALLEL_THRESHOLD` modules, where starting the workers pays off.
    Errors are printed on stdout, as ``compileall`` prints them.  Returns True
    when every file compiled.  See the module's docstring for what happens to
    the workers when the installer is killed.
    """
    levels = sorted(set(optimize)) or [0]
    if workers is None:
        workers = 0 if count_sources(stage) > PARALLEL_THRESHOLD else 1
    if workers < 0:
        raise ValueError("workers must be >= 0")
    if python is not None:
        files = list(_sources(stage))
        if not files:
            return True
        count = max(1, min(workers or _cores(), len(files) // MIN_FILES_PER_WORKER))
        return _compile_in_workers(stage, final, files, levels, mode, count,
                                   python=python, tag=cache_tag)
    if workers != 1 and sys.executable:
        files = list(_sources(stage))
        count = min(workers or _cores(), len(files) // MIN_FILES_PER_WORKER)
        if count > 1:
            try:
                return _compile_in_workers(stage, final, files, levels, mode, count)
            except OSError:  # no process could be started (EAGAIN, ENOMEM): compile here
                pass
    return bool(
        compileall.compile_dir(
            stage,
            quiet=1,  # errors only
            stripdir=stage,
            prependdir=final,
            optimize=levels,  # type: ignore[arg-type]  # a list is accepted since 3.5
            invalidation_mode=MODES[mode],
            workers=1,
            rx=_Private(stage),
        )
    )


def _sources(stage: str, rel: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The ``.py`` files ``compileall.compile_dir(stage, rx=_Private(stage))`` compiles, as
    path components below *stage*, in its order (sorted names, symlinked dirs not
    followed, ``__pycache__`` and install-atomic's private entries skipped)."""
    directory = os.path.join(stage, *rel)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return
    for name in names:
        if name == "__pycache__" or name.startswith(".install-atomic"):
            continue
        path = os.path.join(directory, name)
        if not os.path.isdir(path):
            if name.endswith(".py"):
                yield (*rel, name)
        elif name not in (os.curdir, os.pardir) and not os.path.islink(path):
            yield from _sources(stage, (*rel, name))


def _worker_command(python: str | None = None) -> list[str]:
    # -I: no PYTHON* variables, no user site, no current directory on sys.path (a
    # project's json.py must not shadow the stdlib's); -S: no site (no sitecustomize).
    # What decides the pyc's path, the file names' encoding and which compiler warnings
    # are errors is passed explicitly.
    cmd = [python or sys.executable, "-I", "-S", "-X", f"utf8={sys.flags.utf8_mode}"]
    cmd += [f"-W{option}" for option in sys.warnoptions]  # -W, PYTHONWARNINGS
    if sys.pycache_prefix:
        cmd += ["-X", f"pycache_prefix={sys.pycache_prefix}"]
    return [*cmd, "-c", _WORKER, str(os.getpid())]


def _compile_in_workers(
    stage: str, final: str, files: list[tuple[str, ...]], levels: list[int], mode: str,
    count: int, *, python: str | None = None, tag: str | None = None,
) -> bool:
    chunks = [files[i::count] for i in range(count)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in chunks:
            procs.append(subprocess.Popen(
                _worker_command(python), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                close_fds=True,  # the stage's owner lock stays in this process
                env=children.child_env(),
            ))
        for proc, chunk in zip(procs, chunks):
            job = {
                "stage": stage, "final": final, "optimize": levels,
                "mode": MODES[mode].name, "files": chunk,
                "encoding": sys.getfilesystemencoding(),
                "tag": tag or sys.implementation.cache_tag,
                "prefix": sys.pycache_prefix if python is None else None,
            }
            assert proc.stdin is not None
            # BrokenPipeError: it died at start-up; its files are compiled below.
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(json.dumps(job).encode("ascii") + b"\n")
                proc.stdin.flush()
        ok = True
        for proc, chunk in zip(procs, chunks):
            assert proc.stdout is not None
            output = proc.stdout.read().decode("utf-8", "replace")
            status = proc.wait()
            if status in (0, 1):
                _print(output)
                ok = ok and status == 0
            elif python is not None:  # another interpreter's bytecode: never made here
                print(f"install_atomic: compiling with {python} failed (worker exit status"
                      f" {status}); {len(chunk)} files are installed without bytecode")
                ok = False
            else:  # refused or died: compile its share here
                ok = _compile_here(stage, final, chunk, levels, mode) and ok
        return ok
    finally:
        for proc in procs:  # on an exception: no worker outlives this call
            if proc.returncode is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(BrokenPipeError):
                        pipe.close()


def _compile_here(stage: str, final: str, files: list[tuple[str, ...]], levels: list[int],
                  mode: str) -> bool:
    ok = True
    for rel in files:
        ok = bool(compileall.compile_file(
            os.path.join(stage, *rel), stripdir=stage, prependdir=final,
            optimize=levels,  # type: ignore[arg-type]  # a list is accepted since 3.5
            invalidation_mode=MODES[mode], quiet=1,
        )) and ok
    return ok


def _print(text: str) -> None:
    """Print a worker's messages as ``compileall`` would have in this process."""
    if not text:
        return
    encoding = getattr(sys.stdout, "encoding", None) or sys.getdefaultencoding()
    sys.stdout.write(text.encode(encoding, "backslashreplace").decode(encoding))
    sys.stdout.flush()


class _Private:
    """Skip install-atomic's own private entries below the stage (``compileall``
    calls ``rx.search`` with each full path)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def search(self, path: str) -> bool:
        rel = os.path.relpath(path, self.stage)
        return any(part.startswith(".install-atomic") for part in rel.split(os.sep))
