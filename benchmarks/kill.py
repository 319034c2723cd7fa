"""Crash recovery: SIGKILL ``install_atomic`` at random instants, recover, check.

A generated package ``killpkg`` (600 modules, more than
``bytecode.PARALLEL_THRESHOLD``, so it is byte-compiled by worker processes;
a console script and a legacy script, one module only in each version) is
upgraded and downgraded with ``python setup.py install_atomic``.  Each run
is killed with ``SIGKILL`` sent to the installer's pid alone (not to its
process group: what the compile workers, the import check and
``--verify-command`` do when their installer dies is part of what is
measured) at a random instant, then::

    python -m install_atomic recover <site-packages>

runs at once and the venv is checked:

* no process of the killed installer survives it: every descendant it had
  just before the kill (from ``/proc``) is gone within 60 s of the kill;
* exactly one ``killpkg`` metadata directory; its version, the version
  ``importlib.metadata.version("killpkg")`` gives and ``killpkg.VERSION`` agree;
* every module of ``killpkg.NAMES`` imports and has that version; the
  version-only module of the other version is absent;
* both scripts run and print that version; every file listed in
  ``installed-files.txt`` exists;
* nothing named ``.install-atomic*`` anywhere below site-packages or bin.

Three series:

* **random**: the delay is uniform in [0, D), D the median duration of an
  uninterrupted install (measured first);
* **compile**: kills while the installer byte-compiles: the benchmark polls
  ``/proc`` for the installer's compile workers and, once it sees one, waits
  a delay uniform over the first three quarters of the measured time they
  live, then kills;
* **journal**: kills aimed at the part of the commit where a journal exists
  (renames, fsync, cleanup), a few per cent of D.  The benchmark polls
  site-packages for the journal file (``.install-atomic-*.journal``) once
  the installer has printed ``checking that ... imports``; when it appears,
  it waits a delay uniform over the journal's measured lifetime (+10 %),
  then kills.

Runs that finished before the kill are repeated; each series must have at
least one kill that landed while the installer ran (``--quick`` included).
What ``recover`` did is classified from its output: rolled back, rolled
forward, or nothing to recover (with or without an orphan staging directory
removed).

Usage: ``python3 benchmarks/kill.py --kills 200 --compile-kills 50 --journal-kills 100``
(``--quick``: 4 random, 2 compile and 2 journal kills).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _common as c

NAME = "kill"
VERSIONS = ("1.0", "2.0")
MODULES = 600
#: Functions per module (kept small: the install's duration sets the benchmark's).
FUNCTIONS = 3
MARKER = "checking that"
DONE = "install_atomic: installed"
#: In a compile worker's command line (install_atomic.checks.bytecode._WORKER).
WORKER = b"install-atomic compile worker"
#: How long the processes of a killed installer may take to go.
GONE_SECONDS = 60.0

TIMED = r'''
import runpy, sys, time
from install_atomic.engine.transaction import Transaction

orig = Transaction.commit


def commit(self):
    t = time.perf_counter()
    try:
        return orig(self)
    finally:
        print(f"BENCH-COMMIT {time.perf_counter() - t:.6f}", flush=True)


Transaction.commit = commit
sys.argv = ["setup.py", "install_atomic"]
runpy.run_path("setup.py", run_name="__main__")
'''

CHECK = r'''
import importlib, importlib.metadata, json, os, subprocess, sys
site, bindir = sys.argv[1], sys.argv[2]
problems = []
metas = sorted(n for n in os.listdir(site)
               if n.lower().startswith("killpkg") and n.endswith((".egg-info", ".dist-info")))
if len(metas) != 1:
    problems.append(f"metadata entries: {metas}")
meta_version = None
listed = []
if metas:
    meta = os.path.join(site, metas[0])
    try:
        with open(os.path.join(meta, "PKG-INFO")) as f:
            for line in f:
                if line.startswith("Version:"):
                    meta_version = line.split(":", 1)[1].strip()
        with open(os.path.join(meta, "installed-files.txt")) as f:
            listed = [os.path.normpath(os.path.join(meta, x.strip())) for x in f if x.strip()]
    except OSError as exc:
        problems.append(f"metadata unreadable: {exc!r}")
try:
    md_version = importlib.metadata.version("killpkg")
except Exception as exc:
    md_version = None
    problems.append(f"importlib.metadata: {exc!r}")
code_version = None
try:
    import killpkg
    code_version = killpkg.VERSION
    for name in killpkg.NAMES:
        v = importlib.import_module("killpkg." + name).VERSION
        if v != code_version:
            problems.append(f"killpkg.{name} is {v}, killpkg is {code_version}")
    present = set(os.listdir(os.path.join(site, "killpkg")))
    for v, fname in (("1.0", "only_v1.py"), ("2.0", "only_v2.py")):
        if (fname in present) != (v == code_version):
            problems.append(f"{fname} present={fname in present} with code {code_version}")
except Exception as exc:
    problems.append(f"import: {exc!r}")
if meta_version != code_version:
    problems.append(f"metadata says {meta_version}, code is {code_version}")
if md_version != code_version:
    problems.append(f"importlib.metadata says {md_version}, code is {code_version}")
for script in ("killpkg-tool", "killpkg-legacy"):
    path = os.path.join(bindir, script)
    try:
        out = subprocess.run([path], capture_output=True, text=True, timeout=60).stdout.strip()
    except OSError as exc:
        out = repr(exc)
    if out != code_version:
        problems.append(f"{script} prints {out!r}, code is {code_version}")
missing = [p for p in listed if not os.path.lexists(p)]
if missing:
    problems.append(f"{len(missing)} files of installed-files.txt missing, e.g. "
                    f"{os.path.relpath(missing[0], site)}")
leftovers = []
for top in (site, bindir):
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            if n.startswith(".install-atomic"):
                leftovers.append(os.path.relpath(os.path.join(dirpath, n), os.path.dirname(top)))
print(json.dumps({"version": code_version, "problems": problems, "leftovers": sorted(leftovers)}))
'''


def make_project(root: Path, version: str) -> Path:
    names = [f"mod_{i:03d}" for i in range(MODULES)]
    only = "only_v1" if version == VERSIONS[0] else "only_v2"
    names.append(only)
    pad = "\n# second release\n" if version == VERSIONS[1] else ""
    files: dict[str, str] = {
        "setup.py": c.setup_py(
            "killpkg", version, packages="['killpkg']", scripts="['scripts/killpkg-legacy']",
            entry_points="{'console_scripts': ['killpkg-tool = killpkg.cli:main']}",
        ),
        "killpkg/__init__.py": f'VERSION = "{version}"\nNAMES = {names!r}\n{pad}',
        "killpkg/cli.py": (
            "import killpkg\n\n\ndef main():\n    print(killpkg.VERSION)\n"
        ),
        "scripts/killpkg-legacy": f'#!python\nprint("{version}")\n',
    }
    for name in names:
        body = "".join(f"\n\ndef f{k}(x):\n    return x + {k}\n" for k in range(FUNCTIONS))
        files[f"killpkg/{name}.py"] = f'VERSION = "{version}"\n{pad}{body}'
    project = root / f"killpkg-{version}"
    c.write_files(project, files)
    (project / "scripts" / "killpkg-legacy").chmod(0o755)
    c.set_mtime(project, time.time() - (3600 if version == VERSIONS[0] else 1800))
    return project

# --------------------------------------------------------------------------- /proc


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    return out


def _start_and_state(pid: int) -> tuple[str, str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[19], fields[0]


def snapshot(pid: int) -> list[tuple[int, str, bytes]]:
    """Every descendant of *pid*: (pid, start time, command line)."""
    found, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            todo.append(child)
            stat = _start_and_state(child)
            if stat is not None:
                found.append((child, stat[0], _cmdline(child)))
    return found


def _alive(proc: tuple[int, str, bytes]) -> bool:
    """Still there (same start time: not a reused pid) and not a zombie."""
    stat = _start_and_state(proc[0])
    return stat is not None and stat[0] == proc[1] and stat[1] not in ("Z", "X")


def survivors(procs: list[tuple[int, str, bytes]], seconds: float) -> list[tuple[int, str, bytes]]:
    """Those of *procs* still alive after *seconds* (returns as soon as none is)."""
    deadline = time.monotonic() + seconds
    while True:
        left = [p for p in procs if _alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def _describe(proc: tuple[int, str, bytes]) -> str:
    return c.scrub(proc[2].replace(b"\0", b" ").decode(errors="replace")[:120])



class Installer:
    """One ``setup.py install_atomic`` in its own process group, output watched."""

    #: TMPDIR of the installers: a private one, to count what killed installs leave there.
    tmpdir: Path | None = None

    @classmethod
    def env(cls) -> dict[str, str]:
        """The environment of the installers, and of ``recover`` (which removes the build
        directories that killed installers left in their ``TMPDIR``)."""
        env = c.clean_env({"PYTHONUNBUFFERED": "1"})
        if cls.tmpdir is not None:
            env["TMPDIR"] = str(cls.tmpdir)
        return env

    def __init__(self, venv: c.Venv, project: Path, timed: Path | None = None) -> None:
        self.site = venv.site_packages
        env = Installer.env()
        cmd = [str(venv.python), str(timed)] if timed else [str(venv.python), "setup.py",
                                                             "install_atomic"]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, cwd=project, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        self.marker = threading.Event()
        self.marker_at = 0.0
        self.done_at = 0.0
        self.output: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if MARKER in line and not self.marker.is_set():
                self.marker_at = time.monotonic()
                self.marker.set()
            if DONE in line:
                self.done_at = time.monotonic()

    def compile_workers(self) -> int:
        """How many compile workers the installer has: children running the worker
        program or, once a staged ``__pycache__`` exists, bare forks of the installer
        (what ``compileall``'s process pool started before the workers were ours; any
        fork about to ``exec`` something else looks the same for an instant)."""
        kids = [_cmdline(pid) for pid in _children(self.proc.pid)]
        workers = sum(WORKER in cmd for cmd in kids)
        if not workers:
            forks = sum(cmd == _cmdline(self.proc.pid) for cmd in kids)
            workers = forks if forks and self.compiling() else 0
        return workers

    def compiling(self) -> bool:
        """A staged ``killpkg/__pycache__`` exists."""
        try:
            names = os.listdir(self.site)
        except OSError:
            return False
        return any(os.path.isdir(self.site / n / "killpkg" / "__pycache__")
                   for n in names if n.startswith(".install-atomic-"))

    def kill(self) -> tuple[bool, list[tuple[int, str, bytes]]]:
        """SIGKILL the installer alone.  Returns whether it was still running and what
        were its descendants just before.  Its output is read to the end by
        :meth:`finish_output` (a survivor may hold the pipe)."""
        before = snapshot(self.proc.pid)
        finished = self.proc.poll() is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return not finished, before

    def finish_output(self) -> None:
        self.thread.join(timeout=GONE_SECONDS)

    def finish(self) -> int:
        rc = self.proc.wait()
        self.thread.join()
        return rc


def check(venv: c.Venv, script: Path) -> dict[str, Any]:
    proc = c.run([venv.python, "-B", script, venv.site_packages, venv.bin], check=False,
                 cwd=script.parent)
    try:
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return {"version": None, "problems": [c.scrub(proc.stderr[-500:])], "leftovers": []}


def has_journal(site: Path) -> bool:
    try:
        return any(n.endswith(".journal") for n in os.listdir(site))
    except OSError:
        return False


def calibrate(venv: c.Venv, projects: dict[str, Path], runs: int,
              timed: Path) -> dict[str, float]:
    """Median seconds of a whole install, of its commit, of the time its compile workers
    live, and of its journal's lifetime."""
    totals, commits, compiles, journals = [], [], [], []
    for i in range(runs):
        inst = Installer(venv, projects[VERSIONS[(i + 1) % 2]], timed)
        first = last = 0.0
        while inst.proc.poll() is None and not inst.marker.is_set():
            if inst.compile_workers():
                last = time.monotonic()
                first = first or last
            time.sleep(0.0005)
        if first:
            compiles.append(last - first)
        inst.marker.wait(timeout=120)
        first = last = 0.0
        while inst.proc.poll() is None:
            if has_journal(venv.site_packages):
                last = time.monotonic()
                first = first or last
            time.sleep(0.0001)
        if inst.finish() != 0 or not inst.done_at:
            raise c.BenchmarkError(c.scrub("install failed:\n" + "".join(inst.output)))
        totals.append(time.monotonic() - inst.started)
        commits += [float(ln.split()[1]) for ln in inst.output if ln.startswith("BENCH-COMMIT")]
        if first:
            journals.append(last - first)
    if not journals:
        raise c.BenchmarkError("never saw a journal while calibrating")
    if not compiles:
        raise c.BenchmarkError("never saw a compile worker while calibrating")
    return {"total": c.median(totals), "commit": c.median(commits),
            "compile": c.median(compiles), "journal": c.median(journals),
            "journal_max": max(journals)}


def one_kill(venv: c.Venv, projects: dict[str, Path], target: str, mode: str,
             cal: dict[str, float], rng: random.Random, script: Path) -> dict[str, Any]:
    inst = Installer(venv, projects[target])
    if mode == "random":
        delay = rng.uniform(0, cal["total"])
        time.sleep(delay)
    elif mode == "compile":
        deadline = time.monotonic() + 300
        while (inst.proc.poll() is None and not inst.marker.is_set()
               and not inst.compile_workers()):
            if time.monotonic() > deadline:
                raise c.BenchmarkError("the installer never started compile workers")
            time.sleep(0.0005)
        seen = time.monotonic()
        after = rng.uniform(0, 0.75 * cal["compile"])
        time.sleep(max(0.0, seen + after - time.monotonic()))
        delay = time.monotonic() - inst.started
    else:
        if not inst.marker.wait(timeout=120):
            raise c.BenchmarkError("the installer never reached its import check")
        while inst.proc.poll() is None and not has_journal(venv.site_packages):
            time.sleep(0.0001)
        seen = time.monotonic()
        after = rng.uniform(0, 1.1 * cal["journal"])
        time.sleep(max(0.0, seen + after - time.monotonic()))
        delay = time.monotonic() - inst.started
    installer = _cmdline(inst.proc.pid) if inst.compiling() else b"-"
    killed, before = inst.kill()
    journals = [n for n in os.listdir(venv.site_packages) if n.endswith(".journal")]
    stages = c.find_leftovers(venv.site_packages, venv.bin)
    # recover at once: a process of the killed installer still dying must not keep a stage
    rec = c.run([venv.python, "-m", "install_atomic", "recover", venv.site_packages],
                check=False, cwd=venv.root, env=Installer.env())
    left = survivors(before, GONE_SECONDS)
    for pid, _, _ in left:  # clean up, so that the series can go on
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    inst.finish_output()
    text = rec.stdout + rec.stderr
    if rec.returncode != 0:
        outcome = "recover failed"
    elif "rolled back" in text:
        outcome = "rolled back"
    elif "rolled forward" in text:
        outcome = "rolled forward"
    elif stages:
        outcome = "nothing to recover (orphan staging removed)"
    else:
        outcome = "nothing to recover"
    state = check(venv, script)
    consistent = not state["problems"] and not state["leftovers"]
    tmp_left = []
    if Installer.tmpdir is not None:
        tmp_left = sorted(p.name for p in Installer.tmpdir.iterdir())
        for p in Installer.tmpdir.iterdir():  # count each run's leftovers once
            c.run(["rm", "-rf", p])
    entry: dict[str, Any] = {
        "mode": mode,
        "delay_s": round(delay, 4),
        "target": target,
        "killed": killed,
        "descendants_at_kill": len(before),
        "compile_workers_at_kill": sum(WORKER in cmd or cmd == installer
                                       for _, _, cmd in before),
        "surviving_processes": [_describe(p) for p in left],
        "journal_before": bool(journals),
        "leftovers_before": stages,
        "recover": outcome,
        "recover_output": c.scrub(text.strip())[-400:],
        "version_after": state["version"],
        "consistent": consistent,
        "problems": state["problems"],
        "leftovers_after": state["leftovers"],
        # install-atomic-build-<pid>-<random> -> install-atomic-build-
        "tmp_leftovers": [re.sub(r"(\d+-)?[0-9a-z_]+$", "", n) or n for n in tmp_left],
    }
    if state["leftovers"]:
        # Keep the series going: clean bin too, and note whether that cleans everything.
        c.run([venv.python, "-m", "install_atomic", "recover", venv.site_packages, venv.bin],
              check=False, cwd=venv.root, env=Installer.env())
        entry["leftovers_after_recover_with_bin"] = c.find_leftovers(venv.site_packages,
                                                                     venv.bin)
    return entry


def summarize(entries: list[dict[str, Any]]) -> dict[str, Any]:
    killed = [e for e in entries if e["killed"]]
    return {
        "runs": len(entries),
        "killed": len(killed),
        "finished_before_kill": len(entries) - len(killed),
        "kills_with_compile_workers": sum(e["compile_workers_at_kill"] > 0 for e in killed),
        "runs_with_surviving_processes": sum(bool(e["surviving_processes"]) for e in entries),
        "surviving_processes": sum(len(e["surviving_processes"]) for e in entries),
        "runs_with_leftovers_after_recover": sum(bool(e["leftovers_after"]) for e in entries),
        "consistent": sum(e["consistent"] for e in entries),
        "code_and_metadata_consistent": sum(not e["problems"] for e in entries),
        "leftovers_in_site_packages": sum(
            any(x.startswith("site-packages") for x in e["leftovers_after"]) for e in entries),
        "runs_creating_leftovers": sum(bool(e.get("new_leftovers")) for e in entries),
        "leftovers_in_bin": sum(
            any(x.startswith("bin") for x in e["leftovers_after"]) for e in entries),
        "bin_leftovers_gone_after_recover_with_bin": sum(
            bool(e["leftovers_after"]) and not e.get("leftovers_after_recover_with_bin")
            for e in entries),
        "outcomes": dict(Counter(e["recover"] for e in entries)),
        "upgraded": sum(e["version_after"] == e["target"] for e in entries),
        "kept_old": sum(e["version_after"] not in (None, e["target"]) for e in entries),
        "journal_found": sum(e["journal_before"] for e in entries),
        "runs_leaving_files_in_tmpdir": sum(bool(e.get("tmp_leftovers")) for e in entries),
        "tmpdir_leftover_kinds": dict(Counter(k for e in entries
                                              for k in e.get("tmp_leftovers", []))),
        "inconsistent_examples": [e for e in entries if not e["consistent"]][:5],
    }


def markdown(summary: dict[str, dict[str, Any]]) -> str:
    rows = []
    orphan = "nothing to recover (orphan staging removed)"
    for mode, s in summary.items():
        o = s["outcomes"]
        rows.append([
            mode, s["runs"], s["killed"], s["kills_with_compile_workers"],
            s["surviving_processes"], f"**{s['consistent']}/{s['runs']}**",
            f"{s['code_and_metadata_consistent']}/{s['runs']}",
            f"{s['leftovers_in_site_packages']} / {s['leftovers_in_bin']}"
            f" ({s['runs_creating_leftovers']} new)",
            o.get("rolled back", 0), o.get("rolled forward", 0),
            o.get("nothing to recover", 0) + o.get(orphan, 0), o.get(orphan, 0),
            o.get("recover failed", 0), f"{s['upgraded']} / {s['kept_old']}",
            s["runs_leaving_files_in_tmpdir"],
        ])
    return c.md_table(
        ["series", "runs", "killed (rest had finished)", "kills with compile workers alive",
         "processes surviving the installer", "consistent after recover",
         "code + metadata consistent",
         "checks finding leftovers: site-packages / bin (runs that left new ones)",
         "rolled back", "rolled forward", "nothing to recover", "(of which orphan staging dir)",
         "recover failed", "new / old version after",
         "runs leaving a dir in $TMPDIR"],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=200,
                   help="kills at a random instant (runs that finish first are repeated)")
    p.add_argument("--compile-kills", type=int, default=50,
                   help="kills while compile workers run (runs that finish first are repeated)")
    p.add_argument("--journal-kills", type=int, default=100,
                   help="kills while a journal exists (runs that finish first are repeated)")
    p.add_argument("--seed", type=int, default=20261121)
    args = p.parse_args(argv)
    if args.quick:
        args.kills, args.journal_kills = min(args.kills, 4), min(args.journal_kills, 2)
        args.compile_kills = min(args.compile_kills, 2)
    rng = random.Random(args.seed)
    entries: list[dict[str, Any]] = []
    with c.workdir(args, NAME) as work:
        projects = {v: make_project(work / "src", v) for v in VERSIONS}
        venv = c.make_venv(work / "venv")
        script = work / "check.py"
        script.write_text(CHECK)
        Installer.tmpdir = work / "tmp"
        Installer.tmpdir.mkdir()
        first = Installer(venv, projects[VERSIONS[0]])
        if first.finish() != 0:
            raise c.BenchmarkError(c.scrub("first install failed:\n" + "".join(first.output)))
        base = check(venv, script)
        if base["problems"] or base["leftovers"]:
            raise c.BenchmarkError(f"a clean install fails the check: {base}")
        timed = work / "timed_setup.py"
        timed.write_text(TIMED)
        cal = calibrate(venv, projects, 1 if args.quick else 6, timed)
        c.log(f"an install takes {cal['total']:.2f} s, its commit {cal['commit'] * 1e3:.0f} ms,"
              f" its compile workers live {cal['compile'] * 1e3:.0f} ms,"
              f" its journal lives {cal['journal'] * 1e3:.1f} ms")
        current = check(venv, script)["version"] or VERSIONS[0]
        series = (("random", args.kills), ("compile", args.compile_kills),
                  ("journal", args.journal_kills))
        for mode, wanted in series:
            killed = runs = 0
            while killed < wanted and runs < 3 * wanted:  # runs that finished first: again
                target = VERSIONS[1] if current == VERSIONS[0] else VERSIONS[0]
                entry = one_kill(venv, projects, target, mode, cal, rng, script)
                # A leftover that an earlier run already left is not this run's doing.
                earlier = set(entries[-1]["leftovers_after"]) if entries else set()
                entry["new_leftovers"] = sorted(set(entry["leftovers_after"]) - earlier)
                entries.append(entry)
                runs += 1
                killed += entry["killed"]
                current = entry["version_after"] or current
                if not entry["consistent"]:
                    c.log(f"{mode} run {runs}: NOT CONSISTENT: {entry['problems']} "
                          f"{entry['leftovers_after']}")
                if entry["surviving_processes"]:
                    c.log(f"{mode} run {runs}: processes survived the installer: "
                          f"{entry['surviving_processes']}")
                if runs % 25 == 0:
                    ok = sum(e["consistent"] for e in entries if e["mode"] == mode)
                    c.log(f"{mode}: {runs} runs, {killed} killed, {ok} consistent")
        summary = {mode: summarize([e for e in entries if e["mode"] == mode])
                   for mode, _ in series if any(e["mode"] == mode for e in entries)}
        data = {
            "benchmark": NAME, "quick": args.quick, "seed": args.seed, "modules": MODULES,
            "functions_per_module": FUNCTIONS, "signal": "SIGKILL to the installer's pid",
            "gone_within_seconds": GONE_SECONDS,
            "calibration_seconds": {k: round(v, 4) for k, v in cal.items()},
            "machine": c.machine_info(venv, work), "summary": summary, "runs": entries,
        }
    c.save_results(NAME, data, args)
    goals: dict[str, bool] = {}
    for mode, wanted in series:
        s = summary.get(mode)
        if not wanted:
            continue
        if s is None:
            goals[f"{mode}: no run"] = False
            continue
        goals[f"{mode}: kills that landed while the installer ran: {s['killed']} (> 0)"] = (
            s["killed"] > 0)
        goals[f"{mode}: every state consistent after recover ({s['consistent']}/{s['runs']})"] = (
            s["consistent"] == s["runs"])
        goals[f"{mode}: no process outlived the killed installer"
              f" ({s['surviving_processes']} did)"] = s["surviving_processes"] == 0
        goals[f"{mode}: nothing named .install-atomic* after recover"
              f" ({s['runs_with_leftovers_after_recover']} runs with some)"] = (
            s["runs_with_leftovers_after_recover"] == 0)
    if not args.quick:
        goals[f">= {args.kills} kills at random instants"] = (
            summary.get("random", {}).get("killed", 0) >= args.kills)
        goals["compile: some kills landed while compile workers ran"] = (
            summary.get("compile", {}).get("kills_with_compile_workers", 0) > 0)
    return c.report(markdown(summary), goals)


if __name__ == "__main__":
    raise SystemExit(main())
