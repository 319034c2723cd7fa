"""Start-up cost of a generations environment: ``python -c pass`` and a real import set.

A generations environment (``install-atomic init --generations ENV``) runs a
start-up hook at every interpreter start: ``install-atomic-generations.pth``
imports ``_install_atomic_generations``, which resolves ``current``, takes a
shared ``flock`` on ``generations/<N>/pin`` and adds ``generations/<N>/site``
(a symlink farm into the store) with ``site.addsitedir``.  This benchmark
measures what that costs.  Two fresh venvs (``python3 -m venv`` plus this
repository, as every benchmark makes them), each with the same real set of
distributions, pinned (``pip download --only-binary :all:`` from the package
index once, into the benchmark cache; then ``pip install --no-index
--find-links`` into each venv, so pip compiles their bytecode):

* **P**, plain: nothing more;
* **G**, the same, then ``install-atomic init --generations G`` (with G's own
  install-atomic, this repository).

Before timing, both are checked: G's ``current`` names a generation, the hook
is in site-packages and runs (and holds its shared lock on the generation's
``pin``) in every start of G and never in P; every module of the set is
imported from ``install-atomic-generations`` in G and from site-packages in
P; both hold the same distributions at the same versions (the pinned ones);
every module the import statement loads has its bytecode cached in both
(``PYTHONDONTWRITEBYTECODE`` is removed from the environment, and a few
untimed starts of every command in both venvs write the caches first).

Timed commands, each started from an empty directory:

1. ``python -c pass``: goal G/P <= 1.10;
2. ``python -c "import requests, rich.console, ..."`` (:data:`IMPORTS`):
   goal G/P <= 1.02;
3. ``python -S -c pass`` (no ``site``, so no hook): a sanity line, its ratio
   should be 1; any bias it shows is a bias of the method.

Method (a shared, loaded machine): every round starts each command once in P
and once in G, back to back, alternating which goes first (P G, then G P);
the rounds interleave the three commands, so the machine's load weighs on all
alike.  The time of one start is the wall time of ``subprocess.run`` from
this process (fork, exec, the whole interpreter start and exit); its CPU time
(user + system of the child, from ``getrusage``) is reported beside it.

**The goals are checked on the median of the per-pair ratios G/P.**  The two
starts of a pair run within milliseconds of each other, so load that changes
over seconds weighs on both alike and cancels in their ratio, and the
alternating order cancels any advantage of going first or second; the median
over hundreds of pairs then ignores the pairs that a burst of another
process hit, in either direction.  A minimum (or minimum of batches) would
show only the luckiest starts of each, which on two loaded cores are rare and
can hide a cost the hook pays only sometimes (a cold directory listing, a
wait for a lock); it is reported beside it as a check, with the ratio of the
medians, the ratio of the 10th percentiles, and a 95 % bootstrap interval of
the median paired ratio.  The full run checks the goals on the median paired
ratio itself; ``--quick`` has too few pairs for that on a loaded machine and
checks only that a goal is not clearly missed (the lower end of that
interval at most the goal).

For information (to tell what the hook costs when a goal is missed): the
in-process time of ``import site; site.main()`` under ``python -S`` in P and
G (everything ``site`` does at a start, the hook included, without the
noise of process creation), and ``-X importtime -c pass`` in both: the hook
module (its cumulative time is the whole hook, the generation's ``.pth``
files included), ``fcntl`` (which only the hook imports) and
``_distutils_hack`` (which setuptools' ``distutils-precedence.pth`` imports
in both).

Usage: ``python3 benchmarks/generations_startup.py`` (400 rounds, 100
diagnostic starts per venv; ``--quick``: 30 rounds, 10).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as c

NAME = "generations_startup"
#: The set and its dependencies, pinned (what the package index offered when written).
PINS = {
    "requests": "2.34.2", "idna": "3.21", "urllib3": "2.8.0",
    "certifi": "2026.10.19.post1", "charset-normalizer": "3.5.3",
    "rich": "15.0.0", "markdown-it-py": "4.3.0", "mdurl": "0.1.2", "pygments": "2.21.0",
    "attrs": "26.1.0", "packaging": "26.4",
}
#: What the timed import statement imports.
IMPORTS = ("requests", "rich.console", "rich.markdown", "rich.syntax", "attrs",
           "packaging.requirements", "packaging.version", "idna", "urllib3", "certifi",
           "charset_normalizer", "pygments.lexers", "markdown_it", "mdurl")
#: The top-level modules of the set (each must come from the generation in G).
TOP_MODULES = sorted({m.split(".")[0] for m in IMPORTS})
COMMANDS = {
    "pass": ["-c", "pass"],
    "import": ["-c", "import " + ", ".join(IMPORTS)],
    "nosite": ["-S", "-c", "pass"],
}
LABELS = {
    "pass": "`python -c pass`",
    "import": f"`python -c \"import {', '.join(IMPORTS[:3])}, ...\"` ({len(IMPORTS)} modules)",
    "nosite": "`python -S -c pass` (sanity: no site, no hook)",
}
#: Goals on the median of the per-pair ratios G/P (None: no goal).  Why that statistic:
#: the two starts of a pair are adjacent in time, so slow changes of the machine's load
#: cancel in their ratio, and the median ignores the pairs a burst hit; a minimum would
#: keep only the luckiest starts (see the module docstring).
GOALS: dict[str, float | None] = {"pass": 1.10, "import": 1.02, "nosite": None}
#: Untimed starts of every command in each venv before the checks and the timing.
WARMUP = 3
#: Pairs per batch for the minimum-of-batches ratio.
BATCH = 10
BOOTSTRAP = 2000
GEN_DIR = "install-atomic-generations"
HOOK_MODULE = "_install_atomic_generations"
HOOK_FILES = (f"{HOOK_MODULE}.py", f"{GEN_DIR}.pth")
#: Modules of the -X importtime lines: the hook and what only it imports, and the module
#: setuptools' distutils-precedence.pth imports in both (from the generation in G).
IMPORTTIME_OF = (HOOK_MODULE, "fcntl", "_distutils_hack")

#: Run in each venv: where the set comes from, versions, the hook's pin, bytecode caches.
PROBE = """\
import importlib, importlib.metadata as md, json, os, sys
mods, dists = sys.argv[1].split(","), sys.argv[2].split(",")
for name in mods:
    importlib.import_module(name)
hook = sys.modules.get("_install_atomic_generations")
pinned = getattr(hook, "pinned", None)
held = None
if pinned:
    import fcntl
    fd = os.open(os.path.join(pinned[0], "pin"), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = False
    except BlockingIOError:
        held = True
    finally:
        os.close(fd)
missing = []
for name, mod in sorted(sys.modules.items()):
    spec = getattr(mod, "__spec__", None)
    origin, cached = getattr(spec, "origin", None), getattr(spec, "cached", None)
    if origin and cached and origin.endswith(".py") and not os.path.exists(cached):
        missing.append(name)
print(json.dumps({
    "hook_loaded": hook is not None,
    "generation": os.path.basename(pinned[0]) if pinned else None,
    "pin_held": held,
    "files": {m: getattr(sys.modules[m], "__file__", None) for m in sorted(
        n for n in sys.modules if n.split(".")[0] in {m.split(".")[0] for m in mods})},
    "versions": {d: md.version(d) for d in dists},
    "modules": len(sys.modules),
    "missing_bytecode": missing,
    "sys_path_tail": sys.path[-2:],
}))
"""

#: ``python -S``: the in-process time of everything site does at a normal start.
SITE_MAIN = """\
import time
t = time.perf_counter()
import site
site.main()
print((time.perf_counter() - t) * 1e6)
"""


# --------------------------------------------------------------------------- starts


@dataclass
class Starts:
    """Every interpreter start of the run: failures (exit status or stderr) are kept."""

    env: dict[str, str]
    cwd: Path
    count: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def start(self, venv: c.Venv, args: Sequence[str], label: str,
              stderr_ok: bool = False) -> tuple[float, float, str, str]:
        """Start ``python ARGS`` of *venv*: (wall ms, CPU ms, stdout, stderr)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run([str(venv.python), *args], cwd=self.cwd, env=self.env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              check=False, timeout=120)
        wall = (time.perf_counter() - t) * 1e3
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1e3
        self.count += 1
        if proc.returncode != 0 or (proc.stderr and not stderr_ok):
            self.failures.append({"what": label, "args": [c.scrub(a) for a in args],
                                  "exit": proc.returncode,
                                  "stderr": c.scrub(proc.stderr[-2000:])})
        return wall, cpu, proc.stdout, proc.stderr

    def ok(self) -> bool:
        return not self.failures


# --------------------------------------------------------------------------- statistics


def quantile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"median_ms": round(c.median(values), 3), "p10_ms": round(quantile(values, 0.1), 3),
            "p90_ms": round(quantile(values, 0.9), 3), "min_ms": round(min(values), 3),
            "n": len(values)}


def bootstrap_median(values: Sequence[float], resamples: int = BOOTSTRAP) -> list[float]:
    """A 95 % percentile-bootstrap interval of the median of *values* (fixed seed)."""
    rng = random.Random(0)
    n = len(values)
    meds = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    return [round(meds[int(0.025 * resamples)], 4), round(meds[int(0.975 * resamples) - 1], 4)]


def compare(p: dict[str, list[float]], g: dict[str, list[float]]) -> dict[str, Any]:
    """P against G: pairs are (p[i], g[i]), run back to back."""
    ratios = [b / a for a, b in zip(p["wall"], g["wall"])]
    cpu_ratios = [b / a for a, b in zip(p["cpu"], g["cpu"]) if a > 0]
    batches = [(min(p["wall"][i:i + BATCH]), min(g["wall"][i:i + BATCH]))
               for i in range(0, len(ratios) - BATCH + 1, BATCH)]
    return {
        "P": summary(p["wall"]),
        "G": summary(g["wall"]),
        "P_cpu": summary(p["cpu"]),
        "G_cpu": summary(g["cpu"]),
        "median_paired_ratio": round(c.median(ratios), 4),
        "median_paired_ratio_95ci": bootstrap_median(ratios),
        "ratio_of_medians": round(c.median(g["wall"]) / c.median(p["wall"]), 4),
        "ratio_of_p10": round(quantile(g["wall"], 0.1) / quantile(p["wall"], 0.1), 4),
        "min_of_batches_ratio": round(c.median([b / a for a, b in batches]), 4)
        if batches else float("nan"),
        "batches": len(batches),
        "median_paired_difference_ms": round(
            c.median([b - a for a, b in zip(p["wall"], g["wall"])]), 3),
        "cpu_median_paired_ratio": round(c.median(cpu_ratios), 4) if cpu_ratios
        else float("nan"),
        "cpu_median_paired_difference_ms": round(
            c.median([b - a for a, b in zip(p["cpu"], g["cpu"])]), 3),
    }


# --------------------------------------------------------------------------- set-up, checks


def install_set(venv: c.Venv, wheels: Path) -> None:
    venv.run("-m", "pip", "install", "-q", "--no-index", "--find-links", wheels,
             *[f"{k}=={v}" for k, v in PINS.items()], env=c.isolated_env())


def generations_layout(venv: c.Venv) -> dict[str, Any]:
    root = venv.site_packages / GEN_DIR
    current = root / "current"
    target = os.readlink(current) if current.is_symlink() else None
    cache = venv.site_packages / "__pycache__"
    return {
        "current": target,
        "pin_exists": bool(target) and (root / str(target) / "pin").is_file(),
        "hook_files": [n for n in HOOK_FILES if (venv.site_packages / n).is_file()],
        "hook_bytecode": sorted(p.name for p in cache.glob(f"{HOOK_MODULE}.*.pyc"))
        if cache.is_dir() else [],
        "store_entries": len([p for p in (root / "store").iterdir() if not p.name.startswith(".")])
        if (root / "store").is_dir() else 0,
        "set_left_in_site_packages": sorted(m for m in TOP_MODULES
                                            if (venv.site_packages / m).exists()),
    }


def probe(starts: Starts, venv: c.Venv, label: str) -> dict[str, Any]:
    dists = ",".join(PINS)
    _w, _c, out, _e = starts.start(venv, ["-c", PROBE, ",".join(IMPORTS), dists],
                                   f"{label} probe")
    try:
        data: dict[str, Any] = json.loads(out)
    except ValueError:
        return {"error": c.scrub(out[-2000:])}
    return data


def probe_summary(data: dict[str, Any]) -> dict[str, Any]:
    """*data* with the module files of the set counted, a few of them shown."""
    out = {k: v for k, v in data.items() if k != "files"}
    files = data.get("files") or {}
    out["set_modules_loaded"] = len(files)
    out["files_of"] = {m: files.get(m) for m in ("requests", "rich", "attrs")}
    return out


def from_generation(files: dict[str, str | None], site: Path) -> tuple[bool, bool]:
    """(every file under install-atomic-generations, every file directly in site-packages)."""
    gen_root = str(site / GEN_DIR) + os.sep
    paths = [f for f in files.values() if f]
    in_gen = bool(paths) and all(f.startswith(gen_root) for f in paths)
    in_site = bool(paths) and all(f.startswith(str(site) + os.sep) and not f.startswith(gen_root)
                                  for f in paths)
    return in_gen, in_site


# --------------------------------------------------------------------------- timing


def timed_rounds(starts: Starts, p: c.Venv, g: c.Venv, rounds: int
                 ) -> dict[str, dict[str, Any]]:
    series = {cmd: {"P": {"wall": [], "cpu": []}, "G": {"wall": [], "cpu": []}}
              for cmd in COMMANDS}
    load0, t0 = c.load_average(), time.monotonic()
    for r in range(rounds):
        order = (("P", p), ("G", g)) if r % 2 == 0 else (("G", g), ("P", p))
        for cmd, args in COMMANDS.items():
            for name, venv in order:
                wall, cpu, _o, _e = starts.start(venv, args, f"{name} {cmd}")
                series[cmd][name]["wall"].append(wall)
                series[cmd][name]["cpu"].append(cpu)
        if (r + 1) % max(1, rounds // 5) == 0:
            c.log(f"round {r + 1}/{rounds} (load {c.load_average()})")
    load1, seconds = c.load_average(), time.monotonic() - t0
    out = {}
    for cmd in COMMANDS:
        res = compare(series[cmd]["P"], series[cmd]["G"])
        res.update({"load_before": load0, "load_after": load1, "seconds": round(seconds, 1)})
        out[cmd] = res
        c.log(f"{cmd}: P {res['P']['median_ms']:.2f} ms, G {res['G']['median_ms']:.2f} ms,"
              f" median paired ratio {res['median_paired_ratio']:.4f}"
              f" {res['median_paired_ratio_95ci']}")
    return out


def diagnostics(starts: Starts, p: c.Venv, g: c.Venv, runs: int) -> dict[str, Any]:
    """In-process ``site.main()`` times and ``-X importtime`` of the hook's imports.

    In-process times of a few milliseconds are stretched whenever the process is
    preempted, so the 10th percentiles are given beside the medians."""
    site_us: dict[str, list[float]] = {"P": [], "G": []}
    imports: dict[str, dict[str, list[int]]] = {"P": {}, "G": {}}
    for r in range(runs):
        order = (("P", p), ("G", g)) if r % 2 == 0 else (("G", g), ("P", p))
        for name, venv in order:
            _w, _c, out, _e = starts.start(venv, ["-S", "-c", SITE_MAIN], f"{name} site.main")
            with contextlib.suppress(ValueError):  # a failed start is in starts.failures
                site_us[name].append(float(out.strip()))
            _w, _c, _o, err = starts.start(venv, ["-X", "importtime", "-c", "pass"],
                                           f"{name} importtime", stderr_ok=True)
            for line in err.splitlines():
                if not line.startswith("import time:") or "|" not in line:
                    continue
                fields = [f.strip() for f in line[len("import time:"):].split("|")]
                if fields[2] in IMPORTTIME_OF and fields[0].isdigit():
                    imports[name].setdefault(fields[2], []).append(int(fields[1]))

    def stats(values: Sequence[float]) -> dict[str, float]:
        return {"median": round(c.median(values), 1), "p10": round(quantile(values, 0.1), 1)}

    out: dict[str, Any] = {"runs": runs}
    if site_us["P"] and site_us["G"]:
        out["site_main_us"] = {
            "P": stats(site_us["P"]), "G": stats(site_us["G"]),
            "median_paired_difference": round(c.median(
                [b - a for a, b in zip(site_us["P"], site_us["G"])]), 1),
        }
    out["importtime_cumulative_us"] = {
        name: {m: stats(v) for m, v in sorted(found.items())} for name, found in imports.items()}
    return out


# --------------------------------------------------------------------------- report


def markdown(results: dict[str, Any], quick: bool) -> str:
    rows = []
    for cmd, r in results.items():
        lo, hi = r["median_paired_ratio_95ci"]
        goal = GOALS[cmd]
        rows.append([
            LABELS[cmd], r["P"]["n"],
            f"{r['P']['median_ms']:.2f} / {r['P']['p10_ms']:.2f}",
            f"{r['G']['median_ms']:.2f} / {r['G']['p10_ms']:.2f}",
            f"**{r['median_paired_ratio']:.3f}** ({lo:.3f} to {hi:.3f})",
            f"{r['ratio_of_medians']:.3f}", f"{r['ratio_of_p10']:.3f}",
            f"{r['min_of_batches_ratio']:.3f}", f"{r['median_paired_difference_ms']:+.2f}",
            f"{r['P_cpu']['median_ms']:.1f} / {r['G_cpu']['median_ms']:.1f}",
            f"{r['cpu_median_paired_ratio']:.3f}",
            f"<= {goal:.2f}" + (" (not clearly missed)" if quick else "")
            if goal else "none",
        ])
    return c.md_table(
        ["command", "pairs", "P median / p10, ms", "G median / p10, ms",
         "G/P: median of paired ratios (95 % interval)", "G/P: ratio of medians",
         "G/P: ratio of p10", f"G/P: min of batches of {BATCH}",
         "median paired difference, ms", "CPU median P / G, ms", "CPU: median paired ratio",
         "goal (on the median of paired ratios)"],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    p_ = c.parser(__doc__.splitlines()[0])
    p_.add_argument("--rounds", type=int, default=400,
                    help="timed rounds (each: every command once in P and once in G)")
    p_.add_argument("--diagnostic-runs", type=int, default=100,
                    help="site.main() and -X importtime starts per venv")
    args = p_.parse_args(argv)
    if args.quick:
        args.rounds, args.diagnostic_runs = 30, 10
    env = c.clean_env({"INSTALL_ATOMIC_COMMIT_AT_START": None,
                       "INSTALL_ATOMIC_GENERATION": None,
                       "INSTALL_ATOMIC_INHERIT_GENERATION": None})
    checks: dict[str, Any] = {}
    with c.workdir(args, NAME) as work:
        wheels = c.wheelhouse([f"{k}=={v}" for k, v in PINS.items()])
        c.register_scrub(wheels, "<wheelhouse>")
        c.log("making venv P (plain) and venv G (generations)")
        c.repo_wheel()  # built (or found) once, before the two venvs are made at once
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            p, g = pool.map(c.make_venv, [work / "env-p", work / "env-g"])
            c.log(f"pip install of {len(PINS)} pinned distributions into both")
            list(pool.map(install_set, [p, g], [wheels, wheels]))
        c.log("install-atomic init --generations G")
        t = time.monotonic()
        init = c.run([g.bin / "install-atomic", "init", "--generations", g.root], env=env,
                     cwd=work)
        checks["init"] = {"seconds": round(time.monotonic() - t, 2),
                          "output": c.scrub(init.stdout.strip()).splitlines()[-3:],
                          "stderr": c.scrub(init.stderr.strip())}
        checks["G_layout"] = generations_layout(g)
        checks["P_layout"] = generations_layout(p)
        cwd = work / "cwd"  # sys.path[0] of every start: an empty directory
        cwd.mkdir()
        starts = Starts(env=env, cwd=cwd)

        c.log(f"warm-up: {WARMUP} starts of every command in each venv (writes bytecode)")
        for _ in range(WARMUP):
            for args_ in COMMANDS.values():
                starts.start(p, args_, "P warm-up")
                starts.start(g, args_, "G warm-up")
        probes = {"P": probe(starts, p, "P"), "G": probe(starts, g, "G")}
        checks["probes"] = {k: json.loads(c.scrub(json.dumps(probe_summary(v))))
                            for k, v in probes.items()}
        dists = {"P": c.installed_distributions(p.python),
                 "G": c.installed_distributions(g.python)}
        checks["distributions"] = dists["P"]
        checks["distributions_differ"] = {k: [dists["P"].get(k), dists["G"].get(k)]
                                          for k in sorted(set(dists["P"]) | set(dists["G"]))
                                          if dists["P"].get(k) != dists["G"].get(k)}
        pinned = {k: [v] for k, v in PINS.items()}
        gen_in, _ = from_generation(probes["G"].get("files", {}), g.site_packages)
        _, plain_in = from_generation(probes["P"].get("files", {}), p.site_packages)
        gl = checks["G_layout"]
        ok_g = (bool(gl["current"]) and gl["current"].startswith("generations/")
                and gl["pin_exists"] and gl["hook_files"] == list(HOOK_FILES)
                and len(gl["hook_bytecode"]) == 1 and not gl["set_left_in_site_packages"]
                and probes["G"].get("hook_loaded") is True
                and probes["G"].get("generation") == os.path.basename(gl["current"])
                and probes["G"].get("pin_held") is True and gen_in)
        ok_p = (checks["P_layout"]["current"] is None and not checks["P_layout"]["hook_files"]
                and probes["P"].get("hook_loaded") is False and plain_in)
        same = (not checks["distributions_differ"]
                and all(dists["P"].get(k) == v for k, v in pinned.items())
                and probes["P"].get("versions") == probes["G"].get("versions") == PINS)
        bytecode = (probes["P"].get("missing_bytecode") == []
                    and probes["G"].get("missing_bytecode") == [])
        c.log(f"checks: G is a generations env {ok_g}, P plain {ok_p}, same versions {same},"
              f" bytecode cached {bytecode}")

        c.log(f"{args.rounds} rounds, each: {len(COMMANDS)} commands x (P, G), alternating")
        results = timed_rounds(starts, p, g, args.rounds)
        c.log(f"diagnostics: {args.diagnostic_runs} x site.main() and -X importtime")
        diag = diagnostics(starts, p, g, args.diagnostic_runs)
        checks["G_layout_after"] = generations_layout(g)
        checks["leftovers"] = c.find_leftovers(g.site_packages, p.site_packages)

        data = {
            "benchmark": NAME, "quick": args.quick, "rounds": args.rounds, "warmup": WARMUP,
            "pins": PINS, "imports": list(IMPORTS),
            "timing": "wall time of subprocess.run from the benchmark process (fork, exec,"
                      " interpreter start and exit), in ms; CPU = user + system time of the"
                      " child (getrusage); each round starts every command in P and in G back"
                      " to back, alternating which goes first",
            "goal_basis": "median of the per-pair ratios G/P (full run: <= goal; --quick:"
                          " the lower end of its 95 % bootstrap interval <= goal)",
            "goals": GOALS,
            "machine": c.machine_info(p, work),
            "starts": starts.count, "failed_starts": starts.failures,
            "checks": checks, "results": results, "diagnostics": diag,
        }
    c.save_results(NAME, data, args)
    goals: dict[str, bool] = {
        f"all {starts.count} interpreter starts exited 0 with empty stderr": starts.ok(),
        "G is a generations environment: current -> a generation, the hook runs and holds"
        " its pin, every module of the set comes from install-atomic-generations": ok_g,
        "P is plain: no hook, every module of the set comes from site-packages": ok_p,
        f"P and G hold the same distributions, the {len(PINS)} pinned ones at their"
        " versions": same,
        "bytecode cached for every module the starts import, in both": bytecode,
        "G still on the same generation after the timing, nothing left behind":
            checks["G_layout_after"]["current"] == gl["current"] and not checks["leftovers"],
    }
    for cmd, goal in GOALS.items():
        if goal is None:
            continue
        r = results[cmd]
        med, (lo, hi) = r["median_paired_ratio"], r["median_paired_ratio_95ci"]
        text = (f"{LABELS[cmd]}: G/P <= {goal:.2f} (median of {r['P']['n']} paired ratios"
                f" {med:.3f}, 95 % interval {lo:.3f} to {hi:.3f})")
        if args.quick:
            goals[text + ": not clearly missed (--quick: interval's lower end <= goal)"] = \
                lo <= goal
        else:
            goals[text] = med <= goal
    for failure in starts.failures[:5]:
        c.log(f"failed start: {failure}")
    quick_note = " (--quick: only not clearly missed)" if args.quick else ""
    print(f"Goal basis: the median of the per-pair ratios G/P (each pair: one start in P and"
          f" one in G, back to back, alternating order){quick_note}. Ratio of medians, of"
          f" 10th percentiles and minimum of batches of {BATCH} are cross-checks.\n")
    sm = diag.get("site_main_us")
    if sm:
        print(f"In-process `import site; site.main()` under `python -S` ({diag['runs']} each):"
              f" P {sm['P']['median']:.0f} us (p10 {sm['P']['p10']:.0f}),"
              f" G {sm['G']['median']:.0f} us (p10 {sm['G']['p10']:.0f});"
              f" median paired difference {sm['median_paired_difference']:+.0f} us.")
    for name, found in diag["importtime_cumulative_us"].items():
        print(f"`-X importtime -c pass` in {name}, cumulative us, median (p10): "
              + ", ".join(f"{m} {v['median']:.0f} ({v['p10']:.0f})" for m, v in found.items()))
    print()
    return c.report(markdown(results, args.quick), goals)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
