"""Readers during upgrades: what a process importing a package sees while it is reinstalled.

A generated package ``bigpkg`` (320 modules + ``__init__``) exists in two
versions.  For each installer, in a fresh venv of its own, the installer
alternates the two versions back-to-back while reader threads each loop on a
fresh interpreter::

    python -c "import bigpkg; bigpkg.check()"

(bytecode writing enabled, working directory an empty one).  ``check()`` imports
every submodule and raises ``bigpkg.MixedVersionsError`` if their ``VERSION``
differ.  Each import is classified from the interpreter's exit status and the
exception it died of:

* **ok**: exit 0;
* **mixed**: ``MixedVersionsError`` (every module imported, of two versions);
* **broken**: any other exception (ImportError, ModuleNotFoundError,
  FileNotFoundError, AttributeError, SyntaxError, other), by type.

Installers, one after the other in one run (each with its own venv):

* ``install_atomic``: ``python setup.py install_atomic`` in the version's project;
* ``install-atomic install``: ``python -m install_atomic install --force-reinstall
  --no-deps --no-index <wheel>`` (the wheel front end);
* ``setup.py install``: ``python setup.py install --force`` (setuptools' flat
  install; checked to leave no ``.egg``);
* ``pip``: ``pip install --force-reinstall --no-deps --no-index <wheel>``;
* ``uv``: ``uv pip install --reinstall --no-deps --no-index --python <venv> <wheel>``.

Wheels are built once per version, before any timing.

Usage: ``python3 benchmarks/readers.py --upgrades 100`` (``--quick``: 4 upgrades each).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as c

NAME = "readers"
VERSIONS = ("1.0", "2.0")
INSTALLERS = ("install_atomic", "install-atomic install", "setup.py install", "pip", "uv")
#: The installers whose goals this benchmark checks.
ATOMIC = ("install_atomic", "install-atomic install")
BROKEN_TYPES = (
    "ImportError",
    "ModuleNotFoundError",
    "FileNotFoundError",
    "AttributeError",
    "SyntaxError",
)
READ_CMD = "import bigpkg; bigpkg.check()"


# --------------------------------------------------------------------------- the package


def module_source(index: int, version: str) -> str:
    pad = "# padding of the second release\n" * (1 if version == VERSIONS[1] else 0)
    funcs = "".join(
        f"\n\ndef f_{k}(x):\n    return x * {k} + {index}\n" for k in range(12)
    )
    return (
        f'"""bigpkg.mod_{index:03d}, release {version}."""\n\n'
        f'VERSION = "{version}"\n{pad}'
        f"TABLE = tuple(range({index}, {index} + 64))\n"
        f"{funcs}\n\n"
        f"class Thing{index}:\n"
        f"    version = VERSION\n\n"
        f"    def value(self):\n"
        f"        return sum(TABLE) + f_3({index})\n"
    )


def init_source(version: str, names: list[str]) -> str:
    return f'''"""bigpkg {version}: {len(names)} submodules; check() imports them all."""

VERSION = "{version}"
NAMES = {names!r}


class MixedVersionsError(AssertionError):
    """Raised by check() when the submodules are not all of one version."""


def check():
    import importlib

    versions = {{"bigpkg": VERSION}}
    for name in NAMES:
        versions[name] = importlib.import_module("bigpkg." + name).VERSION
    distinct = sorted(set(versions.values()))
    if len(distinct) != 1:
        counts = {{v: sum(1 for x in versions.values() if x == v) for v in distinct}}
        raise MixedVersionsError("mixed versions: " + repr(counts))
    return VERSION
'''


def make_project(root: Path, version: str, modules: int) -> Path:
    names = [f"mod_{i:03d}" for i in range(modules)]
    files: dict[str, str] = {
        "setup.py": c.setup_py("bigpkg", version, packages="['bigpkg']"),
        "bigpkg/__init__.py": init_source(version, names),
    }
    for i in range(modules):
        files[f"bigpkg/mod_{i:03d}.py"] = module_source(i, version)
    project = root / f"bigpkg-{version}"
    c.write_files(project, files)
    c.set_mtime(project, time.time() - (3600 if version == VERSIONS[0] else 1800))
    return project


# --------------------------------------------------------------------------- readers


_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


def classify(proc: subprocess.CompletedProcess[str]) -> tuple[str, str, str]:
    """(outcome, exception type, message) of one reader run."""
    if proc.returncode == 0:
        return "ok", "", ""
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit status {proc.returncode}"
    match = _EXC_LINE.match(last)
    exc = match.group(1) if match else f"exit {proc.returncode}"
    if exc.endswith("MixedVersionsError"):
        return "mixed", exc, last
    kind = exc if exc in BROKEN_TYPES else "other"
    return "broken", kind, last


@dataclass
class ReaderLog:
    outcomes: list[tuple[float, str, str]] = field(default_factory=list)
    samples: dict[str, str] = field(default_factory=dict)


def reader_loop(python: Path, cwd: Path, stop: threading.Event, out: ReaderLog,
                t0: float) -> None:
    env = c.clean_env()
    while not stop.is_set():
        started = time.monotonic()
        proc = subprocess.run([str(python), "-c", READ_CMD], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        outcome, kind, message = classify(proc)
        out.outcomes.append((started - t0, outcome, kind))
        key = kind or outcome
        if outcome != "ok" and key not in out.samples:
            out.samples[key] = c.scrub(message)[:300]


# --------------------------------------------------------------------------- installers


def installer_command(name: str, venv: c.Venv, project: Path,
                      wheel: Path) -> tuple[list[str], Path]:
    py = str(venv.python)
    if name == "install_atomic":
        return [py, "setup.py", "install_atomic"], project
    if name == "install-atomic install":
        return [py, "-m", "install_atomic", "install", "-q", "--force-reinstall", "--no-deps",
                "--no-index", str(wheel)], venv.root
    if name == "setup.py install":
        return [py, "setup.py", "install", "--force"], project
    if name == "pip":
        return [py, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps",
                "--no-index", str(wheel)], venv.root
    if name == "uv":
        return [str(venv.bin / "uv"), "pip", "install", "-q", "--reinstall", "--no-deps",
                "--no-index", "--python", py, str(wheel)], venv.root
    raise ValueError(name)


_SWAP = re.compile(r"(\d+) renames in ([\d.]+) ms")


def run_installer(name: str, work: Path, projects: dict[str, Path], wheels: dict[str, Path],
                  upgrades: int, readers: int) -> dict[str, Any]:
    c.log(f"{name}: making a fresh venv")
    base = work / re.sub(r"\W+", "-", name)
    venv = c.make_venv(base / "venv")
    # Each installer gets its own copies of the projects (setup.py writes build/ there).
    local = {}
    for version, src in projects.items():
        local[version] = base / src.name
        shutil.copytree(src, local[version])
    empty = base / "cwd"
    empty.mkdir()
    env = c.clean_env()

    def install(version: str) -> subprocess.CompletedProcess[str]:
        cmd, cwd = installer_command(name, venv, local[version], wheels[version])
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=600, check=False)

    first = install(VERSIONS[0])
    if first.returncode != 0:
        raise c.BenchmarkError(c.scrub(f"{name}: first install failed:\n{first.stderr}"))
    entries = sorted(p.name for p in venv.site_packages.iterdir() if "bigpkg" in p.name)
    if name == "setup.py install" and (
        not (venv.site_packages / "bigpkg").is_dir() or any(e.endswith(".egg") for e in entries)
    ):
        raise c.BenchmarkError(f"setup.py install did not do a flat install: {entries}")
    sanity = subprocess.run([str(venv.python), "-c", READ_CMD], cwd=empty, env=env,
                            capture_output=True, text=True, check=False)
    if sanity.returncode != 0:
        raise c.BenchmarkError(c.scrub(f"{name}: bigpkg does not import:\n{sanity.stderr}"))

    logs = [ReaderLog() for _ in range(readers)]
    stop = threading.Event()
    t0 = time.monotonic()
    threads = [threading.Thread(target=reader_loop,
                                args=(venv.python, empty, stop, log, t0), daemon=True)
               for log in logs]
    for t in threads:
        t.start()
    durations, swaps, failures = [], [], []
    broken_windows: list[tuple[float, float]] = []  # from a failed upgrade's end to the next's
    failed_end: float | None = None
    started = time.monotonic()
    for i in range(upgrades):
        version = VERSIONS[(i + 1) % 2]
        t = time.monotonic()
        proc = install(version)
        durations.append(time.monotonic() - t)
        end = time.monotonic() - t0
        if failed_end is not None:
            broken_windows.append((failed_end, end))
            failed_end = None
        if proc.returncode != 0:
            failures.append(c.scrub((proc.stdout + proc.stderr)[-2000:]))
            failed_end = end
        m = _SWAP.search(proc.stdout)
        if m:
            swaps.append(float(m.group(2)))
        if (i + 1) % 20 == 0:
            c.log(f"{name}: {i + 1}/{upgrades} upgrades")
    elapsed = time.monotonic() - started
    stop.set()
    for t in threads:
        t.join()
    final = subprocess.run([str(venv.python), "-c", READ_CMD], cwd=empty, env=env,
                           capture_output=True, text=True, check=False)
    outcomes = [o for log in logs for o in log.outcomes if o[0] <= elapsed + (started - t0)]
    counts = Counter(o[1] for o in outcomes)
    kinds = Counter(o[2] for o in outcomes if o[1] == "broken")
    if failed_end is not None:
        broken_windows.append((failed_end, float("inf")))
    after_failed = sum(1 for o in outcomes if o[1] == "broken"
                       and any(a <= o[0] < b for a, b in broken_windows))
    samples: dict[str, str] = {}
    for log in logs:
        for k, v in log.samples.items():
            samples.setdefault(k, v)
    leftovers = c.find_leftovers(venv.site_packages, venv.bin)
    return {
        "installer": name,
        "upgrades": upgrades,
        "failed_upgrades": len(failures),
        "failure_samples": failures[:3],
        "seconds": round(elapsed, 2),
        "median_upgrade_s": round(c.median(durations), 3),
        "median_swap_ms": round(c.median(swaps), 3) if swaps else None,
        "max_swap_ms": round(max(swaps), 3) if swaps else None,
        "imports": len(outcomes),
        "ok": counts["ok"],
        "broken": counts["broken"],
        "mixed": counts["mixed"],
        "broken_by_type": dict(kinds),
        "broken_after_failed_upgrade": after_failed,
        "samples": samples,
        "final_import_ok": final.returncode == 0,
        "leftovers": leftovers,
        "versions": venv.versions(),
    }


# --------------------------------------------------------------------------- report


def markdown(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["broken_by_type"].items())) or "-"
        if r.get("broken_after_failed_upgrade"):
            kinds += f" ({r['broken_after_failed_upgrade']} after a failed upgrade)"
        rows.append([
            f"`{r['installer']}`", r["upgrades"], r["failed_upgrades"],
            f"{r['median_upgrade_s']:.2f}", r["imports"],
            f"{r['broken']} ({c.pct(r['broken'], r['imports'])})",
            f"{r['mixed']} ({c.pct(r['mixed'], r['imports'])})", kinds,
        ])
    return c.md_table(
        ["installer", "upgrades", "failed upgrades", "s / upgrade", "imports", "broken",
         "mixed versions", "broken by exception"],
        rows,
    )


PLOT = r'''
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

data = json.load(open(sys.argv[1]))
results = data["results"]
names = [r["installer"] for r in results]
ok = [100 * r["ok"] / max(r["imports"], 1) for r in results]
mixed = [100 * r["mixed"] / max(r["imports"], 1) for r in results]
broken = [100 * r["broken"] / max(r["imports"], 1) for r in results]
fig, ax = plt.subplots(figsize=(8, 3.6))
y = range(len(names))
ax.barh(y, ok, color="#4c9a2a", label="ok")
ax.barh(y, mixed, left=ok, color="#e0a030", label="mixed versions")
ax.barh(y, broken, left=[a + b for a, b in zip(ok, mixed)], color="#c0392b", label="broken")
for i, r in enumerate(results):
    failed = f", {r['failed_upgrades']} failed" if r["failed_upgrades"] else ""
    ax.text(101, i, f"broken {broken[i]:.1f} %  mixed {mixed[i]:.1f} %\n"
            f"{r['imports']} imports, {r['upgrades']} upgrades{failed}", va="center", fontsize=8)
ax.set_yticks(list(y))
ax.set_yticklabels(names)
ax.invert_yaxis()
ax.set_xlim(0, 100)
ax.set_xlabel("share of imports (%)")
m = data["machine"]
ax.set_title(f"Fresh imports of a {data['modules']}-module package during back-to-back "
             f"upgrades ({data['readers']} readers, {m['cores']} cores)", fontsize=9)
ax.legend(loc="lower left", fontsize=8, ncol=3, bbox_to_anchor=(0, -0.35))
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110, bbox_inches="tight")
'''


def plot(result_json: Path, png: Path) -> bool:
    python = c.helper_python("plot-venv", ["matplotlib"])
    if python is None:
        return False
    png.parent.mkdir(parents=True, exist_ok=True)
    script = result_json.with_suffix(".plot.py")
    script.write_text(PLOT)
    try:
        c.run([python, script, result_json, png])
    finally:
        script.unlink()
    return True


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--upgrades", type=int, default=100, help="upgrades per installer")
    p.add_argument("--readers", type=int, default=2, help="reader processes")
    p.add_argument("--modules", type=int, default=320, help="submodules of bigpkg")
    p.add_argument("--installers", default=",".join(INSTALLERS),
                   help="comma-separated subset of: " + ", ".join(INSTALLERS))
    p.add_argument("--plot", default=None,
                   help="PNG to write (default: docs/_static/readers.png on full runs)")
    args = p.parse_args(argv)
    if args.quick:
        args.upgrades = min(args.upgrades, 4)
    installers = [x.strip() for x in args.installers.split(",") if x.strip()]
    results = []
    with c.workdir(args, NAME) as work:
        projects = {v: make_project(work / "src", v, args.modules) for v in VERSIONS}
        builder = c.make_venv(work / "builder")
        wheels = {v: c.build_wheel(builder, projects[v], work / "wheels") for v in VERSIONS}
        for name in installers:
            results.append(run_installer(name, work, projects, wheels, args.upgrades,
                                         args.readers))
            r = results[-1]
            c.log(f"{name}: {r['imports']} imports, broken {r['broken']}, mixed {r['mixed']}")
        data = {
            "benchmark": NAME,
            "quick": args.quick,
            "modules": args.modules,
            "readers": args.readers,
            "machine": c.machine_info(builder, work),
            "results": results,
        }
    out = c.save_results(NAME, data, args)
    png = Path(args.plot) if args.plot else (None if args.quick else c.STATIC_DIR / "readers.png")
    if png is not None and plot(out, png):
        c.log(f"plot: {png}")
    goals = {}
    for r in results:
        name = r["installer"]
        if name in ATOMIC:
            goals[f"{name}: 0 broken imports"] = r["broken"] == 0
            goals[f"{name}: every upgrade succeeded"] = r["failed_upgrades"] == 0
            goals[f"{name}: no .install-atomic* leftovers"] = not r["leftovers"]
            if not args.quick:
                goals[f"{name}: >= 100 upgrades"] = r["upgrades"] >= 100
    return c.report(markdown(results), goals)


if __name__ == "__main__":
    raise SystemExit(main())
