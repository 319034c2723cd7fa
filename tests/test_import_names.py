"""Which names the import check imports from a staged tree."""

from __future__ import annotations

from pathlib import Path

from install_atomic.checks.verify import importable_names


def test_modules_packages_extensions_and_namespaces(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "single.py").write_text("")
    (tmp_path / "_speed.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    (tmp_path / "pep420" / "alpha").mkdir(parents=True)
    (tmp_path / "pep420" / "alpha" / "__init__.py").write_text("")
    (tmp_path / "pku" / "beta").mkdir(parents=True)
    (tmp_path / "pku" / "__init__.py").write_text(
        "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"
    )
    (tmp_path / "pku" / "beta" / "__init__.py").write_text("")
    (tmp_path / "demo-1.0.egg-info").mkdir()
    (tmp_path / "demo-1.0-nspkg.pth").write_text("")
    (tmp_path / ".install-atomic-owner").write_text("")
    (tmp_path / "__pycache__").mkdir()
    assert importable_names(str(tmp_path)) == [
        "_speed",
        "pep420.alpha",
        "pkg",
        "pku",
        "pku.beta",
        "single",
    ]
