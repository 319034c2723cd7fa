"""docs/tutorial.md runs as written and prints what it shows.

Every command of every ``console`` block (a line starting with ``$ `` or ``(.venv) $ ``) is
run in order, in a fresh copy of the checkout's ``examples/`` (without build output), with a
real venv from ``make_venv`` at ``<copy>/.venv``.  Each command must exit 0, and its output
(stdout and stderr, merged) must match what the tutorial shows under it.

Mapping of the set-up steps onto the fixture (:data:`SET_UP`, checked to be in the tutorial
word for word, so that a change there fails here until this mapping follows it):

* ``python3 -m venv .venv``: ``make_venv`` creates ``<copy>/.venv``, whose interpreter sees
  a toolset (pip, setuptools, installer, packaging, filelock, install-atomic built from this
  repository) through a ``.pth`` file;
* ``. .venv/bin/activate``: every command runs with ``<copy>/.venv/bin`` first on ``PATH``
  and ``VIRTUAL_ENV`` set;
* ``python -m pip install .``: not run (install-atomic is already in the toolset); its shown
  output is not checked.  Its ``install-atomic`` console script, which pip would write into
  ``.venv/bin``, is written there as pip writes it.

Matching (:func:`match_output`) is that of doctest's ELLIPSIS, by whole lines: a shown line
``...`` stands for any number of lines; every other shown line must equal the next line of
the real output; a block of shown output that neither starts nor ends with ``...`` is the
whole output; a command shown without output must print nothing.  Both sides are normalised
first (:func:`normalise`):

* the venv's absolute path becomes ``.venv`` and the private temporary directory ``/tmp``
  (the tutorial's note on shortened paths); this interpreter's ``X.Y`` in ``pythonX.Y/``,
  ``-pyX.Y.egg-info`` and ``cpython-XY`` becomes the tutorial's 3.11 (and back in commands);
* pids and random names (``.install-atomic-<pid>-<random>``,
  ``install-atomic-build-<pid>-<random>``) and timings (``0.11 ms``, ``(5.9s in all)``)
  become placeholders;
* install-atomic's phase lines (``install-atomic: resolving ...``, ``... committing``) are
  dropped from the real output: on a terminal they share one status line that is cleared at
  the end, and the tutorial shows what a terminal keeps.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import REPO_ROOT, MakeVenv, clean_env

TUTORIAL = REPO_ROOT / "docs" / "tutorial.md"
PROMPTS = ("(.venv) $ ", "$ ")
ELLIPSIS = "..."
TUTORIAL_PY = "3.11"  # the Python version in the tutorial's paths

#: Set-up commands of the tutorial that the fixture does instead (see the module docstring).
SET_UP = {
    "python3 -m venv .venv": "make_venv creates <copy>/.venv",
    ". .venv/bin/activate": "PATH and VIRTUAL_ENV of every command",
    "python -m pip install .": "install-atomic is in the toolset; its script is written",
}

#: install-atomic's phases: one status line on a terminal, cleared at the end.
PHASE = re.compile(
    r"install-atomic: (\[\d+/\d+\] )?(resolving |fetching or building |staging |compiling "
    r"|checking imports |running '|committing$)"
)
VOLATILE = (
    (re.compile(r"(install-atomic-build|\.install-atomic)-\d+-[a-z0-9_]{8}\b"), r"\1-PID-RANDOM"),
    (re.compile(r"(\.install-atomic)-[a-z0-9_]{8}\b"), r"\1-RANDOM"),  # a --dry-run's stage
    (re.compile(r"\b\d+(\.\d+)? ms\b"), "T ms"),
    (re.compile(r"\(\d+(\.\d+)?s in all\)"), "(Ts in all)"),
)

CONSOLE_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from install_atomic.frontends.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


@dataclass
class Step:
    line: int  # in the tutorial
    command: str
    shown: list[str] = field(default_factory=list)


def parse(text: str) -> list[Step]:
    """The commands of every ``console`` block, each with the output shown under it."""
    steps: list[Step] = []
    in_block = False
    for number, line in enumerate(text.splitlines(), 1):
        if not in_block:
            in_block = line.strip() == "```console"
            current = None
            continue
        if line.startswith("```"):
            in_block = False
            continue
        prompt = next((p for p in PROMPTS if line.startswith(p)), None)
        if prompt is not None:
            current = Step(number, line[len(prompt):].strip())
            steps.append(current)
        elif current is None:
            raise AssertionError(f"tutorial line {number}: output before any command: {line!r}")
        else:
            current.shown.append(line.rstrip())
    return steps


@dataclass
class Normaliser:
    venv: str
    tmp: str
    py: str = f"{sys.version_info[0]}.{sys.version_info[1]}"

    def __call__(self, line: str) -> str:
        for path in sorted({self.venv, os.path.realpath(self.venv)}, key=len, reverse=True):
            line = line.replace(path, ".venv")
        for path in sorted({self.tmp, os.path.realpath(self.tmp)}, key=len, reverse=True):
            line = line.replace(path, "/tmp")
        if self.py != TUTORIAL_PY:
            line = self._swap_py(line, self.py, TUTORIAL_PY)
        for pattern, replacement in VOLATILE:
            line = pattern.sub(replacement, line)
        return line.rstrip()

    def command(self, command: str) -> str:
        """The tutorial's command for this interpreter."""
        return command if self.py == TUTORIAL_PY else self._swap_py(command, TUTORIAL_PY, self.py)

    @staticmethod
    def _swap_py(text: str, old: str, new: str) -> str:
        text = text.replace(f"python{old}/", f"python{new}/")
        text = text.replace(f"-py{old}.egg-info", f"-py{new}.egg-info")
        return text.replace(f"cpython-{old.replace('.', '')}", f"cpython-{new.replace('.', '')}")


def normalise(output: str, norm: Normaliser) -> list[str]:
    lines = [norm(line) for line in output.splitlines()]
    return [line for line in lines if not PHASE.match(line)]


def match_output(shown: list[str], real: list[str]) -> bool:
    """doctest's ELLIPSIS by whole lines: ``...`` matches any run of lines (or none)."""
    if not shown:
        return not real
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if i == len(shown):
            return j == len(real)
        key = (i, j)
        if key not in memo:
            if shown[i] == ELLIPSIS:
                memo[key] = any(match(i + 1, k) for k in range(j, len(real) + 1))
            else:
                memo[key] = j < len(real) and shown[i] == real[j] and match(i + 1, j + 1)
        return memo[key]

    return match(0, 0)


def test_match_output_semantics() -> None:
    real = ["a", "b", "c", "d"]
    assert match_output(["a", "...", "d"], real)
    assert match_output(["...", "c", "d"], real)
    assert match_output(["...", "b", "..."], real)
    assert match_output(["a", "b", "...", "b", "c", "d"], real) is False
    assert not match_output(["a", "c", "..."], real)  # b is neither shown nor elided
    assert not match_output(["a", "...", "x", "d"], real)  # a changed line
    assert not match_output(["a", "b", "c"], real)  # d is printed, not shown
    assert not match_output([], ["x"])  # shown without output: must print nothing
    assert match_output([], [])


def test_tutorial_parses_and_sets_up_as_mapped() -> None:
    steps = parse(TUTORIAL.read_text(encoding="utf-8"))
    commands = [step.command for step in steps]
    assert commands[: len(SET_UP)] == list(SET_UP), (
        f"the tutorial's set-up is no longer {list(SET_UP)}: update SET_UP and its mapping"
    )
    assert len(steps) > len(SET_UP)


def _copy_examples(dest: Path) -> None:
    shutil.copytree(
        REPO_ROOT / "examples",
        dest / "examples",
        ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", "*.pyc"),
    )


@pytest.mark.slow
def test_tutorial_runs_as_written(make_venv: MakeVenv, tmp_path: Path) -> None:
    steps = parse(TUTORIAL.read_text(encoding="utf-8"))
    checkout = tmp_path / "checkout"
    _copy_examples(checkout)
    venv = make_venv("newest", name="checkout/.venv")
    script = venv.bin / "install-atomic"
    script.write_text(CONSOLE_SCRIPT.format(python=venv.python), encoding="utf-8")
    script.chmod(0o755)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    norm = Normaliser(venv=str(venv.root), tmp=str(tmp))
    env = clean_env(
        {
            "PATH": f"{venv.bin}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            "VIRTUAL_ENV": str(venv.root),
            "TMPDIR": str(tmp),
            "PYTHONUNBUFFERED": "1",  # stdout and stderr interleave as on a terminal
            "PYTHONDONTWRITEBYTECODE": None,  # as in a new shell (setuptools warns about it)
            "LC_ALL": "C.UTF-8",
        }
    )
    cwd = checkout
    for step in steps:
        where = f"{TUTORIAL.name}:{step.line}: {step.command}"
        if step.command in SET_UP:
            continue
        command = norm.command(step.command)
        if command.startswith("cd "):
            cwd = (cwd / command[3:].strip()).resolve()
            assert cwd.is_dir() and checkout in (cwd, *cwd.parents), where
            assert not step.shown, where
            continue
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
            check=False,
        )
        real = normalise(proc.stdout, norm)
        shown = [norm(line) for line in step.shown]
        report = "\n".join(
            [where, "---- shown (normalised) ----", *shown, "---- printed (normalised) ----",
             *real]
        )
        assert proc.returncode == 0, f"exit status {proc.returncode}\n{report}"
        assert match_output(shown, real), f"output differs\n{report}"
