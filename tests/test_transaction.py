"""install_atomic.engine.transaction end to end on real trees: upgrades, downgrades, conflicts,
dry runs, aborted builds, a read-only destination and a held lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enginekit import (
    DEMO_V1,
    DEMO_V2,
    DistSpec,
    Scenario,
    crash_in_child,
    diff,
    digest,
    leftovers,
    stage_version,
    upgrade_scenario,
)
from install_atomic.engine import recovery, steps
from install_atomic.engine.locking import lock_path_for
from install_atomic.engine.ownership import scan
from install_atomic.engine.plan import Step
from install_atomic.errors import ConflictError, InstallAtomicError, LockTimeout
from users import run_without_dac

DEMO_V1_EGG = DistSpec("demopkg", "1.0", DEMO_V1.files, kind="egg-info")
DEMO_V2_WHEEL = DistSpec("demopkg", "2.0", DEMO_V2.files, kind="dist-info")


def assert_tree(scenario: Scenario, expected: dict[str, str], what: str) -> None:
    actual = digest(scenario.prefix)
    assert actual == expected, f"{what}:\n{diff(actual, expected)}"


def install_and_check(scenario: Scenario, tmp_path: Path) -> None:
    scenario.build()
    expected = scenario.expected(tmp_path / "reference")
    result = scenario.commit()
    assert_tree(scenario, expected, "after the commit")
    assert leftovers(scenario.prefix) == []
    assert (scenario.site / ".lock").is_file(), "the lock file is kept (never deleted)"
    assert result.recovered == [] and not result.dry_run


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param([DEMO_V1], DEMO_V2, id="pip-dist-info-to-egg-info"),
        pytest.param([DEMO_V1_EGG], DEMO_V2, id="egg-info-to-egg-info"),
        pytest.param([DEMO_V1], DEMO_V2_WHEEL, id="dist-info-to-dist-info"),
        pytest.param([], DEMO_V2, id="first-install"),
        pytest.param([DEMO_V2], DEMO_V2, id="reinstall"),
    ],
)
def test_upgrade_leaves_exactly_the_new_version(
    tmp_path: Path, old: list[DistSpec], new: DistSpec
) -> None:
    install_and_check(Scenario(tmp_path / "env", new, old), tmp_path)


@pytest.mark.parametrize(
    "old",
    [pytest.param(DEMO_V2, id="from-egg-info"), pytest.param(DEMO_V2_WHEEL, id="from-dist-info")],
)
def test_downgrade_leaves_exactly_the_old_release(tmp_path: Path, old: DistSpec) -> None:
    # 1.0 lacks fresh.py and demopkg_extra.py, has legacy.py and demopkg_helper.py
    install_and_check(Scenario(tmp_path / "env", DEMO_V1_EGG, [old]), tmp_path)


def test_old_pip_metadata_is_removed_when_the_new_egg_info_lands(tmp_path: Path) -> None:
    stale_egg = DistSpec("demopkg", "0.9", {"demopkg/__init__.py": b"0"}, kind="egg-info")
    scenario = Scenario(tmp_path / "env", DEMO_V2, [DEMO_V1, stale_egg])
    scenario.build()
    assert sorted(d.version for d in scan(str(scenario.site)) if d.name == "demopkg") == [
        "0.9",
        "1.0",
    ]
    scenario.commit()
    site = scenario.site
    assert not (site / "demopkg-1.0.dist-info").exists()
    assert not (site / "demopkg-0.9.egg-info").exists()
    assert (site / "demopkg-2.0.egg-info" / "PKG-INFO").is_file()
    assert [(d.name, d.version) for d in scan(str(site))] == [("demopkg", "2.0"), ("other", "1.0")]


def test_shared_namespace_keeps_the_neighbour(tmp_path: Path) -> None:
    old = DistSpec("demopkg", "1.0", {"ns/a/__init__.py": b"1", "ns/a/gone.py": b"1"})
    new = DistSpec("demopkg", "2.0", {"ns/a/__init__.py": b"2", "ns/a/fresh.py": b"2"})
    neighbour = DistSpec("other", "1.0", {"ns/b/__init__.py": b"b"})
    install_and_check(Scenario(tmp_path / "env", new, [old], [neighbour]), tmp_path)


def test_unknown_files_in_an_unclaimed_directory_survive(tmp_path: Path) -> None:
    old = DistSpec("demopkg", "1.0", {"demopkg.py": b"1"})
    new = DistSpec("demopkg", "2.0", {"demopkg.py": b"2", "share/demo.txt": b"2"})
    scenario = Scenario(tmp_path / "env", new, [old], extra={"share/user.txt": b"keep me"})
    install_and_check(scenario, tmp_path)
    assert (scenario.site / "share" / "user.txt").read_bytes() == b"keep me"


def test_dropping_the_only_script_keeps_the_destination(tmp_path: Path) -> None:
    """Nothing but demopkg in the prefix; 2.0 drops 1.0's script.  The removal of the
    stale script must not climb to the prefix (which holds site-packages itself)."""
    new = DistSpec("demopkg", "2.0", {"demopkg/__init__.py": b"2"}, kind="egg-info")
    scenario = Scenario(tmp_path / "guard" / "env", new, [DEMO_V1], neighbours=())
    scenario.build()
    (tmp_path / "guard" / "sentinel").write_text("the climb stops here")
    scenario.commit()
    assert (scenario.site / "demopkg" / "__init__.py").read_bytes() == b"2"
    assert (scenario.site / "demopkg-2.0.egg-info" / "PKG-INFO").is_file()
    assert not (scenario.bin / "demo-tool").exists()


def test_commit_result(tmp_path: Path) -> None:
    scenario = upgrade_scenario(tmp_path / "env")
    scenario.build()
    result = scenario.commit()
    assert len(result.plan.steps) == 6
    assert 0 <= result.swap_seconds <= result.commit_seconds
    assert result.lock_wait_seconds >= 0 and result.recovered == []


# -- refusing and not doing -------------------------------------------------------------------


def hijacking(scenario_dir: Path) -> Scenario:
    new = DistSpec(
        "demopkg", "2.0", {**DEMO_V2.files, "other/util.py": b"hijacked"}, kind="egg-info"
    )
    return Scenario(scenario_dir, new, [DEMO_V1])


def test_strict_conflict_raises_before_anything_changes(tmp_path: Path) -> None:
    scenario = hijacking(tmp_path / "env")
    before = scenario.build()
    with pytest.raises(ConflictError) as info:
        scenario.commit(strict=True)
    util = str(scenario.site / "other" / "util.py")
    message = str(info.value)
    assert util in message and "other" in message and "Nothing was changed" in message
    assert info.value.path == util
    assert isinstance(info.value, ValueError)
    assert_tree(scenario, before, "after a refused commit")


def test_conflict_without_strict_warns_and_replaces(tmp_path: Path) -> None:
    scenario = hijacking(tmp_path / "env")
    scenario.build()
    warnings: list[str] = []
    scenario.commit(warn=warnings.append)
    util = scenario.site / "other" / "util.py"
    assert util.read_bytes() == b"hijacked"
    assert [w for w in warnings if str(util) in w and "belongs to other" in w], warnings
    assert (scenario.site / "other" / "__init__.py").read_bytes() == b"OTHER = 1\n"


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    scenario = upgrade_scenario(tmp_path / "env")
    scenario.build()
    before = digest(scenario.prefix, ignore_lock=False)
    log: list[str] = []
    with scenario.transaction(dry_run=True, log=log.append) as txn:
        stages = stage_version(txn, scenario.site, scenario.new)
        assert all(not s.startswith(str(scenario.prefix)) for s in stages.values())
        assert leftovers(scenario.prefix) == []
        result = txn.commit()
    assert result.dry_run and len(result.plan.steps) == 6
    assert digest(scenario.prefix, ignore_lock=False) == before, "dry run changed the prefix"
    assert all(not os.path.exists(s) for s in stages.values()), "dry-run staging left behind"
    would = [line for line in log if line.startswith("would ")]
    assert len(would) == 6 and str(scenario.site / "demopkg") in would[0]
    assert log[-1] == "dry run: 6 renames planned, nothing changed"


def test_exception_while_building_removes_staging(tmp_path: Path) -> None:
    scenario = upgrade_scenario(tmp_path / "env")
    before = scenario.build()
    with pytest.raises(RuntimeError, match="build failed"), scenario.transaction() as txn:
        stages = stage_version(txn, scenario.site, scenario.new)
        assert leftovers(scenario.prefix)  # the staging directories are there...
        raise RuntimeError("build failed")
    assert_tree(scenario, before, "after an aborted build")  # ...and gone
    assert all(not os.path.exists(s) for s in stages.values())


def test_commit_recovers_an_interrupted_transaction_first(tmp_path: Path) -> None:
    scenario = upgrade_scenario(tmp_path / "env")
    scenario.build()
    expected = scenario.expected(tmp_path / "reference")
    crash_in_child(scenario, 3)
    assert len(recovery.status(str(scenario.site))) == 1
    warnings: list[str] = []
    result = scenario.commit(warn=warnings.append)
    assert [(r.project, r.outcome) for r in result.recovered] == [("demopkg", "rolled back")]
    assert any("recovered an interrupted install of demopkg: rolled back" in w for w in warnings)
    assert_tree(scenario, expected, "after recovering and committing")


def test_live_staging_of_a_concurrent_installer_survives_a_commit(tmp_path: Path) -> None:
    scenario = upgrade_scenario(tmp_path / "env")
    scenario.build()
    expected = scenario.expected(tmp_path / "reference")
    with scenario.transaction() as slow:
        slow_stages = stage_version(slow, scenario.site, scenario.new)
        scenario.commit()  # a second installer commits first
        assert all(os.path.isdir(s) for s in slow_stages.values()), "live staging was removed"
        slow.commit()
    assert_tree(scenario, expected, "after two commits")


def test_keyboard_interrupt_during_the_swaps_is_recoverable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C between two renames: the old version must come back, either at once or
    through ``recover`` (the staging directories hold the old entries moved aside)."""
    scenario = upgrade_scenario(tmp_path / "env")
    before = scenario.build()
    real = steps.apply
    made: list[Step] = []

    def apply(step: Step) -> None:
        if len(made) == 2:
            raise KeyboardInterrupt
        real(step)
        made.append(step)

    monkeypatch.setattr(steps, "apply", apply)
    with pytest.raises(KeyboardInterrupt):
        scenario.commit()
    monkeypatch.setattr(steps, "apply", real)
    recovery.recover(str(scenario.site))
    assert_tree(scenario, before, "after Ctrl-C and recover")


# -- permissions and locks ---------------------------------------------------------------------

_COMMIT_AS_UNPRIVILEGED = """
import json
from enginekit import Scenario, stage_version
from install_atomic.errors import InstallAtomicError

scenario = Scenario.from_json(json.loads(sys.argv[1]))
try:
    with scenario.transaction() as txn:
        stage_version(txn, scenario.site, scenario.new)
        txn.commit()
except InstallAtomicError as exc:
    print(json.dumps({"type": type(exc).__name__, "message": str(exc), "path": exc.path,
                      "rolled_back": getattr(exc, "rolled_back", None)}))
else:
    print(json.dumps({"type": None}))
"""


def test_read_only_destination_is_refused_before_staging(tmp_path: Path) -> None:
    scenario = upgrade_scenario(tmp_path / "env")
    scenario.build()
    scenario.site.chmod(0o555)
    before = digest(scenario.prefix)
    try:
        out = run_without_dac(_COMMIT_AS_UNPRIVILEGED, json.dumps(scenario.to_json()))
    finally:
        scenario.site.chmod(0o755)
    assert out["type"] == "DestinationError", out
    assert str(scenario.site) in out["message"] and "not writable" in out["message"]
    scenario.site.chmod(0o555)
    assert digest(scenario.prefix) == before
    scenario.site.chmod(0o755)


def test_read_only_package_directory_is_replaced_by_its_owner(tmp_path: Path) -> None:
    """A directory of the old version that may not be moved to another parent (mode 0555:
    its ``..`` cannot be rewritten) is still replaced without privileges: the new directory
    is first brought next to it, and the two are exchanged within one directory."""
    new = DistSpec("demopkg", "2.0", {**DEMO_V2.files, "aaa_first.py": b"added first"})
    scenario = Scenario(tmp_path / "env", new, [DEMO_V1])
    scenario.build()
    (scenario.site / "demopkg").chmod(0o555)
    expected = scenario.expected(tmp_path / "reference")
    try:
        out = run_without_dac(_COMMIT_AS_UNPRIVILEGED, json.dumps(scenario.to_json()))
    finally:
        if (scenario.site / "demopkg").exists():
            (scenario.site / "demopkg").chmod(0o755)
    assert out["type"] is None, out
    after = digest(scenario.prefix)
    assert after == expected, diff(after, expected)
    assert leftovers(scenario.prefix) == []


_HOLD_LOCK = """
import sys
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
sys.stdin.readline()
lock.release()
"""


def test_lock_held_by_another_process_times_out_naming_it(tmp_path: Path) -> None:
    scenario = upgrade_scenario(tmp_path / "env")
    before = scenario.build()
    lock_path = lock_path_for(str(scenario.site))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, lock_path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with scenario.transaction(lock_timeout=0.5) as txn:
            stage_version(txn, scenario.site, scenario.new)
            started = time.monotonic()
            with pytest.raises(LockTimeout) as info:
                txn.commit()
            elapsed = time.monotonic() - started
        assert 0.4 <= elapsed < 3.0, elapsed
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, InstallAtomicError)
        assert info.value.path == lock_path and lock_path in str(info.value)
        assert info.value.holder == holder.pid
        assert f"process {holder.pid}" in str(info.value)
        assert_tree(scenario, before, "after a lock timeout")
    finally:
        holder.communicate(timeout=30)


def test_lock_lives_in_the_virtual_environment_root(tmp_path: Path) -> None:
    scenario = upgrade_scenario(tmp_path / "env")
    scenario.build()
    (scenario.prefix / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert lock_path_for(str(scenario.site)) == str(scenario.prefix / ".lock")
    scenario.commit()
    assert (scenario.prefix / ".lock").is_file()
    assert not (scenario.site / ".lock").exists()


def test_other_neighbours_are_untouched(tmp_path: Path) -> None:
    scenario = upgrade_scenario(tmp_path / "env")
    scenario.build()
    other = {rel: v for rel, v in digest(scenario.site).items() if rel.startswith("other")}
    inodes = {rel: os.lstat(scenario.site / rel).st_ino for rel in other}
    scenario.commit()
    assert {r: v for r, v in digest(scenario.site).items() if r.startswith("other")} == other
    assert {rel: os.lstat(scenario.site / rel).st_ino for rel in other} == inodes


def test_exdev_on_a_directory_says_overlayfs_and_restores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory of a read-only image layer (overlayfs) cannot be renamed at all: the
    kernel answers EXDEV.  The commit is undone and the message says what to do."""
    import errno

    from install_atomic.engine import primitives
    from install_atomic.errors import CommitError

    scenario = upgrade_scenario(tmp_path / "env")
    before = scenario.build()
    real = primitives._renameat2
    assert real is not None

    def overlay(old: str, new: str, flags: int) -> None:
        if flags == primitives.RENAME_EXCHANGE and os.path.isdir(new):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), old, None, new)
        real(old, new, flags)

    monkeypatch.setattr(primitives, "_renameat2", overlay)
    with pytest.raises(CommitError) as info:
        scenario.commit()
    assert info.value.rolled_back is True
    assert "overlayfs" in str(info.value) and str(scenario.site) in str(info.value)
    assert digest(scenario.prefix) == before
    assert leftovers(scenario.prefix) == []
