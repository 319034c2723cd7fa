"""Helpers for the merge tests and benchmark: tree digests, staged trees, the CLI."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"

Digest = dict[str, tuple[str, int, str]]


def digest(root: str | os.PathLike[str], *, skip_pycache: bool = False) -> Digest:
    """Every entry below *root*: (type, mode, sha256 or link target), by relative path."""
    out: Digest = {}
    root = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        if skip_pycache:
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", mode, "")
            else:
                with open(path, "rb") as f:
                    out[rel] = ("file", mode, hashlib.sha256(f.read()).hexdigest())
    return out


def private(root: str | os.PathLike[str]) -> list[str]:
    """Entries named ``.install-atomic*`` below *root*."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        found += [os.path.join(dirpath, n) for n in dirnames + filenames
                  if n.startswith(".install-atomic")]
    return found


def write_tree(root: str | os.PathLike[str], entries: Mapping[str, str | bytes]) -> Path:
    """Write files (content) and symlinks (``"-> target"``) below *root*."""
    base = Path(root)
    for rel, content in entries.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str) and content.startswith("-> "):
            os.symlink(content[3:], path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return base


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [e.get("PYTHONPATH")])])
    return e


def ia(*args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    """``python -m install_atomic ARGS`` from this repository."""
    proc = subprocess.run([sys.executable, "-m", "install_atomic", *args], env=env(),
                          capture_output=True, text=True, timeout=600, check=False, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"install_atomic {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def files_of(digest_: Digest, prefix: str = "") -> set[str]:
    return {k for k, v in digest_.items() if v[0] != "dir" and k.startswith(prefix)}


def python_site(prefix: str | os.PathLike[str]) -> str:
    return os.path.join(os.fspath(prefix), "lib", f"python{sys.version_info[0]}."
                        f"{sys.version_info[1]}", "site-packages")


def run_ok(cmd: Sequence[str], **kw: object) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=600, check=False,
                          **kw)
    if proc.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout
