"""install-atomic test project (setuptools, pyproject.toml only)."""

from pathlib import Path

VERSION = "1.0"
BACKEND = "setuptools"
GREETING = (Path(__file__).parent / "greeting.txt").read_text(encoding="utf-8").strip()
