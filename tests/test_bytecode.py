"""Bytecode compiled in staging: final co_filename, invalidation modes, levels."""

from __future__ import annotations

import compileall
import contextlib
import importlib.util
import json
import marshal
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from install_atomic.checks import bytecode
from test_orphans import children, cmdline


def _write_tree(stage: Path) -> None:
    (stage / "pkg" / "sub").mkdir(parents=True)
    (stage / "pkg" / "__init__.py").write_text("X = 1\n")
    (stage / "pkg" / "sub" / "__init__.py").write_text("def f():\n    raise ValueError\n")
    (stage / ".install-atomic-private").mkdir()
    (stage / ".install-atomic-private" / "mod.py").write_text("Y = 2\n")


def _pyc(source: Path, level: int = 0) -> Path:
    opt = "" if level == 0 else level
    return Path(importlib.util.cache_from_source(str(source), optimization=opt))


@pytest.mark.parametrize(
    ("mode", "flags"), [("timestamp", 0), ("checked-hash", 3), ("unchecked-hash", 1)]
)
def test_modes_write_the_matching_pyc_flags(tmp_path: Path, mode: str, flags: int) -> None:
    stage = tmp_path / "stage"
    _write_tree(stage)
    assert bytecode.compile_tree(str(stage), "/final/site", mode=mode, workers=1)
    data = _pyc(stage / "pkg" / "__init__.py").read_bytes()
    assert int.from_bytes(data[4:8], "little") == flags


def test_code_objects_name_the_final_path(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    _write_tree(stage)
    final = tmp_path / "site"
    assert bytecode.compile_tree(str(stage), str(final), workers=1)
    code = marshal.loads(_pyc(stage / "pkg" / "sub" / "__init__.py").read_bytes()[16:])
    assert code.co_filename == str(final / "pkg" / "sub" / "__init__.py")
    assert "stage" not in code.co_filename


def test_optimize_levels_and_private_entries(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    _write_tree(stage)
    assert bytecode.compile_tree(str(stage), "/final", optimize=[0, 2], workers=1)
    init = stage / "pkg" / "__init__.py"
    assert _pyc(init, 0).exists()
    assert _pyc(init, 2).exists()
    assert not _pyc(init, 1).exists()
    private = stage / ".install-atomic-private" / "__pycache__"
    assert not private.exists(), "install-atomic's own entries must not be compiled"


def test_syntax_error_reports_failure(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    (stage / "bad").mkdir(parents=True)
    (stage / "bad" / "__init__.py").write_text("def (:\n")
    assert bytecode.compile_tree(str(stage), "/final", workers=1) is False


def test_parallel_compilation_matches_serial(tmp_path: Path) -> None:
    trees = {}
    for workers in (1, 0):
        stage = tmp_path / f"stage{workers}"
        pkg = stage / "big"
        pkg.mkdir(parents=True)
        for i in range(bytecode.PARALLEL_THRESHOLD + 5):
            (pkg / f"m{i}.py").write_text(f"V = {i}\n")
        assert bytecode.count_sources(str(stage)) == bytecode.PARALLEL_THRESHOLD + 5
        assert bytecode.compile_tree(str(stage), "/final", mode="checked-hash", workers=workers)
        trees[workers] = {
            p.relative_to(stage): p.read_bytes() for p in stage.rglob("*.pyc")
        }
    assert len(trees[0]) == bytecode.PARALLEL_THRESHOLD + 5
    assert trees[0] == trees[1]


# --------------------------------------------------------------------------- worker processes

#: Enough files for two workers (compile_tree gives each at least MIN_FILES_PER_WORKER).
WORKER_FILES = 60

SOURCES = {
    "pkg/__init__.py": '"""Doc: caf\u00e9."""\nfrom . import a\nX = {"k1", "k2", "k3"}\n',
    "pkg/a.py": "def f(x):\n    assert x, 'no'\n    return x in {1, 2, 3} and f'{x!r}'\n",
    "pkg/sub/__init__.py": "class C:\n    '''Docstring dropped at level 2.'''\n",
    "pkg/sub/caf\u00e9.py": "V = '\u00e9t\u00e9'\n",
    "pkg/data.txt": "not python\n",
    "top.py": "import sys\nif __debug__:\n    Y = sys.version\n",
    ".install-atomic-private/mod.py": "Y = 2\n",
    "pkg/.install-atomic-verify/skip.py": "Z = 3\n",
}


def _write_big_tree(stage: Path, *, broken: str | None = None) -> None:
    for rel, text in SOURCES.items():
        path = stage / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for i in range(WORKER_FILES):
        body = "".join(f"def f{k}(x):\n    return x + {k}\n\n" for k in range(i % 7))
        (stage / "pkg" / f"m{i:03d}.py").write_text(f'"""Module {i}."""\n{body}V = {i}\n')
    if broken:
        (stage / "pkg" / broken).write_text("def (:\n")
    # A symlinked directory is not followed, by compileall nor by the workers.
    (stage / "linked").symlink_to(stage / "pkg" / "sub", target_is_directory=True)
    when = 1_700_000_000
    for path in stage.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.utime(path, (when, when))


def _pycs(stage: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(stage)): p.read_bytes()
        for p in sorted(stage.rglob("*.pyc"))
    }


def _children_page_faults() -> int:
    """Minor page faults of this process's reaped children: grows when a child ran."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt


@pytest.mark.parametrize("levels", [[0], [1], [2], [0, 1, 2]], ids=lambda v: f"opt{v}")
@pytest.mark.parametrize("mode", sorted(bytecode.MODES))
def test_workers_write_what_compileall_writes(tmp_path: Path, mode: str,
                                              levels: list[int]) -> None:
    """The worker processes write the pycs ``compileall.compile_dir`` writes in this process
    for the same tree (same names, same bytes: final co_filename, optimize levels, flags),
    and skip the same entries (private ones, symlinked directories)."""
    reference, stage = tmp_path / "reference", tmp_path / "stage"
    _write_big_tree(reference)
    _write_big_tree(stage)
    final = str(tmp_path / "final" / "site-packages")
    assert compileall.compile_dir(
        str(reference), quiet=1, stripdir=str(reference), prependdir=final,
        optimize=levels, invalidation_mode=bytecode.MODES[mode],  # type: ignore[arg-type]
        rx=bytecode._Private(str(reference)),
    )
    assert 2 * getattr(bytecode, "MIN_FILES_PER_WORKER", 0) <= WORKER_FILES
    faults = _children_page_faults()
    assert bytecode.compile_tree(str(stage), final, optimize=levels, mode=mode, workers=2)
    assert _children_page_faults() > faults, "no worker process ran"
    expected = _pycs(reference)
    assert len(expected) == (WORKER_FILES + 5) * len(levels)
    assert not any(".install-atomic" in name or "linked" in name for name in expected)
    assert _pycs(stage) == expected


def test_serial_compilation_starts_no_process(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    _write_big_tree(stage)
    faults = _children_page_faults()
    assert bytecode.compile_tree(str(stage), "/final", workers=1)
    assert _children_page_faults() == faults
    assert len(_pycs(stage)) == WORKER_FILES + 5


@pytest.mark.parametrize("workers", [2, 1])
def test_errors_in_workers_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        workers: int) -> None:
    """A file that does not compile: False, compileall's message on stdout, every other
    file compiled at every level."""
    stage = tmp_path / "stage"
    _write_big_tree(stage, broken="bad.py")
    assert bytecode.compile_tree(str(stage), "/final", optimize=[0, 1],
                                 workers=workers) is False
    out = capsys.readouterr().out
    bad = stage / "pkg" / "bad.py"
    assert f"*** Error compiling {str(bad)!r}..." in out
    assert "SyntaxError" in out or "invalid syntax" in out
    assert not _pyc(bad, 0).exists() and not _pyc(bad, 1).exists()
    sources = [p for p in stage.rglob("*.py") if p != bad and ".install-atomic" not in str(p)
               and "linked" not in p.parts]
    assert len(sources) == WORKER_FILES + 5
    for source in sources:
        assert _pyc(source, 0).exists() and _pyc(source, 1).exists(), source


def _start_worker(parent: int) -> subprocess.Popen[bytes]:
    cmd = bytecode._worker_command()
    cmd[-1] = str(parent)
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def _job(stage: Path, files: list[tuple[str, ...]]) -> bytes:
    job = {
        "stage": str(stage), "final": "/final", "optimize": [0, 1, 2],
        "mode": "CHECKED_HASH", "files": files, "encoding": sys.getfilesystemencoding(),
        "tag": sys.implementation.cache_tag, "prefix": sys.pycache_prefix,
    }
    return json.dumps(job).encode() + b"\n"


def test_worker_exits_when_its_stdin_reaches_end_of_file(tmp_path: Path) -> None:
    """End-of-file on stdin (what a worker sees when the installer dies, on any system)
    ends the worker at once, in the middle of its files: exit status 70, not 0."""
    stage = tmp_path / "stage"
    pkg = stage / "pkg"
    pkg.mkdir(parents=True)
    body = "".join(f"def f{k}(x):\n    return x * {k}\n\n" for k in range(300))
    for i in range(2000):
        (pkg / f"m{i}.py").write_text(body)
    files = list(bytecode._sources(str(stage)))
    assert len(files) == 2000
    worker = _start_worker(os.getpid())
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(_job(stage, files))
    worker.stdin.close()  # as if the installer had died right after sending the job
    try:
        assert worker.wait(timeout=120) == 70
        assert worker.stdout.read() == b""
    finally:
        worker.kill()
        worker.wait()
        worker.stdout.close()
    compiled = sum(1 for _ in pkg.glob("__pycache__/*.pyc"))
    assert compiled < 3 * 2000, "the worker compiled everything instead of stopping"


def test_worker_of_a_dead_parent_exits_at_once(tmp_path: Path) -> None:
    """A worker whose parent is not the installer that started it (it died between fork
    and exec) does nothing: it does not even read its job."""
    stage = tmp_path / "stage"
    (stage / "pkg").mkdir(parents=True)
    (stage / "pkg" / "m.py").write_text("X = 1\n")
    worker = _start_worker(os.getpid() + 1)  # not its parent
    assert worker.stdin is not None and worker.stdout is not None
    try:
        assert worker.wait(timeout=120) == 70
    finally:
        worker.kill()
        worker.wait()
        with contextlib.suppress(BrokenPipeError):
            worker.stdin.close()
        worker.stdout.close()
    assert not (stage / "pkg" / "__pycache__").exists()


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/task"), reason="needs /proc")
def test_files_of_a_killed_worker_are_compiled_here(tmp_path: Path) -> None:
    """A worker that dies on its own (SIGKILL from someone else, the OOM killer): its
    files are compiled in this process; every pyc is there and True is returned."""
    stage = tmp_path / "stage"
    _write_big_tree(stage)
    body = "".join(f"def g{k}(x):\n    return x - {k}\n\n" for k in range(100))
    for i in range(300):  # enough work that the workers live for a while
        (stage / "pkg" / f"slow{i}.py").write_text(body)
    killed: list[int] = []

    def kill_first_worker() -> None:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for pid in children(os.getpid()):
                if b"install-atomic compile worker" in cmdline(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    break
            time.sleep(0.001)

    killer = threading.Thread(target=kill_first_worker)
    killer.start()
    try:
        ok = bytecode.compile_tree(str(stage), "/final", optimize=[0, 2], workers=2)
    finally:
        killed.append(0)  # stop the thread if it found nothing
        killer.join()
    assert killed[0] != 0, "never saw a compile worker"
    assert ok
    assert len(_pycs(stage)) == 2 * (WORKER_FILES + 5 + 300)
