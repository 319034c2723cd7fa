"""SIGKILL during a merge, then ``recover PREFIX``: every entry old or new, the manifests
agreeing with the tree, nothing named ``.install-atomic*`` left.

The merge runs in a real process.  Kills at exact instants (the K-th rename of the
commit, the journal's removal) come from wrappers that ``SIGKILL`` their own process
there; kills at arbitrary instants from the parent.  Either way the outcome checked
does not depend on when the kill landed: the prefix must be exactly the old state
or exactly the new one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from install_atomic.frontends.merge import MergeOptions, merge
from mergekit import digest, env, ia, private, write_tree

pytestmark = pytest.mark.slow

SHIM = """
import os, signal, sys
from install_atomic.engine import journal, steps
from install_atomic.frontends.merge import MergeOptions, merge
point = sys.argv[1]
real_apply, real_remove, n = steps.apply, journal.Journal.remove, [0]
def apply(step):
    if point == f"apply:{n[0]}":
        os.kill(os.getpid(), signal.SIGKILL)
    n[0] += 1
    real_apply(step)
def remove(self):
    if point == "journal-remove":
        os.kill(os.getpid(), signal.SIGKILL)
    real_remove(self)
steps.apply, journal.Journal.remove = apply, remove
merge(MergeOptions(sys.argv[2], sys.argv[3], manifest=sys.argv[4], replace=sys.argv[5],
                   copy=True, log=lambda m: None))
"""


def _v1(n: int) -> dict[str, str]:
    return {f"share/p{i % 25}/f{i}": f"old {i}\n" for i in range(n)} | {
        "include/pkg/a.h": "1", "lib/libpkg.so.1": "1", "lib/libpkg.so": "-> libpkg.so.1"}


def _v2(n: int) -> dict[str, str]:
    return {f"share/p{i % 25}/f{i}": f"new {i}\n" for i in range(0, n, 2)} | {
        "include/pkg/a.h": "2", "include/pkg/b.h": "2", "lib/libpkg.so.2": "2",
        "lib/libpkg.so": "-> libpkg.so.2"}


def _without_manifests(d: dict[str, tuple[str, int, str]]) -> dict[str, tuple[str, int, str]]:
    return {k: v for k, v in d.items() if not k.startswith("var") and k != ".lock"}


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict, dict]:  # type: ignore[type-arg]
    base = tmp_path_factory.mktemp("kill")
    n = 1500
    old = base / "old"
    write_tree(old, {"include/other.h": "o", "share/other/x": "o"})
    merge(MergeOptions(str(write_tree(base / "s1", _v1(n))), str(old),
                       manifest=str(old / "var/m/pkg-1.json"), log=lambda m: None))
    staged = write_tree(base / "s2", _v2(n))
    ref = base / "ref"
    shutil.copytree(old, ref, symlinks=True)
    merge(MergeOptions(str(staged), str(ref), manifest=str(ref / "var/m/pkg-2.json"),
                       replace=str(ref / "var/m/pkg-1.json"), copy=True, log=lambda m: None))
    return old, staged, _without_manifests(digest(old)), _without_manifests(digest(ref))


def _check(prefix: Path, old: dict, new: dict) -> str:  # type: ignore[type-arg]
    ia("recover", str(prefix))
    assert not private(prefix), private(prefix)
    now = _without_manifests(digest(prefix))
    manifests = sorted(os.listdir(prefix / "var/m"))
    if now == old:
        assert manifests == ["pkg-1.json"]
        return "old"
    assert now == new, "neither the old state nor the new one"
    assert manifests == ["pkg-2.json"]
    return "new"


@pytest.mark.parametrize("point", ["apply:0", "apply:3", "apply:12", "journal-remove"])
def test_kill_at_a_rename_then_recover(tmp_path: Path, states, point: str) -> None:  # type: ignore[no-untyped-def]
    old_prefix, staged, old, new = states
    prefix = tmp_path / "p"
    shutil.copytree(old_prefix, prefix, symlinks=True)
    proc = subprocess.run([sys.executable, "-c", SHIM, point, str(staged), str(prefix),
                           str(prefix / "var/m/pkg-2.json"), str(prefix / "var/m/pkg-1.json")],
                          env=env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    status = ia("status", str(prefix)).stdout
    assert "interrupted" in status
    outcome = _check(prefix, old, new)
    assert outcome == ("new" if point == "journal-remove" else "old")


def test_kill_at_arbitrary_instants_then_recover(tmp_path: Path, states) -> None:  # type: ignore[no-untyped-def]
    old_prefix, staged, old, new = states
    outcomes = []
    for i, delay in enumerate((0.3, 0.8, 1.5, 3.0)):
        prefix = tmp_path / f"p{i}"
        shutil.copytree(old_prefix, prefix, symlinks=True)
        proc = subprocess.Popen([sys.executable, "-c", SHIM, "none", str(staged), str(prefix),
                                 str(prefix / "var/m/pkg-2.json"),
                                 str(prefix / "var/m/pkg-1.json")], env=env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait(timeout=60)
        outcomes.append(_check(prefix, old, new))
    assert set(outcomes) <= {"old", "new"}
