"""Every mutating filesystem call of a commit, and of a recovery, made to fail in turn.

A counting run of the upgrade scenario records each mutating call that touches the
sandbox (``os.rename/replace/link/unlink/rmdir/mkdir/chmod/write/fsync``, ``os.open``
for writing, ``primitives._renameat2``; ``shutil.rmtree`` and ``tempfile.mkdtemp`` go
through them too).  Then, for every call *i* and every errno, a fresh copy of the
scenario is installed with call *i* failing.  Nothing is listed by hand: a call the
engine gains later is enumerated as well.

After each faulted run:

* the prefix is exactly the old version, or (the failure came after the last rename) the
  complete new version, possibly with the journal and backups left for ``recover``;
* the exception, if any, is an :class:`InstallAtomicError` whose message names a path;
* ``recover`` then leaves exactly one version and no ``.install-atomic*`` entry, and a
  normal commit installs the new version exactly.

Variants: with ``renameat2`` (exchange) and without it (two-rename fallback, as on NFS);
transient faults and sticky ones (every later call of that function on that path fails
too); ``EINVAL`` from ``renameat2`` (must fall back and succeed); a second fault during
the rollback of a failed step; faults during ``recover`` itself.

The sandbox is on tmpfs (``/dev/shm``) when there is one: the durable commit fsyncs ~30
times and a disk makes the ~1,100 runs take minutes instead of seconds.  Crashed states
for the recovery faults come from a forked child killed with ``os._exit`` (no cleanup
code of the engine runs, as after a real kill).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from enginekit import (
    Call,
    Digest,
    Injector,
    Scenario,
    crash_in_child,
    digest,
    release_stages,
    staged_entries,
    upgrade_scenario,
    without_private,
    write_tree,
)
from install_atomic.engine import journal as journal_mod
from install_atomic.engine import primitives, recovery
from install_atomic.engine.transaction import Transaction
from install_atomic.errors import CommitError, InstallAtomicError

Mode = Literal["exchange", "renames"]
MODES: tuple[Mode, ...] = ("exchange", "renames")
ERRNOS = {"ENOSPC": errno.ENOSPC, "EIO": errno.EIO, "EACCES": errno.EACCES, "EXDEV": errno.EXDEV}
RENAME_CALLS = ("_renameat2", "rename", "replace", "link")
#: Steps of the upgrade scenario (see test_recovery.UPGRADE_STEPS).
STEPS = 6


@dataclass
class Result:
    """What one faulted run left behind."""

    fault: str
    error: str | None = None
    error_ok: bool = True
    state: str = ""
    journal_left: bool = False
    after_recover: str = ""
    after_commit: str = ""

    def line(self) -> str:
        def short(text: str | None, limit: int = 260) -> str:
            text = str(text)
            return text if len(text) <= limit else text[: limit - 3] + "..."

        return (
            f"{self.fault}\n      raised: {short(self.error)}\n      state: {self.state}"
            f" (journal left: {self.journal_left})\n      after recover:"
            f" {short(self.after_recover)}\n      after a new commit: {short(self.after_commit)}"
        )


def report(bad: Sequence[Result], total: int, limit: int = 12) -> str:
    """The failed runs, one paragraph each, sandbox paths shortened to ``<sandbox>``."""
    lines = [f"{len(bad)} of {total} faulted runs went wrong:"]
    lines += ["  " + r.line() for r in bad[:limit]]
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more")
    sandbox = r"[^\s'\"]*/(?:install-atomic-faults-[^/\s'\"]*|faults\d*)"
    return re.sub(sandbox, "<sandbox>", "\n".join(lines))


def expect_none(bad: Sequence[Result], total: int) -> None:
    if bad:
        pytest.fail(report(bad, total), pytrace=False)


@dataclass
class Harness:
    base: Path
    scenario: Scenario
    old: Digest
    new: Digest
    cache: dict[tuple[object, ...], list[Result]] = field(default_factory=dict)
    calls_cache: dict[tuple[object, ...], list[Call]] = field(default_factory=dict)

    # -- observing
    def classify(self) -> str:
        tree = digest(self.scenario.prefix)
        if tree == self.old:
            return "old"
        if tree == self.new:
            return "new"
        stripped = without_private(tree)
        if stripped == self.old:
            return "old+leftovers"
        if stripped == self.new:
            return "new+leftovers"
        differ = sorted(k for k in {*stripped, *self.new} if stripped.get(k) != self.new.get(k))
        return f"mixed (differs from new: {', '.join(differ[:4])})"

    def describe_error(self, exc: BaseException, result: Result) -> None:
        result.error = f"{type(exc).__name__}: {exc}"
        result.error_ok = isinstance(exc, InstallAtomicError) and str(self.base) in str(exc)

    @staticmethod
    def _mode(stack: ExitStack, mode: Mode) -> None:
        if mode == "renames":
            mp = stack.enter_context(pytest.MonkeyPatch.context())
            mp.setattr(primitives, "_renameat2", None)

    # -- running
    def commit_with(self, inj: Injector, mode: Mode) -> tuple[Result, list[Transaction]]:
        """Build the old state, then install the new version with *inj* active."""
        self.scenario.build()
        result = Result(fault="")
        txns: list[Transaction] = []
        with ExitStack() as stack:
            self._mode(stack, mode)
            stack.enter_context(inj.installed())
            try:
                with self.scenario.transaction() as txn:
                    txns.append(txn)
                    by_root = staged_entries(self.scenario.site, self.scenario.new)
                    stages = {root: txn.stage(root) for root in by_root}
                    with inj.paused():
                        for root, entries in by_root.items():
                            write_tree(stages[root], entries)
                    txn.commit()
            except Exception as exc:
                self.describe_error(exc, result)
        for txn in txns:  # the installer exits: the kernel drops its staging locks
            release_stages(txn)
        return result, txns

    def finish(self, result: Result) -> Result:
        """Record the state, then recover and commit normally, recording both."""
        result.state = self.classify()
        result.journal_left = bool(journal_mod.find(str(self.scenario.site)))
        try:
            recovery.recover(str(self.scenario.site), timeout=10.0)
        except Exception as exc:
            result.after_recover = f"recover raised {type(exc).__name__}: {exc}"
        else:
            result.after_recover = self.classify()
        try:
            self.scenario.commit()
        except Exception as exc:
            result.after_commit = f"commit raised {type(exc).__name__}: {exc}"
        else:
            result.after_commit = self.classify()
        return result

    def count(self, mode: Mode, fail_at: Sequence[int] = ()) -> list[Call]:
        key = ("count", mode, tuple(fail_at))
        if key not in self.cache:
            inj = Injector(self.base, fail_at)
            result, _ = self.commit_with(inj, mode)
            self.finish(result)
            self.cache[key] = [result]
            self.calls_cache[key] = inj.calls
        return self.calls_cache[key]

    def faulted(
        self, mode: Mode, fail_at: Sequence[int], err: int, *, sticky: bool = False
    ) -> Result:
        inj = Injector(self.base, fail_at, err, sticky=sticky)
        result, _ = self.commit_with(inj, mode)
        fired = "; ".join(str(c).replace(str(self.base), "") for c in inj.fired[:2])
        kind = "sticky " if sticky else ""
        result.fault = f"[{mode}] {kind}{errno.errorcode[err]} at {fired or 'nothing fired'}"
        return self.finish(result)

    def single(self, mode: Mode, err: int, *, sticky: bool = False) -> list[Result]:
        key = ("single", mode, err, sticky)
        if key not in self.cache:
            calls = self.count(mode)
            self.cache[key] = [self.faulted(mode, [c.index], err, sticky=sticky) for c in calls]
        return self.cache[key]

    def apply_phase(self, mode: Mode) -> list[Call]:
        """The calls that make the plan's renames (after the journal is in place)."""
        calls = self.count(mode)
        journal = next(
            c.index for c in calls if c.func == "replace" and c.paths[0].endswith(".journal.tmp")
        )
        out: list[Call] = []
        for call in calls[journal + 1 :]:
            if call.func in RENAME_CALLS:
                out.append(call)
            elif out:
                break
        return out

    def double(self, mode: Mode) -> list[Result]:
        key = ("double", mode)
        if key not in self.cache:
            results = []
            for first in self.apply_phase(mode):
                later = self.count(mode, [first.index])
                for second in later[first.index + 1 :]:
                    results.append(self.faulted(mode, [first.index, second.index], errno.EIO))
            self.cache[key] = results
        return self.cache[key]

    # -- recovery
    def crash(self, mode: Mode, k: int) -> None:
        self.scenario.build()
        with ExitStack() as stack:
            self._mode(stack, mode)
            crash_in_child(self.scenario, k)

    def recover_faulted(self, mode: Mode, k: int, err: int) -> list[Result]:
        key = ("recover", mode, k, err)
        if key in self.cache:
            return self.cache[key]
        self.crash(mode, k)
        counter = Injector(self.base)
        with ExitStack() as stack:
            self._mode(stack, mode)
            stack.enter_context(counter.installed())
            recovery.recover(str(self.scenario.site), timeout=10.0)
        results = []
        for call in counter.calls:
            self.crash(mode, k)
            inj = Injector(self.base, call.index, err)
            result = Result(fault="")
            with ExitStack() as stack:
                self._mode(stack, mode)
                stack.enter_context(inj.installed())
                try:
                    recovery.recover(str(self.scenario.site), timeout=10.0)
                except Exception as exc:
                    self.describe_error(exc, result)
            fired = "; ".join(str(c).replace(str(self.base), "") for c in inj.fired)
            result.fault = f"[{mode}, crash after step {k}] {errno.errorcode[err]} at {fired}"
            results.append(self.finish(result))
        self.cache[key] = results
        return results


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        base = Path(tempfile.mkdtemp(prefix="install-atomic-faults-", dir=shm))
    else:
        base = tmp_path_factory.mktemp("faults")
    try:
        scenario = upgrade_scenario(base / "env")
        new = scenario.expected(base / "reference")
        yield Harness(base, scenario, scenario.build(), new)
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- the enumeration itself --------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_counting_run_sees_every_kind_of_mutating_call(harness: Harness, mode: Mode) -> None:
    calls = harness.count(mode)
    (counting,) = harness.cache[("count", mode, ())]
    assert (counting.error, counting.state) == (None, "new"), counting.line()
    funcs = {c.func for c in calls}
    renames = {"_renameat2"} if mode == "exchange" else {"rename", "replace", "link"}
    assert {"mkdir", "open", "write", "fsync", "replace", "unlink", "rmdir"} | renames <= funcs
    assert len(harness.apply_phase(mode)) >= STEPS
    assert len(calls) > 40


# -- one transient fault ----------------------------------------------------------------------


def bad_state(r: Result, *, sticky: bool = False) -> bool:
    if r.error is None:
        return r.state != "new"
    allowed = {"old", "new", "new+leftovers"} | ({"old+leftovers"} if sticky else set())
    return r.state not in allowed or (r.state == "new+leftovers" and not r.journal_left)


def bad_recovery(r: Result) -> bool:
    expected = "old" if r.state.startswith("old") else "new"
    return r.after_recover != expected or r.after_commit != "new"


@pytest.mark.parametrize("err", ERRNOS)
@pytest.mark.parametrize("mode", MODES)
def test_fault_leaves_the_old_or_the_new_version(harness: Harness, mode: Mode, err: str) -> None:
    results = harness.single(mode, ERRNOS[err])
    assert results
    bad = [r for r in results if bad_state(r)]
    expect_none(bad, len(results))


@pytest.mark.parametrize("err", ERRNOS)
@pytest.mark.parametrize("mode", MODES)
def test_fault_raises_install_atomic_error_naming_a_path(
    harness: Harness, mode: Mode, err: str
) -> None:
    results = harness.single(mode, ERRNOS[err])
    assert any(r.error is not None for r in results)
    bad = [r for r in results if not r.error_ok]
    expect_none(bad, len(results))


@pytest.mark.parametrize("err", ERRNOS)
@pytest.mark.parametrize("mode", MODES)
def test_fault_then_recover_and_commit_give_exactly_one_version(
    harness: Harness, mode: Mode, err: str
) -> None:
    results = harness.single(mode, ERRNOS[err])
    bad = [r for r in results if bad_recovery(r)]
    expect_none(bad, len(results))


def test_einval_from_renameat2_falls_back_and_installs(harness: Harness) -> None:
    calls = [c for c in harness.count("exchange") if c.func == "_renameat2"]
    # One per step, plus the NOREPLACE move that brings a new directory next to the old.
    assert len(calls) == STEPS + 1
    results = [harness.faulted("exchange", [c.index], errno.EINVAL) for c in calls]
    bad = [r for r in results if (r.error, r.state) != (None, "new") or bad_recovery(r)]
    expect_none(bad, len(results))


# -- persistent faults ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_sticky_fault_leaves_a_recoverable_version(harness: Harness, mode: Mode) -> None:
    results = harness.single(mode, errno.EIO, sticky=True)
    bad = [r for r in results if bad_state(r, sticky=True) or bad_recovery(r)]
    expect_none(bad, len(results))


@pytest.mark.parametrize("mode", MODES)
def test_sticky_fault_raises_install_atomic_error_naming_a_path(
    harness: Harness, mode: Mode
) -> None:
    results = harness.single(mode, errno.EIO, sticky=True)
    bad = [r for r in results if not r.error_ok]
    expect_none(bad, len(results))


# -- a second fault while rolling back -------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_fault_during_rollback_is_recoverable(harness: Harness, mode: Mode) -> None:
    """A step fails, then a call of the rollback fails too: the prefix may be half
    rolled back, but then the journal is kept and ``recover`` restores the old version
    exactly."""
    results = harness.double(mode)
    assert len(results) > STEPS
    bad = [
        r
        for r in results
        if r.error is None
        or (r.state != "old" and not r.journal_left)
        or r.after_recover != "old"
        or r.after_commit != "new"
    ]
    expect_none(bad, len(results))


@pytest.mark.parametrize("mode", MODES)
def test_fault_during_rollback_raises_commit_error(harness: Harness, mode: Mode) -> None:
    results = harness.double(mode)
    bad = [r for r in results if not (r.error or "").startswith(CommitError.__name__ + ":")]
    bad += [r for r in results if r not in bad and not r.error_ok]
    expect_none(bad, len(results))


# -- faults while recovering ----------------------------------------------------------------


@pytest.mark.parametrize("k", [3, STEPS], ids=["roll-back", "roll-forward"])
@pytest.mark.parametrize("mode", MODES)
def test_fault_during_recover_leaves_it_resumable(harness: Harness, mode: Mode, k: int) -> None:
    expected = "new" if k == STEPS else "old"
    results = [
        r for err in (errno.EIO, errno.ENOSPC) for r in harness.recover_faulted(mode, k, err)
    ]
    assert len(results) > 5
    bad = [
        r
        for r in results
        if r.after_recover != expected
        or r.after_commit != "new"
        or (r.error is None and r.state != expected)
    ]
    expect_none(bad, len(results))


@pytest.mark.parametrize("k", [3, STEPS], ids=["roll-back", "roll-forward"])
@pytest.mark.parametrize("mode", MODES)
def test_fault_during_recover_raises_install_atomic_error(
    harness: Harness, mode: Mode, k: int
) -> None:
    results = [
        r for err in (errno.EIO, errno.ENOSPC) for r in harness.recover_faulted(mode, k, err)
    ]
    bad = [r for r in results if not r.error_ok]
    expect_none(bad, len(results))
