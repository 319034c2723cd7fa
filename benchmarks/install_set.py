"""Installing a large set of wheels: ``install-atomic install`` vs ``pip`` and ``uv``.

One wheelhouse (``pip download --only-binary :all:`` of the pinned set below,
once, into the benchmark cache), and every tool installs the whole set from it
with ``--no-index --find-links WHEELHOUSE`` into a fresh, empty virtual
environment (``python3 -m venv --without-pip``) per run.  Every tool runs from
one tools venv (:func:`_common.make_venv`) and targets the fresh venv, so the
fresh venv holds exactly the set:

* ``install-atomic install --python VENV`` (defaults: checked-hash bytecode,
  import check of the staged tree, fsync);
* ``install-atomic install --no-verify --python VENV``;
* ``pip --python VENV/bin/python install`` (pip compiles timestamp bytecode);
* ``uv pip install --compile-bytecode --python VENV/bin/python``;
* ``uv pip install --python VENV/bin/python`` (no bytecode).

The machine's pip and uv configuration is ignored (``PIP_CONFIG_FILE`` =
``/dev/null``, no ``PIP_*``/``UV_*`` variables); uv gets a private cache in
the work directory, filled by the untimed warm-up round (so its timed runs
hard-link from a warm cache, as uv normally does).

The full set: sympy (with mpmath), networkx, requests (with idna, urllib3,
certifi, charset-normalizer), six, attrs, packaging, pyparsing,
python-dateutil, pytz, tzdata, jinja2 (with markupsafe), click, pygments:
19 distributions, about 2,800 modules.  Each round runs every tool once
(the order rotates from round to round); the wall-clock time of each command
is measured, and the medians and their ratios to pip's and uv's are reported,
with the median of the per-round ratios beside them, and the CPU time (user +
system of the command and every process it waited for), which a loaded
machine changes less than the wall clock.

After every run: the venv's distributions (names and versions from
``importlib.metadata``) must be the pinned set, the same for every tool, and
``pip check`` must pass; install-atomic must leave nothing named
``.install-atomic*``.  Those are the goals of ``--quick`` (no warm-up, one
round, the set without sympy, mpmath and networkx).  The full run adds the
speed goals of the issue: with the defaults no slower than pip; with
``--no-verify`` within 1.25x of ``uv pip install --compile-bytecode``.

Usage: ``python3 benchmarks/install_set.py [--reps 5]`` (``--quick``: the CI check).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import _common as c

NAME = "install_set"
#: What the wheelhouse holds: the set and all its dependencies, pinned.
PINS = {
    "sympy": "1.14.0", "mpmath": "1.3.0", "networkx": "3.6.1",
    "requests": "2.34.2", "idna": "3.21", "urllib3": "2.8.0",
    "certifi": "2026.10.19.post1", "charset-normalizer": "3.5.3",
    "six": "1.17.0", "attrs": "26.1.0", "packaging": "26.4", "pyparsing": "3.3.3",
    "python-dateutil": "4.0.0", "pytz": "2026.6", "tzdata": "2026.6",
    "jinja2": "3.1.6", "markupsafe": "3.0.4", "click": "8.5.1", "pygments": "2.21.0",
}
#: What is asked for on the command line (the rest comes as dependencies).
FULL = ["sympy", "networkx", "requests", "six", "attrs", "packaging", "pyparsing",
        "python-dateutil", "pytz", "tzdata", "jinja2", "click", "pygments", "idna"]
QUICK_LEAVES_OUT = ("sympy", "mpmath", "networkx")

IA = "install-atomic install"
IA_NV = "install-atomic install --no-verify"
PIP = "pip install"
UVC = "uv pip install --compile-bytecode"
UV = "uv pip install"
TOOLS = (IA, IA_NV, PIP, UVC, UV)

Command = Callable[[Path], list[str]]


def commands(tools: c.Venv, wheels: Path, specs: list[str]) -> dict[str, Command]:
    src = ["--no-index", "--find-links", str(wheels)]
    ia = str(tools.bin / "install-atomic")
    uv = str(tools.bin / "uv")

    def py(venv: Path) -> str:
        return str(venv / "bin" / "python")

    return {
        IA: lambda v: [ia, "install", "-q", "--python", str(v), *src, *specs],
        IA_NV: lambda v: [ia, "install", "-q", "--no-verify", "--python", str(v), *src, *specs],
        PIP: lambda v: [str(tools.python), "-m", "pip", "--python", py(v), "install", "-q",
                        *src, *specs],
        UVC: lambda v: [uv, "pip", "install", "-q", "--compile-bytecode", "--python", py(v),
                        *src, *specs],
        UV: lambda v: [uv, "pip", "install", "-q", "--python", py(v), *src, *specs],
    }


def count_pycs(site: Path) -> int:
    return sum(name.endswith(".pyc") for _, _, files in os.walk(site) for name in files)


def one_run(tool: str, cmd: Command, tools: c.Venv, root: Path, env: dict[str, str],
            expected: dict[str, list[str]]) -> dict[str, Any]:
    """A fresh venv at *root*, the timed install, then the checks."""
    if root.exists():
        c.run(["rm", "-rf", root])
    c.run([sys.executable, "-m", "venv", "--without-pip", root])
    venv = c.Venv(root)
    load = c.load_average()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd(root), env=env, capture_output=True, text=True, check=False,
                          timeout=1800)
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    entry: dict[str, Any] = {"tool": tool, "seconds": round(elapsed, 3),
                             "cpu_seconds": round(cpu, 3), "load": load,
                             "exit": proc.returncode}
    if proc.returncode != 0:
        entry["output"] = c.scrub((proc.stdout + proc.stderr)[-1500:])
        c.log(f"{tool} FAILED (exit {proc.returncode}):\n{entry['output']}")
    dists = c.installed_distributions(venv.python)
    entry["distributions"] = dists
    entry["same_as_pinned"] = dists == expected
    entry["pycs"] = count_pycs(venv.site_packages)
    entry["leftovers"] = c.find_leftovers(venv.site_packages, venv.bin)
    check = c.run([tools.python, "-m", "pip", "--python", venv.python, "check"],
                  env={**env, "PYTHONDONTWRITEBYTECODE": "1"}, check=False)
    entry["pip_check"] = check.returncode == 0
    if check.returncode != 0:
        entry["pip_check_output"] = c.scrub((check.stdout + check.stderr)[-800:])
    return entry


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def markdown(rows: dict[str, dict[str, Any]]) -> str:
    table = [[f"`{tool}`", f"{r['median_s']:.2f}", ", ".join(f"{x:.2f}" for x in r["runs_s"]),
              f"{r['ratio_to_pip']:.2f}x", f"{r['ratio_to_uv_compile']:.2f}x",
              f"{r['ratio_to_uv']:.1f}x", f"{r['median_round_ratio_to_pip']:.2f}x",
              f"{r['median_round_ratio_to_uv_compile']:.2f}x", f"{r['median_cpu_s']:.2f}",
              r["pycs"]]
             for tool, r in rows.items()]
    return c.md_table(["command", "median, s", "runs, s", "vs pip", "vs uv --compile-bytecode",
                       "vs uv", "per-round vs pip (median)",
                       "per-round vs uv --compile-bytecode (median)", "CPU, s (median)",
                       ".pyc files"], table)


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5, help="timed rounds (each runs every tool)")
    args = p.parse_args(argv)
    leave_out = QUICK_LEAVES_OUT if args.quick else ()
    specs = [s for s in FULL if s not in leave_out]
    expected = {k: [v] for k, v in sorted(PINS.items()) if k not in leave_out}
    reps = 1 if args.quick else args.reps
    wheels = c.wheelhouse([f"{k}=={v}" for k, v in PINS.items()])
    c.register_scrub(wheels, "<wheelhouse>")
    entries: list[dict[str, Any]] = []
    with c.workdir(args, NAME) as work:
        tools = c.make_venv(work / "tools")
        env = c.isolated_env({"UV_CACHE_DIR": str(work / "uv-cache")})
        cmds = commands(tools, wheels, specs)
        c.log(f"{len(expected)} distributions, {len(specs)} asked for; "
              f"{'no warm-up, ' if args.quick else ''}{reps} round(s)")
        rounds = ([("warm-up", list(TOOLS))] if not args.quick else [])
        for r in range(reps):
            k = r % len(TOOLS)
            rounds.append((f"round {r + 1}", [*TOOLS[k:], *TOOLS[:k]]))
        for label, order in rounds:
            for i, tool in enumerate(order):
                entry = one_run(tool, cmds[tool], tools, work / f"venv{i}", env, expected)
                entry["round"] = label
                entries.append(entry)
            c.log(f"{label}: " + ", ".join(f"{e['tool']} {e['seconds']:.2f}s"
                                            for e in entries if e["round"] == label))
        timed = [e for e in entries if e["round"] != "warm-up"]
        rows: dict[str, dict[str, Any]] = {}
        for tool in TOOLS:
            runs = [e["seconds"] for e in timed if e["tool"] == tool]
            cpu = [e["cpu_seconds"] for e in timed if e["tool"] == tool]
            rows[tool] = {"median_s": round(c.median(runs), 3), "runs_s": runs,
                          "median_cpu_s": round(c.median(cpu), 3), "cpu_runs_s": cpu,
                          "pycs": [e["pycs"] for e in timed if e["tool"] == tool][-1]}
        for tool, row in rows.items():
            row["ratio_to_pip"] = ratio(row["median_s"], rows[PIP]["median_s"])
            row["ratio_to_uv_compile"] = ratio(row["median_s"], rows[UVC]["median_s"])
            row["ratio_to_uv"] = ratio(row["median_s"], rows[UV]["median_s"])
            per_round = []
            for label, _ in rounds:
                got = {e["tool"]: e["seconds"] for e in timed if e["round"] == label}
                if got:
                    per_round.append((got[tool] / got[PIP], got[tool] / got[UVC]))
            row["median_round_ratio_to_pip"] = round(c.median([a for a, _ in per_round]), 3)
            row["median_round_ratio_to_uv_compile"] = round(
                c.median([b for _, b in per_round]), 3)
        loads = [e["load"] for e in entries]
        failed = [e for e in entries if e["exit"] != 0]
        wrong = [e for e in entries if not e["same_as_pinned"]]
        unchecked = [e for e in entries if not e["pip_check"]]
        left = [e for e in entries if e["leftovers"]]
        speed = {
            "defaults_vs_pip": rows[IA]["ratio_to_pip"],
            "defaults_no_slower_than_pip": rows[IA]["ratio_to_pip"] <= 1.0,
            "no_verify_vs_uv_compile": rows[IA_NV]["ratio_to_uv_compile"],
            "no_verify_within_1.25x_of_uv_compile": rows[IA_NV]["ratio_to_uv_compile"] <= 1.25,
        }
        data = {
            "benchmark": NAME, "quick": args.quick, "reps": reps,
            "warm_up_round": not args.quick,
            "asked_for": specs, "distributions": expected,
            "modules": rows[UVC]["pycs"],
            "how": "fresh 'python3 -m venv --without-pip' per run; every tool runs from one"
                   " tools venv with --python; --no-index --find-links <wheelhouse>; machine's"
                   " pip/uv configuration ignored; uv with a private cache warmed by the"
                   " warm-up round",
            "machine": c.machine_info(tools, work),
            "load_average_1min": {"min": min(loads), "median": c.median(loads),
                                  "max": max(loads)},
            "results": rows,
            "speed_goals": speed,
            "failed_runs": len(failed), "runs_with_other_distributions": len(wrong),
            "runs_failing_pip_check": len(unchecked), "runs_with_leftovers": len(left),
            "runs": [{k: v for k, v in e.items() if k != "distributions" or not
                      e["same_as_pinned"]} for e in entries],
        }
    c.save_results(NAME, data, args)
    goals = {
        f"every install succeeded ({len(entries) - len(failed)}/{len(entries)})": not failed,
        f"every tool installed the same {len(expected)} distributions, the pinned ones"
        f" ({len(entries) - len(wrong)}/{len(entries)} runs)": not wrong,
        f"pip check passed after every run ({len(entries) - len(unchecked)}/{len(entries)})":
            not unchecked,
        "install-atomic left nothing named .install-atomic*": not left,
    }
    print(f"load average (1 min) during the runs: {min(loads):.1f} to {max(loads):.1f}\n")
    speed_text = {
        f"install-atomic install (defaults) no slower than pip install"
        f" ({speed['defaults_vs_pip']:.2f}x)": speed["defaults_no_slower_than_pip"],
        f"install-atomic install --no-verify within 1.25x of uv pip install --compile-bytecode"
        f" ({speed['no_verify_vs_uv_compile']:.2f}x)":
            speed["no_verify_within_1.25x_of_uv_compile"],
    }
    if args.quick:  # one run on a loaded machine says nothing about speed
        for goal, ok in speed_text.items():
            print(f"- (not checked in --quick) {'met' if ok else 'not met'}: {goal}")
        print()
    else:
        goals.update(speed_text)
    return c.report(markdown(rows), goals)


if __name__ == "__main__":
    raise SystemExit(main())
