"""Which names the import check imports from a staged tree."""

from __future__ import annotations

from pathlib import Path

from install_atomic.checks.verify import importable_names


def test_modules_packages_extensions_and_namespaces(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "single.py").write_text("")
    (tmp_path / "_speed.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\0PyInit__speed\0")
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


def test_only_real_extension_modules_outside_test_packages(tmp_path: Path) -> None:
    """A shared library that exports no ``PyInit_<name>`` is loaded with ctypes, never by
    the import system (pycryptodome's ``_raw_aes.abi3.so``); a test package's extension
    may need test-only dependencies (greenlet's ``tests/_test_extension``)."""
    (tmp_path / "pkg" / "tests").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "tests" / "__init__.py").write_text("import psutil\n")
    (tmp_path / "pkg" / "_real.abi3.so").write_bytes(b"\x7fELF\0PyInit__real\0")
    (tmp_path / "pkg" / "_raw_aes.abi3.so").write_bytes(b"\x7fELF\0AES_start_operation\0")
    (tmp_path / "pkg" / "tests" / "_test_ext.abi3.so").write_bytes(b"\0PyInit__test_ext\0")
    (tmp_path / "_ctypes_only.abi3.so").write_bytes(b"\x7fELF\0\0")
    assert importable_names(str(tmp_path)) == ["pkg", "pkg._real"]
