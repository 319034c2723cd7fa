"""install_atomic.engine.recovery: a commit killed after any step is rolled back (or, after the
last rename, forward) to exactly one version; stray staging is cleaned only when dead."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from enginekit import (
    SRC_DIR,
    Scenario,
    crash_in_child,
    diff,
    digest,
    leftovers,
    run_crashing_commit,
    start_paused_commit,
    upgrade_scenario,
)
from install_atomic.engine import journal as journal_mod
from install_atomic.engine import primitives, recovery, staging
from install_atomic.errors import (
    DestinationError,
    InstallAtomicError,
    LockTimeout,
    RecoveryError,
)

#: Steps of the upgrade scenario: swap demopkg/, add demopkg_extra.py, swap bin/demo-tool,
#: add the egg-info, remove the old dist-info, remove demopkg_helper.py.
UPGRADE_STEPS = 6


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return upgrade_scenario(tmp_path / "env")


def trees(scenario: Scenario, tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(old, new): the prefix before and after a perfect install."""
    old = scenario.build()
    return old, scenario.expected(tmp_path / "reference")


def assert_tree(scenario: Scenario, expected: dict[str, str], what: str) -> None:
    actual = digest(scenario.prefix)
    assert actual == expected, f"{what}:\n{diff(actual, expected)}"


@pytest.mark.parametrize("k", range(UPGRADE_STEPS + 1))
def test_crash_after_step_k_recovers_to_one_version(
    scenario: Scenario, tmp_path: Path, k: int
) -> None:
    old, new = trees(scenario, tmp_path)
    child = run_crashing_commit(scenario, k, tmp_path)
    assert child.returncode == 137, child.stderr
    assert "completed" not in child.stdout

    site = str(scenario.site)
    (status,) = recovery.status(site)
    assert (status.project, status.pid, status.steps, status.done) == (
        "demopkg",
        child.pid,
        UPGRADE_STEPS,
        k,
    )
    assert status.live is False
    assert os.path.basename(status.journal).startswith(".install-atomic-")
    assert leftovers(scenario.prefix), "a crashed commit leaves its journal and staging"

    done = recovery.recover(site)
    outcome = "rolled forward" if k == UPGRADE_STEPS else "rolled back"
    assert [(r.journal, r.project, r.outcome) for r in done] == [
        (status.journal, "demopkg", outcome)
    ]
    assert_tree(scenario, new if k == UPGRADE_STEPS else old, f"after recovering from step {k}")
    assert recovery.status(site) == []
    assert recovery.recover(site) == [], "recovery is idempotent"

    scenario.commit()
    assert_tree(scenario, new, "after a normal commit")


def test_status_sees_a_live_installer_and_recover_waits_for_it(
    scenario: Scenario, tmp_path: Path
) -> None:
    old, _ = trees(scenario, tmp_path)
    proc = start_paused_commit(scenario, 2, tmp_path)
    try:
        (status,) = recovery.status(str(scenario.site))
        assert (status.pid, status.done, status.live) == (proc.pid, 2, True)
        mid = digest(scenario.prefix)
        with pytest.raises(LockTimeout) as info:
            recovery.recover(str(scenario.site), timeout=0.3)
        assert info.value.holder == proc.pid
        del info  # its traceback keeps the lock object (a filelock singleton) alive
        assert digest(scenario.prefix) == mid, "recover must not touch a live transaction"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    (status,) = recovery.status(str(scenario.site))
    assert status.live is False
    assert [r.outcome for r in recovery.recover(str(scenario.site))] == ["rolled back"]
    assert_tree(scenario, old, "after killing the paused installer and recovering")


@pytest.mark.parametrize("entry", ["demopkg", "bin"])
def test_crash_inside_a_two_rename_swap(scenario: Scenario, tmp_path: Path, entry: str) -> None:
    """Without an atomic exchange a swap is two calls; a crash between them leaves the
    old entry at its backup (directory) or an extra hard link (file)."""
    old, _ = trees(scenario, tmp_path)
    dest = str(scenario.bin / "demo-tool") if entry == "bin" else str(scenario.site / "demopkg")

    def prepare() -> None:  # in the child
        def no_exchange(a: str, b: str, flags: int) -> None:
            raise OSError(errno.EINVAL, "unsupported", a)

        real_rename, real_replace = os.rename, os.replace

        def rename(src: str, dst: str) -> None:
            if dst == dest and ".install-atomic" in src:
                os._exit(137)
            real_rename(src, dst)

        def replace(src: str, dst: str) -> None:
            if dst == dest:
                os._exit(137)
            real_replace(src, dst)

        primitives._renameat2 = no_exchange
        os.rename, os.replace = rename, replace

    crash_in_child(scenario, -1, prepare)
    if entry == "demopkg":
        assert not os.path.lexists(dest), "the crash is between the two renames"
    else:
        assert os.stat(dest).st_nlink == 2, "the backup link exists, the replace did not happen"
    assert [r.outcome for r in recovery.recover(str(scenario.site))] == ["rolled back"]
    assert_tree(scenario, old, "after recovery")


def test_crash_during_the_final_cleanup_rolls_forward(scenario: Scenario, tmp_path: Path) -> None:
    _, new = trees(scenario, tmp_path)

    def prepare() -> None:  # in the child: die after the second removal of the cleanup
        real = staging.remove_tree
        removed: list[str] = []

        def remove_tree(path: str) -> None:
            if len(removed) == 2:
                os._exit(137)
            real(path)
            removed.append(path)

        staging.remove_tree = remove_tree

    crash_in_child(scenario, -1, prepare)
    assert leftovers(scenario.prefix)
    assert [r.outcome for r in recovery.recover(str(scenario.site))] == ["rolled forward"]
    assert_tree(scenario, new, "after rolling forward")


def test_a_committed_entry_replaced_after_the_commit_still_rolls_forward(
    scenario: Scenario, tmp_path: Path
) -> None:
    """Killed during the cleanup, after a backup was deleted; then another process
    replaces a committed entry (a compileall rewriting a pyc gives it a new inode).
    The journal says committed: recovery rolls forward, never restoring the
    half-deleted old version (0.1.0 judged by the entries alone and rolled back)."""
    _, new = trees(scenario, tmp_path)

    def prepare() -> None:  # in the child: die after the first removal of the cleanup
        real = staging.remove_tree
        removed: list[str] = []

        def remove_tree(path: str) -> None:
            if len(removed) == 1:
                os._exit(137)
            real(path)
            removed.append(path)

        staging.remove_tree = remove_tree

    crash_in_child(scenario, -1, prepare)
    (journal_path,) = journal_mod.find(str(scenario.site))
    assert journal_mod.load(journal_path).committed
    tool = scenario.bin / "demo-tool"
    data, mode = tool.read_bytes(), tool.stat().st_mode
    tool.unlink()
    tool.write_bytes(data)  # same content, a new inode: "not done" by identity
    os.chmod(tool, mode)
    assert [r.outcome for r in recovery.recover(str(scenario.site))] == ["rolled forward"]
    assert_tree(scenario, new, "after rolling forward")


def test_a_journal_is_marked_committed_only_after_every_rename(
    scenario: Scenario, tmp_path: Path
) -> None:
    """Killed after the renames but before the journal is marked: not committed, and
    recovery decides by the entries (all done: forward)."""
    _, new = trees(scenario, tmp_path)

    def prepare() -> None:
        def mark_committed(self: journal_mod.Journal) -> None:
            os._exit(137)

        journal_mod.Journal.mark_committed = mark_committed  # type: ignore[method-assign]

    crash_in_child(scenario, -1, prepare)
    (journal_path,) = journal_mod.find(str(scenario.site))
    assert not journal_mod.load(journal_path).committed
    assert [r.outcome for r in recovery.recover(str(scenario.site))] == ["rolled forward"]
    assert_tree(scenario, new, "after rolling forward")


def test_recover_with_nothing_to_do_changes_nothing(scenario: Scenario) -> None:
    old = scenario.build()
    assert recovery.recover(str(scenario.site)) == []
    assert recovery.status(str(scenario.site)) == []
    assert digest(scenario.prefix) == old
    missing = str(scenario.prefix / "missing")
    with pytest.raises(DestinationError) as info:
        recovery.recover(missing)
    assert missing in str(info.value)
    assert not os.path.exists(missing)


def test_half_written_journal_is_deleted(scenario: Scenario) -> None:
    old = scenario.build()
    tmp = scenario.site / ".install-atomic-123-abcd.journal.tmp"
    tmp.write_text('{"format": 1, "txid": "12')  # a crash during the journal's write
    assert recovery.status(str(scenario.site)) == []
    assert recovery.recover(str(scenario.site)) == []
    assert digest(scenario.prefix) == old


_MAKE_STAGE = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {src!r})
    from install_atomic.engine.staging import Stage
    stage = Stage(sys.argv[1])
    with open(os.path.join(stage.path, "work.py"), "w") as f:
        f.write("in progress")
    print(stage.path, flush=True)
    if sys.argv[2] == "live":
        sys.stdin.read()
    os._exit(0)
    """
)


def test_stray_staging_is_removed_only_when_its_owner_is_dead(
    scenario: Scenario, tmp_path: Path
) -> None:
    old = scenario.build()
    code = _MAKE_STAGE.format(src=str(SRC_DIR))
    site = str(scenario.site)
    dead = subprocess.run(
        [sys.executable, "-c", code, site, "dead"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    live_proc = subprocess.Popen(
        [sys.executable, "-c", code, site, "live"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert live_proc.stdout is not None
        live = live_proc.stdout.readline().strip()
        assert os.path.isdir(dead) and os.path.isdir(live)
        assert staging.is_live(live) and not staging.is_live(dead)
        assert recovery.stray_stages(site) == [dead]
        assert [(r.journal, r.outcome) for r in recovery.recover(site)] == [
            (dead, "removed abandoned staging directory")
        ]
        assert not os.path.exists(dead), "a dead installer's staging must be removed"
        assert os.path.isfile(os.path.join(live, "work.py")), "a live installer's staging kept"
        scenario.commit()  # a commit's own recovery keeps it too
        assert os.path.isfile(os.path.join(live, "work.py"))
    finally:
        live_proc.communicate(timeout=30)
    assert not staging.is_live(live)
    recovery.recover(site)
    assert leftovers(scenario.prefix) == []
    assert old != digest(scenario.prefix)  # the commit above went through


def test_young_staging_without_an_owner_file_is_kept(scenario: Scenario) -> None:
    old = scenario.build()
    stage = scenario.site / ".install-atomic-young"
    stage.mkdir()
    recovery.recover(str(scenario.site))
    assert stage.is_dir(), "just created by mkdtemp, its owner file may not exist yet"
    past = time.time() - staging.YOUNG_SECONDS - 5
    os.utime(stage, (past, past))
    recovery.recover(str(scenario.site))
    assert not stage.exists()
    assert digest(scenario.prefix) == old


def test_recover_refuses_an_unknown_journal_format(scenario: Scenario) -> None:
    old = scenario.build()
    path = scenario.site / ".install-atomic-1-ffff.journal"
    path.write_text(json.dumps({"format": 99}))
    with pytest.raises(InstallAtomicError) as info:
        recovery.recover(str(scenario.site))
    assert str(path) in str(info.value)
    path.unlink()
    assert digest(scenario.prefix) == old


def test_recover_reports_a_journal_it_cannot_roll_back(scenario: Scenario) -> None:
    """The staging directory holding the old ``demopkg/`` was deleted behind recovery's
    back: it must say so with a RecoveryError naming the entry, and keep the journal."""
    scenario.build()
    crash_in_child(scenario, 2)
    journals = journal_mod.find(str(scenario.site))
    for stage in journal_mod.load(journals[0]).stages:
        staging.remove_tree(stage)
    with pytest.raises(RecoveryError) as info:
        recovery.recover(str(scenario.site))
    assert str(scenario.site / "demopkg") in str(info.value)
    assert journal_mod.find(str(scenario.site)) == journals


@pytest.mark.parametrize("k", range(1, UPGRADE_STEPS))
def test_recovering_another_destination_first_keeps_a_journaled_stage(
    scenario: Scenario, tmp_path: Path, k: int
) -> None:
    """``recover <bin>`` before ``recover <site-packages>``: the interrupted commit's
    staging directory and backups in bin (which hold the previous version's script after
    an exchange) belong to the journal in site-packages; only resolving it may touch them."""
    old, _new = trees(scenario, tmp_path)
    child = run_crashing_commit(scenario, k, tmp_path)
    assert child.returncode == 137, child.stderr
    in_bin = sorted(p.name for p in scenario.bin.iterdir() if p.name.startswith(".install-atomic"))
    assert in_bin, "the commit staged into bin"
    assert recovery.stray_stages(str(scenario.bin)) == []
    assert recovery.recover(str(scenario.bin)) == []
    still = sorted(p.name for p in scenario.bin.iterdir() if p.name.startswith(".install-atomic"))
    assert still == in_bin, "recover <bin> removed what the site-packages journal needs"
    (done,) = recovery.recover(str(scenario.site))
    assert done.outcome == "rolled back"
    assert_tree(scenario, old, f"after recovering bin first, then site-packages (step {k})")


def test_ownerless_staging_is_judged_by_the_pid_in_its_name(scenario: Scenario) -> None:
    """An installer killed between mkdtemp and its owner lock leaves a stage with no owner
    file: gone at once if the pid in its name is dead, kept while that process lives."""
    old = scenario.build()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    abandoned = scenario.site / f"{staging.PREFIX}{int(dead.stdout)}-k1ll3d"
    abandoned.mkdir()
    mine = scenario.site / f"{staging.PREFIX}{os.getpid()}-al1ve"
    mine.mkdir()
    assert [(r.journal, r.outcome) for r in recovery.recover(str(scenario.site))] == [
        (str(abandoned), "removed abandoned staging directory")
    ]
    assert not abandoned.exists(), "its creator is dead: no need to wait 30 s"
    assert mine.is_dir(), "its creator (this process) lives"
    mine.rmdir()
    assert digest(scenario.prefix) == old
