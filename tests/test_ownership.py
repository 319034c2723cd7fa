"""install_atomic.engine.ownership: reading installed metadata into "who owns which path"."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from enginekit import OTHER, DistSpec, install_dist, write_tree
from install_atomic.engine.ownership import (
    Ownership,
    canonical_name,
    is_metadata_name,
    read_distribution,
    scan,
)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A virtual environment's site-packages: its metadata may name files anywhere in
    the environment (``bin/``), nowhere else."""
    path = tmp_path / "env" / "lib" / "python3.11" / "site-packages"
    path.mkdir(parents=True)
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    return path


def norm(path: Path) -> str:
    return os.path.normpath(str(path))


def test_canonical_name_and_metadata_names() -> None:
    assert canonical_name("Demo_Pkg.sub") == "demo-pkg-sub"
    assert canonical_name("demo--pkg") == "demo-pkg"
    assert is_metadata_name("x-1.0.dist-info") and is_metadata_name("x.egg-info")
    assert not is_metadata_name("x.py")


def test_record_paths_resolve_relative_to_the_destination(site: Path) -> None:
    spec = DistSpec(
        "tooling", "3.1", {"tooling/__init__.py": b"", "../../../bin/tool": b"#!/bin/sh\n"}
    )
    install_dist(site, spec)
    dist = read_distribution(str(site), spec.metadata_dir)
    assert dist is not None
    assert (dist.name, dist.version, dist.key) == ("tooling", "3.1", "tooling")
    env = site.parent.parent.parent
    assert dist.files == {
        norm(site / "tooling" / "__init__.py"),
        norm(env / "bin" / "tool"),
        norm(site / "tooling-3.1.dist-info" / "METADATA"),
        norm(site / "tooling-3.1.dist-info" / "INSTALLER"),
        norm(site / "tooling-3.1.dist-info" / "RECORD"),
    }
    assert dist.metadata_path == norm(site / "tooling-3.1.dist-info")
    assert dist.whole == frozenset()


def test_installed_files_are_relative_to_the_egg_info(site: Path) -> None:
    spec = DistSpec(
        "eggy",
        "0.5",
        {"eggy/__init__.py": b"", "eggy/data/x.txt": b"x", "../../../bin/eggy": b"#!"},
        kind="egg-info",
    )
    install_dist(site, spec)
    listed = (site / "eggy-0.5.egg-info" / "installed-files.txt").read_text().splitlines()
    assert "../eggy/__init__.py" in listed and "PKG-INFO" in listed
    dist = read_distribution(str(site), "eggy-0.5.egg-info")
    assert dist is not None
    assert dist.files is not None
    env = site.parent.parent.parent
    assert norm(site / "eggy" / "data" / "x.txt") in dist.files
    assert norm(site / "eggy-0.5.egg-info" / "PKG-INFO") in dist.files
    assert norm(env / "bin" / "eggy") in dist.files
    assert all(p.startswith(norm(env) + os.sep) for p in dist.files)


def test_top_level_fallback_claims_package_module_and_extension(site: Path) -> None:
    write_tree(
        site,
        {
            "pkg/__init__.py": b"",
            "mod.py": b"",
            "ext.cpython-311-x86_64-linux-gnu.so": b"\x7fELF",
            "ext_other.so": b"not ours",
            "pkg-1.0.egg-info/PKG-INFO": b"Name: pkg\nVersion: 1.0\n",
            "pkg-1.0.egg-info/top_level.txt": b"pkg\nmod\next\n",
        },
    )
    dist = read_distribution(str(site), "pkg-1.0.egg-info")
    assert dist is not None
    assert dist.files is None
    ext = norm(site / "ext.cpython-311-x86_64-linux-gnu.so")
    assert {norm(site / "pkg"), norm(site / "mod.py"), ext} <= dist.whole
    assert norm(site / "ext_other.so") not in dist.whole
    claimed = set(dist.claimed())
    assert norm(site / "pkg-1.0.egg-info") in claimed and norm(site / "pkg") in claimed


def test_namespace_packages_are_never_claimed_whole(site: Path) -> None:
    write_tree(
        site,
        {
            "zope/interface/__init__.py": b"",
            "zope.interface-5.0.egg-info/PKG-INFO": b"Name: zope.interface\nVersion: 5.0\n",
            "zope.interface-5.0.egg-info/top_level.txt": b"zope\n",
            "zope.interface-5.0.egg-info/namespace_packages.txt": b"zope\n",
        },
    )
    dist = read_distribution(str(site), "zope.interface-5.0.egg-info")
    assert dist is not None
    assert norm(site / "zope") not in dist.whole
    assert dist.namespaces == {norm(site / "zope")}
    own = Ownership([dist], "other-project")
    assert own.is_namespace(str(site / "zope"))


def test_dotted_namespace_package_maps_to_a_nested_directory(site: Path) -> None:
    write_tree(
        site,
        {
            "a/b/c/__init__.py": b"",
            "a.b.c-1.0.egg-info/PKG-INFO": b"Name: a.b.c\nVersion: 1.0\n",
            "a.b.c-1.0.egg-info/top_level.txt": b"a\n",
            "a.b.c-1.0.egg-info/namespace_packages.txt": b"a\na.b\n",
        },
    )
    dist = read_distribution(str(site), "a.b.c-1.0.egg-info")
    assert dist is not None
    assert dist.namespaces == {norm(site / "a"), norm(site / "a" / "b")}
    assert norm(site / "a") not in dist.whole


def test_single_file_egg_info_from_distutils(site: Path) -> None:
    text = "Metadata-Version: 1.1\nName: Legacy\nVersion: 2.1\n"
    (site / "legacy-2.1-py3.11.egg-info").write_text(text)
    dist = read_distribution(str(site), "legacy-2.1-py3.11.egg-info")
    assert dist is not None
    assert (dist.name, dist.version, dist.files) == ("Legacy", "2.1", None)
    assert list(dist.claimed()) == [norm(site / "legacy-2.1-py3.11.egg-info")]


def test_name_and_version_fall_back_to_the_entry_name(site: Path) -> None:
    (site / "noheaders-4.2.dist-info").mkdir()
    dist = read_distribution(str(site), "noheaders-4.2.dist-info")
    assert dist is not None
    assert (dist.name, dist.version, dist.files) == ("noheaders", "4.2", None)


def test_scan_reads_metadata_entries_only(site: Path) -> None:
    install_dist(site, OTHER)
    install_dist(site, DistSpec("demopkg", "1.0", {"demopkg/__init__.py": b""}))
    write_tree(site, {"plain/__init__.py": b"", ".hidden.dist-info/METADATA": b"Name: h\n"})
    (site / "README.txt").write_text("x")
    assert [d.name for d in scan(str(site))] == ["demopkg", "other"]
    assert scan(str(site / "missing")) == []


# -- Ownership -----------------------------------------------------------------------------


@pytest.fixture
def shared_site(site: Path) -> Path:
    """demopkg 1.0 owns ``demopkg/``, ``ns/a/`` and ``solo/``; ``other`` owns ``ns/b/``;
    ``unclaimed/`` belongs to nobody; ``eggy`` (top_level only) claims ``eggy/``."""
    install_dist(
        site,
        DistSpec(
            "demopkg",
            "1.0",
            {
                "demopkg/__init__.py": b"",
                "ns/a/__init__.py": b"",
                "solo/deep/x.txt": b"",
                "../../../bin/demo": b"#!",
            },
        ),
    )
    install_dist(site, DistSpec("other", "1.0", {"ns/b/__init__.py": b"", "other.py": b""}))
    install_dist(
        site,
        DistSpec("eggy", "1.0", {"eggy/__init__.py": b""}, kind="egg-info", list_files=False),
    )
    write_tree(site, {"unclaimed/x.py": b""})
    return site


def test_ownership_splits_old_versions_from_others(shared_site: Path) -> None:
    own = Ownership(scan(str(shared_site)), "DemoPkg")  # canonical name matching
    assert [d.name for d in own.old] == ["demopkg"]
    assert sorted(d.name for d in own.others) == ["eggy", "other"]
    s = shared_site
    assert own.other_owners(str(s / "ns" / "b" / "__init__.py"))[0].name == "other"
    assert own.other_owners(str(s / "eggy"))[0].name == "eggy"
    assert own.other_owners(str(s / "ns" / "a" / "__init__.py")) == []
    assert own.others_inside(str(s / "ns")) and not own.others_inside(str(s / "ns" / "a"))
    assert own.old_claims(str(s / "solo")) and own.old_claims(str(s / "solo" / "deep" / "x.txt"))
    assert not own.old_claims(str(s / "unclaimed"))
    env = s.parent.parent.parent
    assert str(env / "bin" / "demo") in own.old_files()
    assert str(s / "demopkg-1.0.dist-info") in own.old_files()


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("demopkg", True),  # only the old version has files in it
        ("solo", True),
        ("solo/deep", True),
        ("ns/a", True),
        ("ns", False),  # another distribution has files in it
        ("unclaimed", False),  # nobody claims it: merge, keep unknown files
        ("eggy", False),  # claimed whole by another distribution
    ],
)
def test_may_swap_whole(shared_site: Path, rel: str, expected: bool) -> None:
    own = Ownership(scan(str(shared_site)), "demopkg")
    assert own.may_swap_whole(str(shared_site / rel)) is expected


def test_may_not_swap_a_declared_namespace(site: Path) -> None:
    install_dist(site, DistSpec("demopkg", "1.0", {"zope/demo/__init__.py": b""}))
    write_tree(site, {"zope-ns-1.0.egg-info/namespace_packages.txt": b"zope\n"})
    own = Ownership(scan(str(site)), "demopkg")
    assert own.old_claims(str(site / "zope")) and not own.others_inside(str(site / "zope"))
    assert own.may_swap_whole(str(site / "zope")) is False


def test_several_installed_versions_are_all_old(site: Path) -> None:
    install_dist(site, DistSpec("demopkg", "1.0", {"demopkg/a.py": b""}))
    install_dist(site, DistSpec("demopkg", "0.9", {"demopkg/b.py": b""}, kind="egg-info"))
    own = Ownership(scan(str(site)), "demopkg")
    assert sorted(d.version for d in own.old) == ["0.9", "1.0"]
    assert {str(site / "demopkg" / "a.py"), str(site / "demopkg" / "b.py")} <= own.old_files()


def test_old_lists_files_and_wholly_claimed_trees(shared_site: Path) -> None:
    own = Ownership(scan(str(shared_site)), "demopkg")
    s = shared_site
    assert own.old_lists(str(s / "solo" / "deep" / "x.txt"))  # listed in RECORD
    assert own.old_lists(str(s / "demopkg-1.0.dist-info" / "RECORD"))
    assert not own.old_lists(str(s / "solo" / "deep"))  # only an ancestor of a listed file
    assert not own.old_lists(str(s / "solo" / "deep" / "user.cfg"))
    assert not own.old_lists(str(s / "ns" / "b" / "__init__.py"))  # the neighbour's
    eggy = Ownership(scan(str(s)), "eggy")  # top_level.txt only: claims eggy/ whole
    assert eggy.old_lists(str(s / "eggy" / "anything" / "below.py"))
    assert not eggy.old_lists(str(s / "demopkg" / "__init__.py"))
