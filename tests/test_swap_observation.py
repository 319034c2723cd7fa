"""Atomicity of a directory swap, observed by a separate process.

The engine replaces a directory with ``steps.apply`` of a swap step: the new directory is
renamed next to the old one, then the two are exchanged with one
``renameat2(RENAME_EXCHANGE)`` (``primitives.exchange``).  No reader can ever find the
destination missing.  Where the kernel has no exchange, the fallback makes two renames
(old aside, new in place), between which the destination does not exist.

A real separate process ``lstat``s the destination in a tight loop and counts how often it
is missing, while this process swaps two directories back and forth through
``steps.apply``.  Nothing depends on timing:

1. the control runs first: ``primitives.exchange`` patched to report "unsupported" (the
   two-rename fallback), swapping until the reader has seen a gap, which proves the reader
   can see one on this machine, under this load;
2. then the real exchange runs at least five times as many swaps (at least 10,000), and
   until the reader has made five times as many ``lstat`` calls as it needed to catch the
   control's gap; the reader must see no gap at all.
"""

from __future__ import annotations

import mmap
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from install_atomic.engine import primitives, steps
from install_atomic.engine.plan import Step

#: Safety caps of each phase; the test fails (it proves nothing) if one is reached.
MAX_SWAPS = 2_000_000
MAX_SECONDS = 600.0
MIN_SWAPS = 10_000
FACTOR = 5

#: The reader: counters in a shared 24-byte file (reads, gaps, stop flag at byte 16).
READER = r"""
import mmap, os, struct, sys
path, counters = sys.argv[1], sys.argv[2]
with open(counters, "r+b") as f:
    shared = mmap.mmap(f.fileno(), 24)
lstat = os.lstat
reads = gaps = 0
sys.stdout.write("ready\n")
sys.stdout.flush()
while not shared[16]:
    for _ in range(1024):
        try:
            lstat(path)
        except FileNotFoundError:
            gaps += 1
            struct.pack_into("q", shared, 8, gaps)
    reads += 1024
    struct.pack_into("q", shared, 0, reads)
"""


@dataclass
class Reader:
    proc: subprocess.Popen[str]
    shared: mmap.mmap

    @property
    def reads(self) -> int:
        value: int = struct.unpack_from("q", self.shared, 0)[0]
        return value

    @property
    def gaps(self) -> int:
        value: int = struct.unpack_from("q", self.shared, 8)[0]
        return value

    def alive(self) -> None:
        if self.proc.poll() is not None:
            assert self.proc.stderr is not None
            pytest.fail(f"the reader exited ({self.proc.returncode}): {self.proc.stderr.read()}")


@contextmanager
def reader_of(path: Path, work: Path) -> Iterator[Reader]:
    """A separate process lstat-ing *path* until the block ends; its counters stay
    readable after the block."""
    counters = work / f"counters-{len(list(work.glob('counters-*')))}"
    counters.write_bytes(bytes(24))
    with counters.open("r+b") as f:
        shared = mmap.mmap(f.fileno(), 24)
    with subprocess.Popen(
        [sys.executable, "-c", READER, str(path), str(counters)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    ) as proc:
        reader = Reader(proc, shared)
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n", proc.stderr.read() if proc.stderr else ""
            yield reader
            reader.alive()
        finally:
            shared[16] = 1
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, proc.returncode


class Swapper:
    """Two directories, ``dest`` and a staged one, swapped back and forth by swap steps.

    The first swap takes the new version from a staging directory as the engine does; each
    later swap takes back the old entry from wherever the previous step left it.
    """

    def __init__(self, parent: Path) -> None:
        self.parent = parent
        self.dest = parent / "demopkg"
        stage = parent / ".install-atomic-stage"
        for directory, version in ((self.dest, "1"), (stage / "demopkg", "2")):
            directory.mkdir(parents=True)
            (directory / "__init__.py").write_text(f"VERSION = {version!r}\n")
        self.source = str(stage / "demopkg")
        self.inodes = [os.lstat(self.dest).st_ino, os.lstat(self.source).st_ino]
        self.swaps = 0
        self._backups = [str(parent / f".install-atomic-swap-{n}.bak") for n in range(2)]

    def _free_backup(self) -> str:
        for backup in self._backups:
            if backup != self.source and not any(
                os.path.lexists(p) for p in (backup, backup + "-old")
            ):
                return backup
        raise AssertionError(f"no free backup name in {os.listdir(self.parent)}")

    def swap(self) -> None:
        step = Step("swap", str(self.dest), self.source, backup=self._free_backup(), kind="dir")
        steps.apply(step)
        self.swaps += 1
        assert os.lstat(self.dest).st_ino == self.inodes[self.swaps % 2], "no swap was made"
        old = [p for p in (step.backup, step.aside, step.source) if os.path.lexists(p)]
        assert len(old) == 1, old
        self.source = old[0]


def kernel_exchanges(tmp_path: Path) -> bool:
    """Whether the kernel and the filesystem of *tmp_path* exchange two directories (asked
    of ``renameat2`` itself: ``primitives.exchange`` is what is under test)."""
    assert primitives._renameat2 is not None
    a, b = tmp_path / "probe-a", tmp_path / "probe-b"
    a.mkdir()
    b.mkdir()
    ino = os.lstat(a).st_ino
    try:
        primitives._renameat2(str(a), str(b), primitives.RENAME_EXCHANGE)
        return os.lstat(b).st_ino == ino
    except OSError:
        return False
    finally:
        a.rmdir()
        b.rmdir()


def test_exchange_shows_no_gap_where_two_renames_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if primitives._renameat2 is None:
        pytest.skip("this kernel / libc has no renameat2: there is no atomic exchange to test")
    if not kernel_exchanges(tmp_path):
        pytest.skip(f"the filesystem of {tmp_path} has no RENAME_EXCHANGE")
    swapper = Swapper(tmp_path / "site")

    # 1. The control: the two-rename fallback must show a gap to the reader.
    started = time.monotonic()
    with monkeypatch.context() as mp:
        mp.setattr(primitives, "exchange", lambda _a, _b: False)
        with reader_of(swapper.dest, tmp_path) as control:
            while control.gaps == 0:
                if swapper.swaps >= MAX_SWAPS or time.monotonic() - started > MAX_SECONDS:
                    pytest.fail(
                        f"the reader saw no gap in {swapper.swaps} swaps by two renames"
                        f" ({control.reads} lstat calls): it cannot tell an exchange from"
                        " two renames on this machine, so the test proves nothing"
                    )
                swapper.swap()
                if swapper.swaps % 256 == 0:
                    control.alive()
            control_swaps, control_reads = swapper.swaps, max(control.reads, 1024)
    assert control.gaps > 0

    # 2. The real exchange: many more swaps, many more reads, no gap.
    wanted = max(FACTOR * control_swaps, MIN_SWAPS)
    start, started = swapper.swaps, time.monotonic()
    with reader_of(swapper.dest, tmp_path) as real:
        while swapper.swaps - start < wanted or real.reads < FACTOR * control_reads:
            if real.gaps:
                break
            if swapper.swaps - start >= MAX_SWAPS or time.monotonic() - started > MAX_SECONDS:
                pytest.fail(
                    f"the reader made only {real.reads} lstat calls during"
                    f" {swapper.swaps - start} exchanges (the control needed {control_reads}):"
                    " it was starved, nothing can be concluded"
                )
            swapper.swap()
            if swapper.swaps % 256 == 0:
                real.alive()
        exchanges = swapper.swaps - start
    print(f"control: gap after {control_swaps} swaps / {control_reads} reads;"
          f" exchange: {exchanges} swaps / {real.reads} reads, {real.gaps} gaps")
    assert real.gaps == 0, (
        f"the reader found {swapper.dest} missing {real.gaps} times during {exchanges} swaps"
        f" by exchange (the control, two renames, needed {control_swaps} swaps for one)"
    )
    assert (swapper.dest / "__init__.py").read_text() in ("VERSION = '1'\n", "VERSION = '2'\n")
