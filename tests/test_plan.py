"""install_atomic.engine.plan: which entries are added, swapped, merged into or removed, and in
which order.  Plans are computed through ``Transaction.plan()`` against real trees."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from enginekit import (
    DEMO_V1,
    DEMO_V2,
    OTHER,
    DistSpec,
    Scenario,
    digest,
    stage_version,
    upgrade_scenario,
)
from install_atomic.engine.plan import PRIVATE_PREFIX, Plan, Step, check_inside, namespace_style
from install_atomic.errors import UnsafePathError

Steps = list[tuple[str, str]]


def plan_of(scenario: Scenario) -> tuple[Plan, Steps]:
    """The plan for installing ``scenario.new``, and its steps as (action, path below prefix)."""
    with scenario.transaction() as txn:
        stage_version(txn, scenario.site, scenario.new)
        plan = txn.plan()
        for step in plan.steps:  # identities are taken from the real entries
            if step.source:
                st = os.lstat(step.source)
                assert step.new_id == (st.st_dev, st.st_ino)
            if step.action != "add":
                st = os.lstat(step.dest)
                assert step.old_id == (st.st_dev, st.st_ino)
    rel = [(s.action, os.path.relpath(s.dest, scenario.prefix)) for s in plan.steps]
    return plan, rel


SITE = "lib/site-packages"


def site_steps(steps: Sequence[tuple[str, str]]) -> Steps:
    """Steps below the site, with the ``lib/site-packages/`` prefix dropped."""
    return [(a, p[len(SITE) + 1 :]) for a, p in steps if p.startswith(SITE + "/")]


def test_upgrade_adds_swaps_and_removes(tmp_path: Path) -> None:
    scenario = upgrade_scenario(tmp_path / "env")
    scenario.build()
    plan, steps = plan_of(scenario)
    assert steps == [
        ("swap", f"{SITE}/demopkg"),  # owned by 1.0 alone: one exchange, legacy.py goes with it
        ("add", f"{SITE}/demopkg_extra.py"),
        ("swap", "bin/demo-tool"),
        ("add", f"{SITE}/demopkg-2.0.egg-info"),
        ("remove", f"{SITE}/demopkg-1.0.dist-info"),
        ("remove", f"{SITE}/demopkg_helper.py"),
    ]
    assert plan.conflicts == []
    kinds = {os.path.basename(s.dest): (s.kind, s.count) for s in plan.steps}
    assert kinds["demopkg"] == ("dir", 5)
    assert kinds["demo-tool"] == ("file", 1)
    assert [s.metadata for s in plan.steps] == [False, False, False, True, True, False]


def test_backups_are_hidden_siblings(tmp_path: Path) -> None:
    scenario = upgrade_scenario(tmp_path / "env")
    scenario.build()
    plan, _ = plan_of(scenario)
    backups = [s.backup for s in plan.steps if s.action != "add"]
    assert backups and len(set(backups)) == len(backups)
    for step in plan.steps:
        if step.action == "add":
            assert step.backup == "" and step.old_id is None
            continue
        assert os.path.dirname(step.backup) == os.path.dirname(step.dest)
        assert os.path.basename(step.backup).startswith(PRIVATE_PREFIX + "-")


def test_first_install_only_adds(tmp_path: Path) -> None:
    scenario = Scenario(tmp_path / "env", DEMO_V2)
    scenario.build()
    _, steps = plan_of(scenario)
    assert {a for a, _ in steps} == {"add"}
    assert sorted(p for _, p in steps) == [
        "bin/demo-tool",
        f"{SITE}/demopkg",
        f"{SITE}/demopkg-2.0.egg-info",
        f"{SITE}/demopkg_extra.py",
    ]


def test_shared_namespace_is_merged_into(tmp_path: Path) -> None:
    """PEP 420 ``ns/``: ``ns/a`` belongs to the old version, ``ns/b`` to a neighbour."""
    old = DistSpec("demopkg", "1.0", {"ns/a/__init__.py": b"1", "ns/a/gone.py": b"1"})
    new = DistSpec("demopkg", "2.0", {"ns/a/__init__.py": b"2", "ns/a/fresh.py": b"2"})
    neighbour = DistSpec("other", "1.0", {"ns/b/__init__.py": b"b"})
    scenario = Scenario(tmp_path / "env", new, [old], [neighbour])
    scenario.build()
    plan, steps = plan_of(scenario)
    assert site_steps(steps) == [
        ("swap", "ns/a"),
        ("add", "demopkg-2.0.dist-info"),
        ("remove", "demopkg-1.0.dist-info"),
    ]
    assert plan.conflicts == []


def test_directory_nobody_claims_is_merged_and_its_files_kept(tmp_path: Path) -> None:
    old = DistSpec("demopkg", "1.0", {"demopkg.py": b"1"})
    new = DistSpec("demopkg", "2.0", {"demopkg.py": b"2", "share/demopkg.txt": b"2"})
    scenario = Scenario(tmp_path / "env", new, [old], extra={"share/user.txt": b"mine"})
    scenario.build()
    _, steps = plan_of(scenario)
    assert site_steps(steps) == [
        ("swap", "demopkg.py"),
        ("add", "share/demopkg.txt"),
        ("add", "demopkg-2.0.dist-info"),
        ("remove", "demopkg-1.0.dist-info"),
    ]


def test_new_entry_inside_a_directory_another_distribution_owns(tmp_path: Path) -> None:
    old = DistSpec("demopkg", "1.0", {"demopkg/__init__.py": b"1"})
    new = DistSpec("demopkg", "2.0", {"demopkg/__init__.py": b"2", "other/plugin_demo.py": b"2"})
    scenario = Scenario(tmp_path / "env", new, [old])
    scenario.build()
    _, steps = plan_of(scenario)
    assert ("add", "other/plugin_demo.py") in site_steps(steps)
    assert ("swap", "other") not in site_steps(steps)


def test_removals_climb_to_the_highest_old_only_directory(tmp_path: Path) -> None:
    old = DistSpec(
        "demopkg",
        "1.0",
        {
            "demopkg/__init__.py": b"1",
            "demopkg_data/top.txt": b"1",
            "demopkg_data/sub/deeper/file.txt": b"1",
            "ns/old_mod.py": b"1",  # ns/ is shared with the neighbour
            "common.txt": b"shared",  # also listed by the neighbour
            "mixed/old.py": b"1",  # mixed/ also holds a file nobody lists
        },
    )
    new = DistSpec("demopkg", "2.0", {"demopkg/__init__.py": b"2"})
    neighbour = DistSpec("other", "1.0", {"ns/b/__init__.py": b"b", "common.txt": b"shared"})
    scenario = Scenario(tmp_path / "env", new, [old], [neighbour], {"mixed/user.cfg": b"keep"})
    scenario.build()
    _, steps = plan_of(scenario)
    assert site_steps(steps) == [
        ("swap", "demopkg"),
        ("add", "demopkg-2.0.dist-info"),
        ("remove", "demopkg-1.0.dist-info"),
        ("remove", "demopkg_data"),
        ("remove", "mixed/old.py"),
        ("remove", "ns/old_mod.py"),
    ]


def test_removal_does_not_climb_over_an_unlisted_file_further_down(tmp_path: Path) -> None:
    old = DistSpec(
        "demopkg",
        "1.0",
        {"demopkg.py": b"1", "olddir/a.py": b"1", "olddir/sub/b.py": b"1"},
    )
    new = DistSpec("demopkg", "2.0", {"demopkg.py": b"2"})
    extra = {"olddir/sub/user.cfg": b"not listed by anybody"}
    scenario = Scenario(tmp_path / "env", new, [old], extra=extra)
    scenario.build()
    _, steps = plan_of(scenario)
    removals = [p for a, p in site_steps(steps) if a == "remove"]
    assert removals == ["demopkg-1.0.dist-info", "olddir/a.py", "olddir/sub/b.py"]


def test_removals_never_touch_neighbour_files(tmp_path: Path) -> None:
    scenario = upgrade_scenario(tmp_path / "env")
    scenario.build()
    plan, _ = plan_of(scenario)
    other_files = {os.path.normpath(os.path.join(scenario.site, p)) for p in OTHER.entries()}
    for step in plan.steps:
        for path in other_files:
            assert not (path == step.dest or path.startswith(step.dest + os.sep)), step


@pytest.mark.parametrize("neighbours", [(), (OTHER,)], ids=["alone", "with-neighbour"])
def test_removal_never_climbs_over_a_destination(
    tmp_path: Path, neighbours: tuple[DistSpec, ...]
) -> None:
    """The old version had a script the new one drops.  However empty ``bin/`` becomes,
    the climb must stop below the prefix: the prefix holds the destination itself."""
    new = DistSpec("demopkg", "2.0", {"demopkg/__init__.py": b"2"})
    scenario = Scenario(tmp_path / "guard" / "env", new, [DEMO_V1], neighbours)
    scenario.build()
    (tmp_path / "guard" / "sentinel").write_text("not an install")
    plan, steps = plan_of(scenario)
    site = os.path.normpath(scenario.site)
    for step in plan.steps:
        assert not (site == step.dest or site.startswith(step.dest + os.sep)), (
            f"the plan would {step.action} {step.dest}, which holds the destination {site}"
        )
    assert any(p in ("bin", "bin/demo-tool") for a, p in steps if a == "remove"), steps


def test_file_of_another_distribution_is_a_conflict(tmp_path: Path) -> None:
    old = DistSpec("demopkg", "1.0", {"demopkg/__init__.py": b"1"})
    new = DistSpec(
        "demopkg",
        "2.0",
        {
            "demopkg/__init__.py": b"2",
            "other/util.py": b"hijacked",  # the neighbour lists it, content differs
            "other/__init__.py": OTHER.files["other/__init__.py"],  # identical: no conflict
        },
    )
    scenario = Scenario(tmp_path / "env", new, [old])
    scenario.build()
    plan, steps = plan_of(scenario)
    assert [(os.path.relpath(c.path, scenario.site), c.owners) for c in plan.conflicts] == [
        ("other/util.py", ["other"])
    ]
    # the shared directory is merged into; only the file is replaced
    assert ("swap", "other/util.py") in site_steps(steps)
    assert ("swap", "other") not in site_steps(steps)


def test_order_code_new_metadata_old_metadata_stale(tmp_path: Path) -> None:
    old_egg = DistSpec("demopkg", "0.9", {"demopkg/__init__.py": b"0"}, kind="egg-info")
    scenario = Scenario(tmp_path / "env", DEMO_V2, [DEMO_V1, old_egg])
    scenario.build()
    plan, _ = plan_of(scenario)

    def rank(step: Step) -> int:
        if step.action != "remove":
            return 1 if step.metadata else 0
        return 2 if step.metadata else 3

    ranks = [rank(s) for s in plan.steps]
    assert ranks == sorted(ranks), plan.describe()
    assert set(ranks) == {0, 1, 2, 3}
    old_meta = [os.path.basename(s.dest) for s in plan.steps if rank(s) == 2]
    assert sorted(old_meta) == ["demopkg-0.9.egg-info", "demopkg-1.0.dist-info"]


def test_planning_changes_nothing(tmp_path: Path) -> None:
    scenario = upgrade_scenario(tmp_path / "env")
    before = scenario.build()
    plan_of(scenario)
    assert digest(scenario.prefix) == before
    assert not (scenario.site / ".lock").exists()


def test_describe_is_one_line_per_step(tmp_path: Path) -> None:
    scenario = upgrade_scenario(tmp_path / "env")
    scenario.build()
    plan, _ = plan_of(scenario)
    lines = plan.describe()
    assert len(lines) == len(plan.steps)
    assert lines[0].startswith("swap") and "directory, 5 files" in lines[0]
    assert lines[-1].startswith("remove") and lines[-1].split()[1] == plan.steps[-1].dest


def test_step_json_round_trip() -> None:
    step = Step("swap", "/d/x", "/s/x", "/d/.b", "dir", (1, 2), (1, 3), True, 7)
    assert Step.from_json(step.to_json()) == step
    add = Step("add", "/d/y", "/s/y", new_id=(4, 5))
    assert Step.from_json(add.to_json()) == add


def test_check_inside_refuses_paths_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    check_inside(str(root / "pkg" / "x.py"), str(root))
    for bad in (str(root / ".." / "evil.py"), "/etc/passwd", str(tmp_path / "sitex")):
        with pytest.raises(UnsafePathError) as info:
            check_inside(bad, str(root))
        assert bad in str(info.value) and info.value.path == bad


def test_check_inside_refuses_a_path_through_a_symlink(tmp_path: Path) -> None:
    """The docstring promises: outside "(``..``, absolute, or via a symlink)"."""
    root = tmp_path / "site"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "escape").symlink_to(tmp_path / "outside")
    with pytest.raises(UnsafePathError):
        check_inside(str(root / "escape" / "x.py"), str(root))


# --------------------------------------------------------------------------- namespace __init__

PKGUTIL_A = b'__path__ = __import__("pkgutil").extend_path(__path__, __name__)\n'
#: backports.weakref's spelling of the same declaration (comments, a different import).
PKGUTIL_B = (
    b"# See https://pypi.python.org/pypi/backports\n\n"
    b"from pkgutil import extend_path\n__path__ = extend_path(__path__, __name__)\n"
)
PKG_RESOURCES = b"__import__('pkg_resources').declare_namespace(__name__)\n"
PKGUTIL_AND_CODE = PKGUTIL_B + b"VERSION = '1'\n"


def shared_init_conflicts(tmp_path: Path, theirs: bytes, ours: bytes) -> list[str]:
    """Install a project shipping ``ns/__init__.py`` = *ours* next to a neighbour that
    lists ``ns/__init__.py`` = *theirs*: the conflicts of the plan (paths below the site)."""
    neighbour = DistSpec("neighbour", "1.0", {"ns/__init__.py": theirs, "ns/n.py": b"n"})
    old = DistSpec("demopkg", "1.0", {"ns/__init__.py": theirs, "ns/d.py": b"1"})
    new = DistSpec("demopkg", "2.0", {"ns/__init__.py": ours, "ns/d.py": b"2"})
    scenario = Scenario(tmp_path / "env", new, [old], [neighbour])
    scenario.build()
    plan, steps = plan_of(scenario)
    assert ("swap", "ns") not in site_steps(steps)  # shared: merged into, never swapped
    return [os.path.relpath(c.path, scenario.site) for c in plan.conflicts]


@pytest.mark.parametrize(
    ("theirs", "ours", "conflicts"),
    [
        pytest.param(PKGUTIL_A, PKGUTIL_A, [], id="identical"),
        pytest.param(PKGUTIL_A, PKGUTIL_B, [], id="pkgutil-spelled-differently"),
        pytest.param(PKG_RESOURCES, PKGUTIL_A, ["ns/__init__.py"], id="other-style"),
        pytest.param(PKGUTIL_A, PKGUTIL_AND_CODE, ["ns/__init__.py"], id="declaration-and-code"),
        pytest.param(PKGUTIL_AND_CODE, PKGUTIL_A, ["ns/__init__.py"], id="theirs-has-code"),
    ],
)
def test_a_shared_namespace_init_that_only_declares_the_namespace_is_no_conflict(
    theirs: bytes, ours: bytes, conflicts: list[str], tmp_path: Path
) -> None:
    """Two distributions' pkgutil-style ``__init__.py`` differing only in spelling (as
    backports.functools_lru_cache's and backports.weakref's) are the same declaration;
    another style, or code besides the declaration, is a real conflict."""
    assert shared_init_conflicts(tmp_path, theirs, ours) == conflicts


@pytest.mark.parametrize(
    ("source", "style"),
    [
        (PKGUTIL_A, {"pkgutil"}),
        (PKGUTIL_B, {"pkgutil"}),
        (b'"""A namespace."""\nimport pkgutil\n'
         b"__path__ = pkgutil.extend_path(__path__, __name__)\n", {"pkgutil"}),
        (PKG_RESOURCES, {"pkg_resources"}),
        (b"from pkg_resources import declare_namespace\ndeclare_namespace(__name__)\n",
         {"pkg_resources"}),
        (b"try:\n    __import__('pkg_resources').declare_namespace(__name__)\n"
         b"except ImportError:\n    from pkgutil import extend_path\n"
         b"    __path__ = extend_path(__path__, __name__)\n", {"pkgutil", "pkg_resources"}),
        (PKGUTIL_AND_CODE, None),
        (b"", None),
        (b"# only a comment\n", None),
        (b"import os\n__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n", None),
        (b"__path__ = os.system('x').extend_path(__path__, __name__)\n", None),
        (b"__path__ = extend_path(__path__, 'other')\n", None),
        (b"this is not python\n", None),
    ],
)
def test_namespace_style(source: bytes, style: set[str] | None, tmp_path: Path) -> None:
    init = tmp_path / "__init__.py"
    init.write_bytes(source)
    assert namespace_style(str(init)) == (frozenset(style) if style is not None else None)
