"""Recovery never touches a live transaction.

0.1.0 judged a journal abandoned when the destination's default lock was free.  But an
install with ``--root`` locks a file outside the tree, and a deleted ``<venv>/.lock`` is
re-created by the next locker: in both cases ``recover`` "rolled back" a commit that was
still running, and the installer then reported success with half the old version in place.
Now a journal names its lock and its staging directories are locked by their installer for
its whole life; either held means the transaction is live.

Each test pauses a real installer process in the middle of its commit (after the first
rename), so the interleaving is exact, not timed.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from enginekit import (
    Scenario,
    diff,
    digest,
    leftovers,
    start_paused_commit,
    upgrade_scenario,
    without_private,
)
from install_atomic.engine import locking, recovery, transaction
from install_atomic.errors import LockTimeout


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    s = upgrade_scenario(tmp_path / "env")
    s.build()
    return s


def _stop(proc: Any) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


def test_recover_leaves_alone_a_commit_that_holds_another_lock(
    scenario: Scenario, tmp_path: Path
) -> None:
    """As ``setup.py install_atomic --root`` does: the installer locks a file outside the
    destination; ``recover`` takes the default lock, which is free."""
    other_lock = tmp_path / "elsewhere.lock"
    proc = start_paused_commit(scenario, 1, tmp_path, lock_path=str(other_lock))
    try:
        mid = digest(scenario.prefix)
        (item,) = recovery.recover(str(scenario.site), timeout=5)
        assert item.outcome == "in progress, left alone", item
        assert digest(scenario.prefix) == mid, "recover touched a live transaction"
        (status,) = recovery.status(str(scenario.site))
        assert status.live and status.pid == proc.pid
    finally:
        _stop(proc)
    (item,) = recovery.recover(str(scenario.site))
    assert item.outcome == "rolled back"
    assert leftovers(scenario.prefix) == []


def test_recover_leaves_alone_a_commit_whose_lock_file_was_deleted(
    scenario: Scenario, tmp_path: Path
) -> None:
    proc = start_paused_commit(scenario, 1, tmp_path)
    try:
        lock = Path(locking.lock_path_for(str(scenario.site)))
        assert proc.pid in locking.lock_holders(str(lock))
        lock.unlink()  # a careless clean-up; the next locker makes a new inode
        mid = digest(scenario.prefix)
        (item,) = recovery.recover(str(scenario.site), timeout=5)
        assert item.outcome == "in progress, left alone"
        assert "still locked by its installer" in item.reason
        assert digest(scenario.prefix) == mid, "recover touched a live transaction"
    finally:
        _stop(proc)
    (item,) = recovery.recover(str(scenario.site))
    assert item.outcome == "rolled back"


def test_an_install_waits_for_a_live_commit_under_another_lock(
    scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second installer that finds a live journal waits for it (within its lock
    timeout) instead of recovering it, then recovers it once its installer is gone."""
    expected = scenario.expected(tmp_path / "expected")
    proc = start_paused_commit(scenario, 1, tmp_path, lock_path=str(tmp_path / "x.lock"))
    waiting = threading.Event()
    real_sleep = transaction.time.sleep

    def sleep(seconds: float) -> None:
        waiting.set()
        real_sleep(seconds)

    monkeypatch.setattr(transaction.time, "sleep", sleep)
    warnings: list[str] = []
    errors: list[BaseException] = []

    def second() -> None:
        try:
            scenario.commit(lock_timeout=-1, warn=warnings.append)
        except BaseException as exc:
            errors.append(exc)

    try:
        mid = without_private(digest(scenario.prefix))  # the second one stages beside it
        thread = threading.Thread(target=second)
        thread.start()
        assert waiting.wait(timeout=300), "the second install never waited"
        assert without_private(digest(scenario.prefix)) == mid, "it touched a live commit"
    finally:
        _stop(proc)
    thread.join(timeout=300)
    assert not thread.is_alive() and errors == []
    assert any("rolled back" in w for w in warnings), warnings
    actual = digest(scenario.prefix)
    assert actual == expected, diff(actual, expected)


def test_an_install_gives_up_on_a_live_commit_after_its_lock_timeout(
    scenario: Scenario, tmp_path: Path
) -> None:
    proc = start_paused_commit(scenario, 1, tmp_path, lock_path=str(tmp_path / "x.lock"))
    try:
        mid = digest(scenario.prefix)
        with pytest.raises(LockTimeout) as info:
            scenario.commit(lock_timeout=0)
        message = str(info.value)
        assert "waiting for the install of demopkg" in message and ".journal" in message
        assert digest(scenario.prefix) == mid
    finally:
        _stop(proc)
    assert os.path.isdir(scenario.site)
