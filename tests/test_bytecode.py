"""Bytecode compiled in staging: final co_filename, invalidation modes, levels."""

from __future__ import annotations

import importlib.util
import marshal
from pathlib import Path

import pytest

from install_atomic.checks import bytecode


def _write_tree(stage: Path) -> None:
    (stage / "pkg" / "sub").mkdir(parents=True)
    (stage / "pkg" / "__init__.py").write_text("X = 1\n")
    (stage / "pkg" / "sub" / "__init__.py").write_text("def f():\n    raise ValueError\n")
    (stage / ".install-atomic-private").mkdir()
    (stage / ".install-atomic-private" / "mod.py").write_text("Y = 2\n")


def _pyc(source: Path, level: int = 0) -> Path:
    opt = "" if level == 0 else level
    return Path(importlib.util.cache_from_source(str(source), optimization=opt))


@pytest.mark.parametrize(
    ("mode", "flags"), [("timestamp", 0), ("checked-hash", 3), ("unchecked-hash", 1)]
)
def test_modes_write_the_matching_pyc_flags(tmp_path: Path, mode: str, flags: int) -> None:
    stage = tmp_path / "stage"
    _write_tree(stage)
    assert bytecode.compile_tree(str(stage), "/final/site", mode=mode, workers=1)
    data = _pyc(stage / "pkg" / "__init__.py").read_bytes()
    assert int.from_bytes(data[4:8], "little") == flags


def test_code_objects_name_the_final_path(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    _write_tree(stage)
    final = tmp_path / "site"
    assert bytecode.compile_tree(str(stage), str(final), workers=1)
    code = marshal.loads(_pyc(stage / "pkg" / "sub" / "__init__.py").read_bytes()[16:])
    assert code.co_filename == str(final / "pkg" / "sub" / "__init__.py")
    assert "stage" not in code.co_filename


def test_optimize_levels_and_private_entries(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    _write_tree(stage)
    assert bytecode.compile_tree(str(stage), "/final", optimize=[0, 2], workers=1)
    init = stage / "pkg" / "__init__.py"
    assert _pyc(init, 0).exists()
    assert _pyc(init, 2).exists()
    assert not _pyc(init, 1).exists()
    private = stage / ".install-atomic-private" / "__pycache__"
    assert not private.exists(), "install-atomic's own entries must not be compiled"


def test_syntax_error_reports_failure(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    (stage / "bad").mkdir(parents=True)
    (stage / "bad" / "__init__.py").write_text("def (:\n")
    assert bytecode.compile_tree(str(stage), "/final", workers=1) is False


def test_parallel_compilation_matches_serial(tmp_path: Path) -> None:
    trees = {}
    for workers in (1, 0):
        stage = tmp_path / f"stage{workers}"
        pkg = stage / "big"
        pkg.mkdir(parents=True)
        for i in range(bytecode.PARALLEL_THRESHOLD + 5):
            (pkg / f"m{i}.py").write_text(f"V = {i}\n")
        assert bytecode.count_sources(str(stage)) == bytecode.PARALLEL_THRESHOLD + 5
        assert bytecode.compile_tree(str(stage), "/final", mode="checked-hash", workers=workers)
        trees[workers] = {
            p.relative_to(stage): p.read_bytes() for p in stage.rglob("*.pyc")
        }
    assert len(trees[0]) == bytecode.PARALLEL_THRESHOLD + 5
    assert trees[0] == trees[1]
