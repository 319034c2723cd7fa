"""Journals another user could have planted or changed are never obeyed.

In a destination other users can write (Debian's group-``staff`` ``dist-packages``, a
prefix in a sticky world-writable directory), a local user planted a
``.install-atomic-*.journal`` that root's next install or ``recover`` obeyed: it deleted a
root-only directory elsewhere.  Here a real unprivileged user plants such journals; root's
recovery, install and ``status`` must leave them and everything they name alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from enginekit import (
    DEMO_V1,
    DEMO_V2,
    Scenario,
    digest,
    leftovers,
    run_crashing_commit,
    upgrade_scenario,
    without_private,
    write_tree,
)
from install_atomic.engine import journal as journal_mod
from install_atomic.engine import recovery
from install_atomic.errors import DestinationError
from install_atomic.frontends import cli
from users import other_user, shared_dir

TXID = "4242-deadbeef"


def _journal(site: Path, victim: Path, lock: Path) -> dict[str, object]:
    """A journal whose roll-forward deletes *victim* (as a backup and as a stage)."""
    return {
        "format": 1,
        "txid": TXID,
        "project": "evil",
        "primary": str(site),
        "lock_path": str(lock),
        "stages": [str(victim / "stage")],
        "roots": [str(site), "/"],
        "pid": 999999,
        "host": "x",
        "created": 0.0,
        "steps": [{"action": "remove", "dest": str(site / "gone"), "source": "",
                   "backup": str(victim / "data"), "kind": "dir", "old_id": [0, 0]}],
    }


@pytest.fixture
def world(tmp_path: Path) -> tuple[Scenario, Path]:
    scenario = Scenario(tmp_path / "env", DEMO_V2, [DEMO_V1])
    scenario.build()
    victim = tmp_path / "root-only"
    write_tree(victim, {"data/precious": b"root's\n", "stage/also": b"root's too\n"})
    os.chmod(victim, 0o700)
    return scenario, victim


def _plant_as(user_run: object, path: Path, data: dict[str, object]) -> None:
    run = user_run  # a callable running argv as the planting user
    text = json.dumps(data)
    run(["sh", "-c", f"cat > '{path}' <<'EOF'\n{text}\nEOF"])  # type: ignore[operator]


@pytest.mark.parametrize("mode", [0o1777, 0o2775], ids=["sticky-world-writable", "group-writable"])
def test_a_journal_planted_by_another_user_is_never_obeyed(
    world: tuple[Scenario, Path], mode: int, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario, victim = world
    user = other_user()
    shared_dir(str(scenario.site), user, mode)
    planted = scenario.site / f".install-atomic-{TXID}.journal"
    _plant_as(user.run, planted, _journal(scenario.site, victim, scenario.site / ".lock"))
    assert planted.stat().st_uid == user.uid
    before = digest(victim)

    outcomes = recovery.recover(str(scenario.site))
    assert [(r.journal, r.outcome) for r in outcomes] == [
        (str(planted), "not trusted, left alone")
    ]
    assert f"owned by uid {user.uid}" in outcomes[0].reason
    warnings: list[str] = []
    scenario.commit(warn=warnings.append)  # root's next install
    assert digest(victim) == before, "a planted journal made root delete its files"
    assert planted.exists(), "the planted journal is reported, not removed"
    assert any(str(planted) in w and "not trusted" in w for w in warnings), warnings
    assert cli.main(["status", str(scenario.site)]) == 0
    out = capsys.readouterr().out
    assert f"not trusted, left alone: {planted}" in out and f"uid {user.uid}" in out


def test_a_writable_or_symlinked_journal_of_root_is_not_trusted(
    world: tuple[Scenario, Path],
) -> None:
    """Root's own file is believed only while nobody else could have changed it."""
    scenario, victim = world
    data = _journal(scenario.site, victim, scenario.site / ".lock")
    planted = scenario.site / f".install-atomic-{TXID}.journal"
    planted.write_text(json.dumps(data))
    os.chmod(planted, 0o666)
    before = digest(victim)
    (item,) = recovery.recover(str(scenario.site))
    assert item.outcome == "not trusted, left alone" and "lets other users write" in item.reason
    planted.unlink()
    target = scenario.prefix / "elsewhere.json"
    target.write_text(json.dumps(data))
    planted.symlink_to(target)
    (item,) = recovery.recover(str(scenario.site))
    assert item.outcome == "not trusted, left alone" and "symbolic link" in item.reason
    assert digest(victim) == before


@pytest.mark.parametrize(
    "field, reason",
    [
        ("backup", "is not one of its own"),
        ("stage", "lies outside its directories"),
        ("dest", "lies outside the transaction's directories"),
        ("primary", "not for the directory it is in"),
    ],
)
def test_a_journal_naming_paths_outside_its_directories_is_not_obeyed(
    world: tuple[Scenario, Path], field: str, reason: str
) -> None:
    """Root-owned, well-formed, but naming a path no transaction of this destination
    writes: refused whole, nothing it names is touched."""
    scenario, victim = world
    site = scenario.site
    data = _journal(site, victim, site / ".lock")
    data["roots"] = [str(site), str(scenario.bin)]
    step = data["steps"][0]  # type: ignore[index]
    step["backup"] = str(site / f".install-atomic-{TXID}-1.bak")
    data["stages"] = [str(site / ".install-atomic-4242-abc")]
    if field == "backup":
        step["backup"] = str(victim / "data")
    elif field == "stage":
        data["stages"] = [str(victim / "stage")]
    elif field == "dest":
        step["dest"] = str(victim / "data")
        step["old_id"] = list(_ident(victim / "data"))
    else:
        data["primary"] = str(victim)
    (site / f".install-atomic-{TXID}.journal").write_text(json.dumps(data))
    before = digest(victim)
    (item,) = recovery.recover(str(site))
    assert item.outcome == "not trusted, left alone"
    assert reason in item.reason, item.reason
    assert digest(victim) == before


def _ident(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return (st.st_dev, st.st_ino)


def test_a_symlink_planted_as_the_lock_file_is_not_followed(
    world: tuple[Scenario, Path],
) -> None:
    """A user who may write to a shared site-packages plants ``.lock`` -> a root file:
    taking the lock must neither truncate nor lock through it."""
    scenario, victim = world
    target = victim / "data" / "precious"
    (scenario.site / ".lock").symlink_to(target)
    before = digest(scenario.prefix)
    with pytest.raises(DestinationError) as info:
        scenario.commit()
    assert "symbolic link" in str(info.value) and str(scenario.site / ".lock") in str(info.value)
    assert target.read_bytes() == b"root's\n"
    assert without_private(digest(scenario.prefix)) == without_private(before)
    assert leftovers(scenario.prefix) == []


def test_a_journal_whose_stage_others_could_change_is_left_alone(tmp_path: Path) -> None:
    """A real crashed commit's journal, but one of its staging directories became
    writable by others: its contents (the old version, after an exchange) can no longer
    be believed, so neither roll-back nor roll-forward runs, and it is reported once."""
    scenario = upgrade_scenario(tmp_path / "env")
    scenario.build()
    child = run_crashing_commit(scenario, 2, tmp_path)
    assert child.returncode == 137, child.stderr
    (journal,) = journal_mod.find(str(scenario.site))
    stage = journal_mod.load(journal).stages[0]
    os.chmod(stage, 0o777)
    before = digest(scenario.prefix)
    (item,) = recovery.recover(str(scenario.site))
    assert (item.journal, item.outcome) == (journal, "not trusted, left alone")
    assert stage in item.reason and "lets other users write" in item.reason
    assert digest(scenario.prefix) == before
    os.chmod(stage, 0o755)  # the owner looked and put it right: recovery proceeds
    (item,) = recovery.recover(str(scenario.site))
    assert item.outcome == "rolled back"
    assert leftovers(scenario.prefix) == []
