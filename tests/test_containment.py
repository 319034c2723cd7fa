"""Only our own is touched: paths read from installed metadata stay inside the install scheme,
other distributions' claims are honoured, and what a lock-less installer writes into a
directory while it is swapped is kept.

Each test reproduces a report against 0.1.0 on real files: an ``installed-files.txt``,
``RECORD`` or ``top_level.txt`` naming paths outside the destination made an upgrade or
``uninstall`` delete them; a destination reached through a symlink made a correct RECORD
delete an unrelated file; a directory claimed by a ``top_level.txt``-only distribution lost
its ``__init__.py``; a file pip wrote into a swapped directory went out with the old version.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from enginekit import DistSpec, Scenario, digest, install_dist, leftovers, write_tree
from install_atomic.engine import primitives
from install_atomic.errors import UnsafePathError
from install_atomic.frontends import cli

NEW = DistSpec("demopkg", "2.0", {"demopkg/__init__.py": b"VERSION = '2.0'\n"})


def _victim(root: Path) -> Path:
    """A directory outside every destination, with a file and a parent chain to climb."""
    victim = root / "precious" / "dir"
    write_tree(victim, {"x": b"keep me\n", "y": b"and me\n"})
    return victim


def _egg_info(site: Path, listed: list[str], top_level: list[str] | None = None) -> None:
    """demopkg 1.0 as an egg-info whose installed-files.txt lists *listed* (and whose
    top_level.txt lists *top_level*, if given, with no installed-files.txt at all)."""
    meta = site / "demopkg-1.0.egg-info"
    write_tree(site, {"demopkg/__init__.py": b"VERSION = '1.0'\n"})
    files = {"PKG-INFO": b"Metadata-Version: 2.1\nName: demopkg\nVersion: 1.0\n"}
    if top_level is None:
        files["installed-files.txt"] = "".join(f"{p}\n" for p in listed).encode()
        files["top_level.txt"] = b"demopkg\n"
    else:
        files["top_level.txt"] = "".join(f"{t}\n" for t in top_level).encode()
    write_tree(meta, files)


def _scenario(tmp_path: Path) -> Scenario:
    scenario = Scenario(tmp_path / "env", NEW, [], [])
    scenario.build()
    return scenario


def _listings(tmp_path: Path, victim: Path) -> list[list[str]]:
    egg_info = tmp_path / "env" / "lib" / "site-packages" / "demopkg-1.0.egg-info"
    rel = os.path.relpath(victim / "x", egg_info)
    assert rel.startswith("../../../../")
    return [
        ["../demopkg/__init__.py", "PKG-INFO", "installed-files.txt", rel],
        ["../demopkg/__init__.py", "PKG-INFO", str(victim / "x"), str(victim)],
    ]


@pytest.mark.parametrize("form", ["relative", "absolute"])
def test_upgrade_never_removes_what_installed_files_names_outside(
    tmp_path: Path, form: str
) -> None:
    victim = _victim(tmp_path)
    scenario = _scenario(tmp_path)
    listed = _listings(tmp_path, victim)[0 if form == "relative" else 1]
    _egg_info(scenario.site, listed)
    warnings: list[str] = []
    scenario.commit(warn=warnings.append)
    assert sorted(os.listdir(victim)) == ["x", "y"], "a file outside the scheme was removed"
    assert (scenario.site / "demopkg" / "__init__.py").read_bytes() == b"VERSION = '2.0'\n"
    assert not (scenario.site / "demopkg-1.0.egg-info").exists(), "the old metadata stays"
    assert any("outside the install scheme" in w and "left alone" in w for w in warnings), warnings
    assert leftovers(scenario.prefix) == []


def test_strict_refuses_metadata_naming_paths_outside(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    scenario = _scenario(tmp_path)
    _egg_info(scenario.site, _listings(tmp_path, victim)[1])
    before = digest(tmp_path)
    with pytest.raises(UnsafePathError) as info:
        scenario.commit(strict=True)
    assert str(victim / "x") in str(info.value) and "--strict" in str(info.value)
    assert digest(tmp_path) == before, "a refused install changed something"


def test_top_level_naming_an_absolute_directory_is_ignored(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    scenario = _scenario(tmp_path)
    _egg_info(scenario.site, [], top_level=["demopkg", str(victim), "../../../precious"])
    warnings: list[str] = []
    scenario.commit(warn=warnings.append)
    assert sorted(os.listdir(victim)) == ["x", "y"]
    assert any(str(victim) in w and "outside the install scheme" in w for w in warnings)


@pytest.mark.parametrize("form", ["relative", "absolute"])
def test_uninstall_never_removes_what_metadata_names_outside(
    tmp_path: Path, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = _victim(tmp_path)
    scenario = _scenario(tmp_path)
    _egg_info(scenario.site, _listings(tmp_path, victim)[0 if form == "relative" else 1])
    assert cli.main(["uninstall", "demopkg", "--target", str(scenario.site)]) == 0
    assert sorted(os.listdir(victim)) == ["x", "y"]
    assert not (scenario.site / "demopkg").exists()
    assert not (scenario.site / "demopkg-1.0.egg-info").exists()
    assert "outside the install scheme" in capsys.readouterr().err


def test_record_resolves_against_the_real_destination_not_a_symlink(tmp_path: Path) -> None:
    """``--target`` given as a symlink to site-packages: pip's correct RECORD line
    ``../../bin/tool`` names the real script, never a file beside the link."""
    scenario = _scenario(tmp_path)
    (scenario.prefix / "pyvenv.cfg").write_text("home = /usr/bin\n")
    old = DistSpec(
        "demopkg", "1.0",
        {"demopkg/__init__.py": b"1", "../../bin/tool": b"#!/bin/sh\necho real\n"},
    )
    install_dist(scenario.site, old)
    (scenario.bin / "tool").write_bytes(b"#!/bin/sh\necho real\n")
    link_home = tmp_path / "elsewhere" / "a"
    link_home.mkdir(parents=True)
    link = link_home / "site-link"
    link.symlink_to(scenario.site)
    unrelated = tmp_path / "elsewhere" / "bin" / "tool"  # link/../../bin/tool, lexically
    write_tree(unrelated.parent, {"tool": b"not ours\n"})
    assert os.path.normpath(os.path.join(str(link), "../../bin/tool")) == str(unrelated)
    assert cli.main(["uninstall", "demopkg", "--target", str(link)]) == 0
    assert unrelated.read_bytes() == b"not ours\n", "an unrelated file beside the link went"
    assert not (scenario.bin / "tool").exists(), "the real script stayed behind"
    assert not (scenario.site / "demopkg").exists()


def test_a_directory_claimed_by_top_level_only_keeps_its_files(tmp_path: Path) -> None:
    """``common`` belongs to a distribution known only by its ``top_level.txt``; the old
    version of demopkg also listed ``common/__init__.py``, the new one does not ship it."""
    neighbour = DistSpec(
        "commonlib", "1.0", {"common/__init__.py": b"", "common/util.py": b"U = 1\n"},
        kind="egg-info", top_level=["common"], list_files=False,
    )
    old = DistSpec("demopkg", "1.0", {"demopkg/__init__.py": b"1", "common/__init__.py": b""})
    scenario = Scenario(tmp_path / "env", NEW, [old], [neighbour])
    scenario.build()
    scenario.commit()
    assert (scenario.site / "common" / "__init__.py").exists(), "removed a file commonlib needs"
    assert (scenario.site / "common" / "util.py").exists()
    assert (scenario.site / "demopkg" / "__init__.py").read_bytes() == NEW.files[
        "demopkg/__init__.py"
    ]


def test_a_file_written_into_a_swapped_directory_during_the_commit_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip takes no lock: a file it writes into ``share/demo/`` after the plan was made goes
    to the old directory, which the exchange then swaps out.  It is moved into the new one."""
    old = DistSpec("demopkg", "1.0", {"demopkg/__init__.py": b"1", "../../share/demo/a": b"1"})
    new = DistSpec("demopkg", "2.0", {"demopkg/__init__.py": b"2", "../../share/demo/b": b"2"})
    scenario = Scenario(tmp_path / "env", new, [old], [])
    scenario.build()
    share = scenario.prefix / "share" / "demo"
    real_exchange = primitives.exchange

    def pip_writes_then_exchange(a: Any, b: Any) -> bool:
        if os.path.normpath(os.fspath(b)) == str(share):
            write_tree(share, {"from-pip.txt": b"pip\n", "sub/deep.txt": b"deep\n",
                               "__pycache__/x.cpython-311.pyc": b"stale"})
        return real_exchange(a, b)

    monkeypatch.setattr(primitives, "exchange", pip_writes_then_exchange)
    warnings: list[str] = []
    scenario.commit(stops=[str(scenario.bin), str(scenario.prefix / "share")],
                    warn=warnings.append)
    assert (share / "from-pip.txt").read_bytes() == b"pip\n"
    assert (share / "sub" / "deep.txt").read_bytes() == b"deep\n"
    assert (share / "b").read_bytes() == b"2" and not (share / "a").exists()
    assert not (share / "__pycache__").exists(), "the old version's bytecode came back"
    assert sum("written by another process" in w for w in warnings) == 2, warnings
    assert leftovers(scenario.prefix) == []
