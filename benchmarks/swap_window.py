"""Swap window: how long the live directory is in flux, by package size.

For packages of 10, 1,000 and 10,000 ``.py`` files (``swpkg/``, in
subpackages of at most 100 files) in two versions, three measurements:

* **engine**: :class:`install_atomic.engine.transaction.Transaction` used directly
  (stage the package and an ``.egg-info``, commit); ``CommitResult.swap_seconds``
  is the time from the first rename of the commit to the last (the package
  directory is swapped, the new ``.egg-info`` added, the old one removed).
  Also the whole commit (lock, recovery check, plan, fsync of the staged tree,
  journal, renames, fsync, cleanup).
* **install_atomic**: ``python setup.py install_atomic``; the swap window is
  what the command prints (``... N renames in X ms``).
* **setup.py install --force**: setuptools' own flat install.  Its window is the
  time it spends writing into the live directory: measured as the ``install``
  command's run time minus its ``build`` step (that is ``install_lib`` copying
  and byte-compiling every file in place, plus ``install_egg_info`` and
  ``install_scripts``); ``install_lib`` alone is reported too.  Both are taken
  by wrapping the commands' ``run`` methods with a timer (see ``WRAPPER``).

Every number is the median of the repetitions (upgrades alternating the two
versions, after a first install that is not counted).

Usage: ``python3 benchmarks/swap_window.py`` (``--quick``: 10 and 1,000 files, one rep).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import _common as c

NAME = "swap_window"
VERSIONS = ("1.0", "2.0")

ENGINE = r'''
import json, os, sys, time
from install_atomic.engine.transaction import Transaction

site, n_files, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def layout(n):
    """Relative paths of n .py files: swpkg/__init__.py and subpackages of <= 100 files."""
    paths = ["swpkg/__init__.py"]
    k = 0
    while len(paths) < n:
        sub = f"swpkg/p{k:03d}"
        paths.append(sub + "/__init__.py")
        for j in range(99):
            if len(paths) >= n:
                break
            paths.append(f"{sub}/m{j:02d}.py")
        k += 1
    return paths


def stage_version(stage, version):
    for rel in layout(n_files):
        path = os.path.join(stage, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(f'VERSION = "{version}"\n')
    egg = os.path.join(stage, f"swpkg-{version}-py3.egg-info")
    os.makedirs(egg)
    with open(os.path.join(egg, "PKG-INFO"), "w") as f:
        f.write(f"Metadata-Version: 2.1\nName: swpkg\nVersion: {version}\n")
    with open(os.path.join(egg, "top_level.txt"), "w") as f:
        f.write("swpkg\n")


out = []
for i in range(reps + 1):
    version = ("1.0", "2.0")[i % 2]
    with Transaction("swpkg", site, log=lambda m: None, warn=lambda m: None) as txn:
        stage_version(txn.stage(site), version)
        res = txn.commit()
    out.append({
        "swap_s": res.swap_seconds,
        "commit_s": res.commit_seconds,
        "steps": [s.action for s in res.plan.steps],
    })
print(json.dumps({"files": len(layout(n_files)), "runs": out[1:]}))
'''

WRAPPER = r'''
import json, runpy, sys, time
import setuptools
from setuptools.command.build import build
from setuptools.command.install import install
from setuptools.command.install_lib import install_lib

TIMES = {}


def wrap(cls, key):
    orig = cls.run

    def run(self):
        t = time.perf_counter()
        try:
            return orig(self)
        finally:
            TIMES[key] = TIMES.get(key, 0.0) + time.perf_counter() - t

    cls.run = run


wrap(build, "build")
wrap(install, "install")
wrap(install_lib, "install_lib")
try:
    from install_atomic.frontends.setuptools_command import install_atomic
    from install_atomic.engine.transaction import Transaction
    wrap(install_atomic, "install_atomic")
    orig_commit = Transaction.commit

    def commit(self):
        t = time.perf_counter()
        try:
            return orig_commit(self)
        finally:
            TIMES["commit"] = time.perf_counter() - t

    Transaction.commit = commit
except ImportError:
    pass
sys.argv = ["setup.py"] + sys.argv[1:]
try:
    runpy.run_path("setup.py", run_name="__main__")
finally:
    print("BENCH-TIMES " + json.dumps(TIMES))
'''


def make_project(root: Path, version: str, files: int) -> Path:
    paths = ["swpkg/__init__.py"]
    k = 0
    while len(paths) < files:
        sub = f"swpkg/p{k:03d}"
        paths.append(sub + "/__init__.py")
        for j in range(99):
            if len(paths) >= files:
                break
            paths.append(f"{sub}/m{j:02d}.py")
        k += 1
    content = {rel: f'VERSION = "{version}"\n' + ("\n" if version == VERSIONS[1] else "")
               for rel in paths}
    packages = sorted({str(Path(p).parent).replace("/", ".") for p in paths})
    content["setup.py"] = c.setup_py("swpkg", version, packages=repr(packages))
    project = root / f"swpkg-{files}-{version}"
    c.write_files(project, content)
    c.set_mtime(project, time.time() - (3600 if version == VERSIONS[0] else 1800))
    return project


_TIMES = re.compile(r"^BENCH-TIMES (.*)$", re.M)
_SWAP = re.compile(r"(\d+) renames in ([\d.]+) ms")


def run_setup(venv: c.Venv, project: Path, wrapper: Path, *args: str) -> dict[str, Any]:
    t = time.perf_counter()
    proc = subprocess.run([str(venv.python), str(wrapper), *args], cwd=project,
                          env=c.clean_env(), capture_output=True, text=True, check=False,
                          timeout=1800)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise c.BenchmarkError(c.scrub(f"{args} failed:\n{proc.stdout[-3000:]}\n"
                                       f"{proc.stderr[-3000:]}"))
    m = _TIMES.search(proc.stdout)
    times = json.loads(m.group(1)) if m else {}
    out: dict[str, Any] = {"wall_s": wall, **{k + "_s": v for k, v in times.items()}}
    s = _SWAP.search(proc.stdout)
    if s:
        out["renames"] = int(s.group(1))
        out["swap_ms"] = float(s.group(2))
    return out


def measure_size(work: Path, venv_engine: c.Venv, files: int, reps: int,
                 cmd_reps: int) -> dict[str, Any]:
    c.log(f"{files} files: engine, {reps} commits")
    code = work / "engine.py"
    code.write_text(ENGINE)
    site = work / f"engine-{files}" / "site-packages"
    site.mkdir(parents=True)
    proc = venv_engine.run(code, site, str(files), str(reps), timeout=3600)
    engine = json.loads(proc.stdout.strip().splitlines()[-1])
    swaps = [r["swap_s"] * 1e3 for r in engine["runs"]]
    commits = [r["commit_s"] * 1e3 for r in engine["runs"]]

    wrapper = work / "wrapper.py"
    wrapper.write_text(WRAPPER)
    projects = {v: make_project(work / f"src-{files}", v, files) for v in VERSIONS}
    out: dict[str, Any] = {
        "files": engine["files"],
        "engine_swap_ms": round(c.median(swaps), 4),
        "engine_swap_ms_max": round(max(swaps), 4),
        "engine_commit_ms": round(c.median(commits), 2),
        "engine_steps": engine["runs"][0]["steps"],
    }
    for label, args in (("install_atomic", ["install_atomic"]),
                        ("setup.py install", ["install", "--force"])):
        c.log(f"{files} files: {label}, {cmd_reps} upgrades")
        venv = c.make_venv(work / f"venv-{files}-{label.split()[0]}")
        run_setup(venv, projects[VERSIONS[0]], wrapper, *args)  # first install
        runs = [run_setup(venv, projects[VERSIONS[(i + 1) % 2]], wrapper, *args)
                for i in range(cmd_reps)]

        def med(key: str, scale: float = 1.0, rs: list[dict[str, Any]] = runs) -> float | None:
            vals = [r[key] * scale for r in rs if key in r]
            return round(c.median(vals), 4) if vals else None

        if label == "install_atomic":
            out["command_swap_ms"] = med("swap_ms")
            out["command_swap_ms_max"] = round(max(r.get("swap_ms", 0) for r in runs), 4)
            out["command_renames"] = runs[0].get("renames")
            out["command_commit_ms"] = med("commit_s", 1e3)
            out["command_total_s"] = med("wall_s")
        else:
            live = [(r["install_s"] - r.get("build_s", 0.0)) * 1e3 for r in runs]
            out["setup_live_write_ms"] = round(c.median(live), 2)
            out["setup_install_lib_ms"] = med("install_lib_s", 1e3)
            out["setup_total_s"] = med("wall_s")
        c.run(["rm", "-rf", venv.root])
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    table = []
    for r in rows:
        ratio = r["setup_live_write_ms"] / r["command_swap_ms"] if r.get("command_swap_ms") else 0
        table.append([
            f"{r['files']:,}",
            f"{r['engine_swap_ms']:.3f} (max {r['engine_swap_ms_max']:.3f})",
            f"{r['command_swap_ms']:.3f} (max {r['command_swap_ms_max']:.3f})",
            f"{r['engine_commit_ms']:.1f}",
            f"{r['setup_install_lib_ms']:.0f}",
            f"{r['setup_live_write_ms']:.0f}",
            f"{ratio:,.0f}x",
            f"{r['command_total_s']:.2f} / {r['setup_total_s']:.2f}",
        ])
    return c.md_table(
        ["files", "engine swap window, ms", "`install_atomic` swap window, ms",
         "engine whole commit, ms", "`setup.py install` install_lib, ms",
         "`setup.py install` writing into the live dir, ms", "live-write / swap",
         "whole command, s (install_atomic / setup.py)"],
        table,
    )


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10,1000,10000", help="comma-separated file counts")
    p.add_argument("--reps", type=int, default=7, help="engine commits per size")
    p.add_argument("--command-reps", type=int, default=3, help="command upgrades per size")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes, args.reps, args.command_reps = [10, 1000], 3, 1
    with c.workdir(args, NAME) as work:
        venv = c.make_venv(work / "venv-engine")
        rows = [measure_size(work, venv, n, args.reps, args.command_reps) for n in sizes]
        data = {"benchmark": NAME, "quick": args.quick, "reps": args.reps,
                "command_reps": args.command_reps, "machine": c.machine_info(venv, work),
                "results": rows}
    c.save_results(NAME, data, args)
    goals = {}
    for r in rows:
        goals[f"{r['files']} files: engine swap window < 1 ms"] = r["engine_swap_ms"] < 1.0
        goals[f"{r['files']} files: install_atomic swap window < 1 ms"] = (
            r["command_swap_ms"] is not None and r["command_swap_ms"] < 1.0)
    return c.report(markdown(rows), goals)


if __name__ == "__main__":
    raise SystemExit(main())
