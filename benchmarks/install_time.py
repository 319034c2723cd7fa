"""Install time: ``install_atomic`` and its options vs ``setup.py install --force``.

A real pure-Python project, its sdist downloaded from PyPI with::

    pip download --no-binary :all: --no-deps networkx==3.6.1

(671 ``.py`` files; ``--project NAME==VERSION`` picks another).  Projects
configured by ``pyproject.toml`` alone, like networkx, get a one-line
``setup.py`` (``from setuptools import setup; setup()``) so that
``python setup.py ...`` works; setuptools then reads ``pyproject.toml``.

Each variant has its own venv and its own copy of the unpacked sdist and is
first run once (not timed), so every timed run is a reinstall over the same
version with a warm ``build/`` directory.  Rounds interleave the variants;
each is timed (wall clock of the whole command) three times, and the median
is reported with its ratio to the median of ``setup.py install --force``:

* ``setup.py install --force`` (the anchor; byte-compiles in place, timestamp pycs)
* ``install_atomic`` (defaults: checked-hash pycs, import check, fsync)
* ``install_atomic --no-verify``
* ``install_atomic --no-compile``
* ``install_atomic --no-fsync``
* ``install_atomic --pyc-mode timestamp``

Then parallel byte-compilation: ``install_atomic.checks.bytecode.compile_tree`` of a
copy of the package's sources with ``workers=0`` (every core, here 2) and
``workers=1``, ``__pycache__`` removed before each run, median of three.

Usage: ``python3 benchmarks/install_time.py`` (``--quick``: a generated
150-module project instead of the download, one timed run each).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import _common as c

NAME = "install_time"
DEFAULT_PROJECT = "networkx==3.6.1"
ANCHOR = "setup.py install --force"
VARIANTS: dict[str, list[str]] = {
    ANCHOR: ["install", "--force"],
    "install_atomic": ["install_atomic"],
    "install_atomic --no-verify": ["install_atomic", "--no-verify"],
    "install_atomic --no-compile": ["install_atomic", "--no-compile"],
    "install_atomic --no-fsync": ["install_atomic", "--no-fsync"],
    "install_atomic --pyc-mode timestamp": ["install_atomic", "--pyc-mode", "timestamp"],
}

COMPILE = r'''
import json, os, shutil, sys, time
from install_atomic.checks.bytecode import compile_tree

tree, final, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])


def clear():
    for dirpath, dirnames, _ in os.walk(tree):
        if "__pycache__" in dirnames:
            shutil.rmtree(os.path.join(dirpath, "__pycache__"))
            dirnames.remove("__pycache__")


times = {"workers=0": [], "workers=1": []}
for _ in range(rounds):
    for workers in (0, 1):
        clear()
        t = time.perf_counter()
        ok = compile_tree(tree, final, workers=workers)
        times[f"workers={workers}"].append(time.perf_counter() - t)
        assert ok
print(json.dumps({"times": times, "cpus": os.cpu_count()}))
'''


def fetch_sdist(spec: str) -> Path:
    """The sdist of *spec* from the cache, downloaded with pip on first use."""
    dest = c.cache_dir() / "sdists" / spec.replace("==", "-")
    found = sorted(dest.glob("*.tar.gz"))
    if found:
        return found[0]
    dest.mkdir(parents=True, exist_ok=True)
    c.log(f"pip download --no-binary :all: --no-deps {spec}")
    c.run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
           spec, "-d", dest])
    found = sorted(dest.glob("*.tar.gz"))
    if not found:
        raise c.BenchmarkError(f"pip download of {spec} gave no .tar.gz sdist")
    return found[0]


def unpack(sdist: Path, into: Path) -> Path:
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:  # Python < 3.9.17 / 3.10.12 / 3.11.4
            tar.extractall(into)
    roots = [p for p in into.iterdir() if p.is_dir()]
    if len(roots) != 1:
        raise c.BenchmarkError(f"unexpected sdist layout: {[p.name for p in roots]}")
    root = roots[0]
    if not (root / "setup.py").exists():
        (root / "setup.py").write_text("from setuptools import setup\n\nsetup()\n")
    return root


def generated(into: Path, modules: int = 150) -> Path:
    root = into / "genpkg-1.0"
    files = {"setup.py": c.setup_py("genpkg", "1.0", packages="['genpkg']"),
             "genpkg/__init__.py": 'VERSION = "1.0"\n'}
    for i in range(modules):
        body = "".join(f"\n\ndef f{k}(x):\n    return x * {k} + {i}\n" for k in range(20))
        files[f"genpkg/mod_{i:03d}.py"] = f'"""Module {i}."""\n{body}'
    c.write_files(root, files)
    return root


def count_py(root: Path) -> int:
    return sum(1 for p in root.rglob("*.py")
               if "build" not in p.relative_to(root).parts and p.name != "setup.py")


def timed(venv: c.Venv, project: Path, args: list[str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run([str(venv.python), "setup.py", *args], cwd=project, env=c.clean_env(),
                          capture_output=True, text=True, check=False, timeout=1800)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise c.BenchmarkError(c.scrub(f"setup.py {' '.join(args)} failed:\n"
                                       f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"))
    return elapsed


def markdown(rows: dict[str, dict[str, Any]]) -> str:
    base = rows[ANCHOR]["median_s"]
    table = [[f"`{name}`", f"{r['median_s']:.2f}", ", ".join(f"{x:.2f}" for x in r["runs_s"]),
              f"{r['median_s'] / base:.2f}x"] for name, r in rows.items()]
    return c.md_table(["command", "median, s", "runs, s", f"ratio to `{ANCHOR}`"], table)


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--project", default=DEFAULT_PROJECT, help="NAME==VERSION of an sdist on PyPI")
    p.add_argument("--reps", type=int, default=3, help="timed runs per variant")
    args = p.parse_args(argv)
    if args.quick:
        args.reps = 1
    with c.workdir(args, NAME) as work:
        if args.quick:
            source, label = generated(work / "src"), "generated genpkg (150 modules)"
        else:
            source, label = unpack(fetch_sdist(args.project), work / "src"), args.project
        py_files = count_py(source)
        c.log(f"{label}: {py_files} .py files")
        venvs, projects = {}, {}
        for i, (name, cmd) in enumerate(VARIANTS.items()):
            venvs[name] = c.make_venv(work / f"venv{i}")
            projects[name] = work / f"proj{i}"
            shutil.copytree(source, projects[name], symlinks=True)
            c.log(f"warm-up: {name}")
            timed(venvs[name], projects[name], cmd)
        runs: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for r in range(args.reps):
            for name, cmd in VARIANTS.items():
                runs[name].append(timed(venvs[name], projects[name], cmd))
            c.log(f"round {r + 1}/{args.reps}: " + ", ".join(
                f"{n} {v[-1]:.2f}s" for n, v in runs.items()))
        rows = {name: {"median_s": round(c.median(v), 3), "runs_s": [round(x, 3) for x in v]}
                for name, v in runs.items()}
        for row in rows.values():
            row["ratio"] = round(row["median_s"] / rows[ANCHOR]["median_s"], 3)

        c.log("compile_tree: workers=0 vs workers=1")
        tree = work / "compile" / "tree"
        package = next(d for d in sorted(source.iterdir())
                       if d.is_dir() and (d / "__init__.py").exists())
        shutil.copytree(package, tree / package.name)
        script = work / "compile.py"
        script.write_text(COMPILE)
        vany = next(iter(venvs.values()))
        out = vany.run(script, tree, work / "final-site-packages", str(max(args.reps, 1)),
                       cwd=work)
        comp = json.loads(out.stdout.strip().splitlines()[-1])
        compile_rows = {k: round(c.median(v), 3) for k, v in comp["times"].items()}
        data = {
            "benchmark": NAME, "quick": args.quick, "project": label, "py_files": py_files,
            "reps": args.reps, "machine": c.machine_info(vany, work), "results": rows,
            "compile_tree": {"median_s": compile_rows, "runs_s": comp["times"],
                             "cpus": comp["cpus"],
                             "speedup": round(compile_rows["workers=1"]
                                              / compile_rows["workers=0"], 2)},
        }
    c.save_results(NAME, data, args)
    ct = data["compile_tree"]
    md = markdown(rows) + "\n\n" + c.md_table(
        ["compile_tree of the package's sources", "median, s"],
        [["workers=0 (all cores)", f"{ct['median_s']['workers=0']:.2f}"],
         ["workers=1", f"{ct['median_s']['workers=1']:.2f}"],
         ["speed-up", f"{ct['speedup']:.2f}x"]],
    )
    return c.report(md, {"every install succeeded": True})


if __name__ == "__main__":
    raise SystemExit(main())
