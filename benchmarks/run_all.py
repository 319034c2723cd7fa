"""Run every benchmark, one after the other; exit 1 if any goal is violated.

``python3 benchmarks/run_all.py --quick`` is the CI smoke run (5 to 10 minutes
on 2 cores, after the first run has filled the cache); without ``--quick``
each benchmark runs in full (about 2 hours on a loaded 2-core machine) and rewrites
``benchmarks/results/*.json`` and ``docs/_static/readers.png``.

``--only readers,kill`` runs a subset.  Benchmarks run one at a time: they
measure timing and races, so running two at once would distort both.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("readers", "swap_window", "kill", "loaded_extension", "install_time",
              "concurrent_installs", "install_set", "kill_set", "merge", "merge_kill",
              "startup_hook", "generations", "generations_startup")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the CI smoke run")
    p.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    args = p.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}")
    failed = []
    started = time.monotonic()
    for name in names:
        cmd = [sys.executable, str(HERE / f"{name}.py")] + (["--quick"] if args.quick else [])
        print(f"\n## {name}\n", flush=True)
        t = time.monotonic()
        rc = subprocess.run(cmd, check=False).returncode
        print(f"\n({name}: exit {rc}, {time.monotonic() - t:.0f} s)", flush=True)
        if rc != 0:
            failed.append(name)
    total = time.monotonic() - started
    if failed:
        print(f"\nFAILED: {', '.join(failed)} ({total:.0f} s)")
        return 1
    print(f"\nall benchmarks met their goals ({total:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
