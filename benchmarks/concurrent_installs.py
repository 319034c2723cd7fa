"""Concurrent installs: many installers into one venv at once, ``recover`` looping beside them.

N generated projects (``--installers``, default 16) are installed into ONE
venv, all at the same time, with ``python setup.py install_atomic``, while::

    python -m install_atomic recover <site-packages>

runs in a loop, back to back, for as long as any of them runs.  A round
installs every project again; project *i* gets version ``("1.0", "2.0")[(r + i) % 2]``
in round *r*, so every round upgrades half of the projects and downgrades the
other half, and each version has one module the other lacks (``only_v1`` /
``only_v2``).  The projects (``stress-proj-NN``) come in four kinds, by ``i % 4``:

* 0, 3: a plain package ``stresspNN``;
* 1: ``stressns.pNN``, where ``stressns/`` is a PEP 420 namespace (no
  ``__init__.py``) that all projects of this kind share;
* 2: ``stresspk.pNN``, where ``stresspk/`` is a pkgutil-style namespace
  (every project of this kind ships the same ``stresspk/__init__.py``).

Odd projects also have a console script ``stress-proj-NN`` printing the version.
So the shared directories (``stressns/``, ``stresspk/``, ``bin/``) are merged
by several installers at once.  The projects are first installed one after
the other (set-up, not measured); then come the rounds.  After each round, in
a fresh interpreter:

* every installer exited 0;
* every project imports at the version just installed, every one of its
  modules has that version, and the other version's module is absent (no file,
  no import); exactly one metadata directory, whose version and
  ``importlib.metadata.version`` agree with the code; every file of its
  ``installed-files.txt`` exists; its console script prints the version;
* the namespace directories hold exactly the projects' sub-packages;
* nothing named ``.install-atomic*`` anywhere below site-packages or bin;
* every ``recover`` of the loop exited 0 (and how many ran).

Before each round, ``--victims`` installs (default 2) of another project,
``stress-victim`` (``stressns.victim`` and a console script), are SIGKILLed
during their import check, one after the other: each leaves what a dead
installer leaves, a staging directory in site-packages and in bin and a build
directory in ``$TMPDIR``.  Installers and ``recover`` share that private
``$TMPDIR``, so when the round starts they all sweep those dead installers'
leftovers at the same time; after the round nothing of them may remain.  Any
report, by ``recover`` or by an installer, of removing a staging or build
directory *not* of a victim, or of rolling an install back or forward, means
it removed or undid the work of a live installer: those are counted
("suspect").

Usage: ``python3 benchmarks/concurrent_installs.py`` (16 installers x 5 rounds;
``--rounds N``, ``--installers N``, ``--victims N``, ``--recover-loops N`` to run
several recover loops side by side; ``--quick``: 8 installers x 2 rounds, 1 victim).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import _common as c

NAME = "concurrent_installs"
VERSIONS = ("1.0", "2.0")
MODULES = 8
INSTALL_TIMEOUT = 900.0
PKGUTIL_INIT = "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"
MARKER = "checking that"
VICTIM = "stress-victim"
#: Sub-packages of the victim, and modules in each.
VICTIM_TREE = (10, 20)
#: What an install or recover prints when it removed or undid something.  Unless it
#: names a victim's directory (by its pid), that something belonged to a live installer.
REMOVED = re.compile(r"removed (an|the) abandoned staging director|rolled (back|forward)"
                     r"|recovered an interrupted install|build directory of a killed")
#: The pid in the name of a staging or build directory.
PID_IN_NAME = re.compile(r"install-atomic-(?:build-)?(\d+)-")
#: Recover left a journal or staging directory alone (live or not trusted): noted only.
LEFT_ALONE = re.compile(r"left alone")

CHECK = r'''
import importlib, importlib.metadata, json, os, subprocess, sys
spec = json.load(open(sys.argv[1]))
site, bindir = spec["site"], spec["bin"]
entries = os.listdir(site)
out = {"projects": {}, "namespaces": {}, "leftovers": []}
for p in spec["projects"]:
    problems = []
    canon = p["dist"].replace("-", "_").lower()
    metas = sorted(n for n in entries if n.endswith((".egg-info", ".dist-info"))
                   and n.split("-")[0].lower() == canon)
    if len(metas) != 1:
        problems.append(f"metadata entries: {metas}")
    meta_version, listed = None, []
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
        md_version = importlib.metadata.version(p["dist"])
    except Exception as exc:
        md_version = None
        problems.append(f"importlib.metadata: {exc!r}")
    code_version = None
    try:
        mod = importlib.import_module(p["import"])
        code_version = mod.VERSION
        for name in mod.NAMES:
            v = importlib.import_module(p["import"] + "." + name).VERSION
            if v != code_version:
                problems.append(f"{p['import']}.{name} is {v}, the package is {code_version}")
        pkgdir = os.path.join(site, *p["import"].split("."))
        present = set(os.listdir(pkgdir))
        for v, only in (("1.0", "only_v1"), ("2.0", "only_v2")):
            if (only + ".py" in present) != (v == code_version):
                problems.append(f"{only}.py present={only + '.py' in present}"
                                f" with code {code_version}")
            if v != code_version:
                try:
                    importlib.import_module(p["import"] + "." + only)
                    problems.append(f"{p['import']}.{only} of the other version imports")
                except ModuleNotFoundError:
                    pass
    except Exception as exc:
        problems.append(f"import: {exc!r}")
    if meta_version != code_version:
        problems.append(f"PKG-INFO says {meta_version}, code is {code_version}")
    if md_version != code_version:
        problems.append(f"importlib.metadata says {md_version}, code is {code_version}")
    if p["script"]:
        path = os.path.join(bindir, p["dist"])
        try:
            got = subprocess.run([path], capture_output=True, text=True,
                                 timeout=120).stdout.strip()
        except OSError as exc:
            got = repr(exc)
        if got != code_version:
            problems.append(f"script {p['dist']} prints {got!r}, code is {code_version}")
    missing = [x for x in listed if not os.path.lexists(x)]
    if missing:
        problems.append(f"{len(missing)} files of installed-files.txt missing, e.g."
                        f" {os.path.relpath(missing[0], site)}")
    out["projects"][p["dist"]] = {"version": code_version, "problems": problems}
for ns, wanted in spec["namespaces"].items():
    try:
        have = sorted(n for n in os.listdir(os.path.join(site, ns)) if n != "__pycache__")
    except OSError as exc:
        have = [repr(exc)]
    out["namespaces"][ns] = {"entries": have, "ok": have == sorted(wanted)}
for top in (site, bindir):
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            if n.startswith(".install-atomic"):
                out["leftovers"].append(
                    os.path.relpath(os.path.join(dirpath, n), os.path.dirname(top)))
out["leftovers"].sort()
print(json.dumps(out))
'''


# --------------------------------------------------------------------------- projects


def kind(i: int) -> str:
    return ("plain", "pep420", "pkgutil", "plain")[i % 4]


def dist_name(i: int) -> str:
    return f"stress-proj-{i:02d}"


def import_name(i: int) -> str:
    return {"plain": f"stressp{i:02d}", "pep420": f"stressns.p{i:02d}",
            "pkgutil": f"stresspk.p{i:02d}"}[kind(i)]


def has_script(i: int) -> bool:
    return i % 2 == 1


def make_project(root: Path, i: int, version: str) -> Path:
    pkg = import_name(i)
    pkgdir = pkg.replace(".", "/")
    names = [f"mod_{k}" for k in range(MODULES)]
    names.append("only_v1" if version == VERSIONS[0] else "only_v2")
    pad = "\n# second release\n" if version == VERSIONS[1] else ""
    files: dict[str, str] = {
        f"{pkgdir}/__init__.py": f'VERSION = "{version}"\nNAMES = {names!r}\n{pad}',
    }
    for name in names:
        body = "".join(f"\n\ndef f{k}(x):\n    return x + {k}\n" for k in range(5))
        files[f"{pkgdir}/{name}.py"] = f'VERSION = "{version}"\n{pad}{body}'
    packages = [pkg]
    if kind(i) == "pkgutil":
        files["stresspk/__init__.py"] = PKGUTIL_INIT
        packages.insert(0, "stresspk")
    extra = {"packages": repr(packages)}
    if has_script(i):
        files[f"{pkgdir}/cli.py"] = (
            f"from {pkg} import VERSION\n\n\ndef main():\n    print(VERSION)\n"
        )
        extra["entry_points"] = repr({"console_scripts": [f"{dist_name(i)} = {pkg}.cli:main"]})
    files["setup.py"] = c.setup_py(dist_name(i), version, **extra)
    project = root / f"{dist_name(i)}-{version}"
    c.write_files(project, files)
    c.set_mtime(project, time.time() - (3600 if version == VERSIONS[0] else 1800))
    return project


def make_victim(root: Path) -> Path:
    """The killed project: big enough (:data:`VICTIM_TREE`) that sweeping what it leaves
    takes a while, so that concurrent sweeps of one directory overlap."""
    packages = ["stressns.victim"]
    files = {"stressns/victim/__init__.py": 'VERSION = "1.0"\n',
             "stressns/victim/cli.py": "def main():\n    print('1.0')\n"}
    for sub in range(VICTIM_TREE[0]):
        packages.append(f"stressns.victim.s{sub}")
        files[f"stressns/victim/s{sub}/__init__.py"] = ""
        for k in range(VICTIM_TREE[1]):
            files[f"stressns/victim/s{sub}/mod_{k}.py"] = f"X = {k}\n"
    files["setup.py"] = c.setup_py(
        VICTIM, "1.0", packages=repr(packages),
        entry_points=repr({"console_scripts": [f"{VICTIM} = stressns.victim.cli:main"]}))
    project = root / VICTIM
    c.write_files(project, files)
    return project


def target(i: int, rnd: int) -> str:
    return VERSIONS[(rnd + i) % 2]


# --------------------------------------------------------------------------- processes


class Installer:
    """``python setup.py install_atomic`` of one project, in its own process group."""

    def __init__(self, venv: c.Venv, project: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.started = time.monotonic()
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(venv.python), "setup.py", "install_atomic"], cwd=project, env=env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.seconds = 0.0
        self.timed_out = False

    def wait(self, deadline: float) -> int:
        try:
            rc = self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.timed_out = True
            os.killpg(self.proc.pid, signal.SIGKILL)
            rc = self.proc.wait()
        self.seconds = time.monotonic() - self.started
        return rc

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def error_text(output: str) -> str:
    """The lines of a failed install that say what went wrong."""
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    picked = [ln for ln in lines if re.search(r"error|Error|Traceback|Exception", ln)]
    if not picked:
        picked = lines[-3:]
    return c.scrub("\n".join(picked[-6:]))[-1500:]


def classify(lines: list[str], victims: set[int]) -> tuple[int, list[str]]:
    """(how many of *lines* report sweeping a victim's leftovers, the other reports of
    removing or undoing something)."""
    swept, suspect = 0, []
    for line in lines:
        if not REMOVED.search(line):
            continue
        pids = {int(x) for x in PID_IN_NAME.findall(line)}
        if pids and pids <= victims and "rolled" not in line and "recovered" not in line:
            swept += 1
        else:
            suspect.append(c.scrub(line.strip()))
    return swept, suspect


def make_debris(venv: c.Venv, project: Path, env: dict[str, str], work: Path, rnd: int,
                count: int) -> dict[str, Any]:
    """SIGKILL *count* installs of the victim during their import check, one at a time."""
    pids, killed = [], 0
    for k in range(count):
        log = work / "logs" / f"round{rnd}-victim{k}.log"
        inst = Installer(venv, project, env, log)
        deadline = time.monotonic() + 300
        while inst.proc.poll() is None and time.monotonic() < deadline:
            if MARKER in log.read_text(encoding="utf-8", errors="replace"):
                break
            time.sleep(0.01)
        killed += inst.proc.poll() is None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(inst.proc.pid, signal.SIGKILL)
        inst.proc.wait()
        pids.append(inst.proc.pid)
    return {"pids": pids, "killed": killed,
            # top-level entries only (a stage holds .install-atomic-owner and the like)
            "left": [x for x in c.find_leftovers(venv.site_packages, venv.bin)
                     if x.count("/") == 1],
            "tmpdir": sorted(p.name for p in (work / "tmp").iterdir())}


class RecoverLoop:
    """``python -m install_atomic recover <site-packages>`` back to back until stopped."""

    def __init__(self, venv: c.Venv, env: dict[str, str], victims: set[int]) -> None:
        self.venv, self.env, self.victims = venv, env, victims
        self.runs: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.started = time.monotonic()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> list[dict[str, Any]]:
        self.stopping.set()
        self.thread.join()
        return self.runs

    def _loop(self) -> None:
        cmd = [str(self.venv.python), "-m", "install_atomic", "recover",
               str(self.venv.site_packages)]
        while not self.stopping.is_set():
            t = time.monotonic()
            try:
                proc = subprocess.run(cmd, cwd=self.venv.root, env=self.env, capture_output=True,
                                      text=True, timeout=600, check=False)
                rc, text = proc.returncode, proc.stdout + proc.stderr
            except subprocess.TimeoutExpired as exc:
                rc, text = -1, f"timed out after 600 s: {exc.stdout!r} {exc.stderr!r}"
            run: dict[str, Any] = {"rc": rc, "start": round(t - self.started, 3),
                                   "seconds": round(time.monotonic() - t, 3)}
            lines = text.splitlines()
            run["swept"], suspect = classify(lines, self.victims)
            run["suspect"] = suspect
            run["left_alone"] = sum(bool(LEFT_ALONE.search(ln)) for ln in lines)
            if rc != 0 or suspect or run["swept"] or run["left_alone"]:
                run["output"] = c.scrub(text.strip())[-1500:]
            self.runs.append(run)


def check(venv: c.Venv, script: Path, spec: Path) -> dict[str, Any]:
    proc = c.run([venv.python, "-B", script, spec], check=False, cwd=script.parent,
                 env=c.clean_env({"TMPDIR": None}))
    try:
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return {"error": c.scrub(proc.stdout[-500:] + proc.stderr[-1500:]), "projects": {},
                "namespaces": {}, "leftovers": []}


# --------------------------------------------------------------------------- rounds


def one_round(rnd: int, venv: c.Venv, projects: dict[tuple[int, str], Path], n: int,
              env: dict[str, str], work: Path, current: dict[int, str | None],
              previous_leftovers: set[str], victim: Path, victims: int,
              victim_pids: set[int], loops: int = 1) -> dict[str, Any]:
    debris = make_debris(venv, victim, env, work, rnd, victims)
    victim_pids.update(debris["pids"])
    load_before = os.getloadavg()
    recovers = [RecoverLoop(venv, env, victim_pids) for _ in range(loops)]
    started = time.monotonic()
    for loop in recovers:
        loop.start()
    installers = {}
    for i in range(n):
        log = work / "logs" / f"round{rnd}-{i:02d}.log"
        installers[i] = Installer(venv, projects[(i, target(i, rnd))], env, log)
    deadline = time.monotonic() + INSTALL_TIMEOUT
    rcs = {i: inst.wait(deadline) for i, inst in installers.items()}
    installs_done = time.monotonic()
    recover_runs = [run for loop in recovers for run in loop.stop()]
    seconds = time.monotonic() - started
    tmp_entries = sorted(p.name for p in (work / "tmp").iterdir())
    state = check(venv, work / "check.py", work / "spec.json")

    installs = []
    for i, inst in installers.items():
        out = inst.output()
        swept, suspect = classify(out.splitlines(), victim_pids)
        entry: dict[str, Any] = {
            "project": dist_name(i), "from": current[i], "to": target(i, rnd),
            "rc": rcs[i], "ok": rcs[i] == 0 and not inst.timed_out,
            "seconds": round(inst.seconds, 2),
        }
        if not entry["ok"]:
            entry["error"] = ("timed out; " if inst.timed_out else "") + error_text(out)
            entry["output_tail"] = c.scrub(out)[-3000:]
        if suspect:
            entry["suspect_lines"] = suspect
        entry["swept"] = swept
        installs.append(entry)

    projects_state = []
    for i, inst_entry in enumerate(installs):
        got = state["projects"].get(dist_name(i), {"version": None, "problems": ["not checked"]})
        want = inst_entry["to"] if inst_entry["ok"] else inst_entry["from"]
        problems = list(got["problems"])
        if got["version"] != want:
            what = "installed" if inst_entry["ok"] else "kept (its install failed)"
            problems.append(f"version {got['version']}, expected {want} {what}")
        projects_state.append({"project": dist_name(i), "version": got["version"],
                               "consistent": not problems, "problems": problems})
        current[i] = got["version"]
    bad_ns = {ns: v["entries"] for ns, v in state["namespaces"].items() if not v["ok"]}
    failed = [e for e in installs if not e["ok"]]
    failed_recovers = [r for r in recover_runs if r["rc"] != 0]
    durations = [e["seconds"] for e in installs]
    return {
        "round": rnd,
        "installs": len(installs),
        "installs_ok": len(installs) - len(failed),
        "installs_failed": len(failed),
        "failures": [{k: e[k] for k in ("project", "from", "to", "rc", "error")}
                     for e in failed],
        "victims_killed": debris["killed"],
        "victim_leftovers_before": len(debris["left"]),
        "victim_tmpdir_entries_before": len(debris["tmpdir"]),
        "installer_sweep_reports": sum(e["swept"] for e in installs),
        "installer_suspect_lines": sum(len(e.get("suspect_lines", [])) for e in installs),
        "installer_suspect_examples": [x for e in installs
                                       for x in e.get("suspect_lines", [])][:5],
        "recover_runs": len(recover_runs),
        "recover_failed": len(failed_recovers),
        "recover_sweep_reports": sum(r["swept"] for r in recover_runs),
        "recover_suspect_runs": sum(bool(r["suspect"]) for r in recover_runs),
        "recover_left_alone_reports": sum(r["left_alone"] for r in recover_runs),
        "recover_failures": failed_recovers[:5],
        "recover_suspect_examples": [r["output"] for r in recover_runs
                                     if r["suspect"] and r["rc"] == 0][:5],
        "recover_sweep_examples": [r["output"] for r in recover_runs
                                   if r["swept"] and not r["suspect"]][:3],
        "recover_left_alone_examples": [r["output"] for r in recover_runs
                                        if r["left_alone"]][:3],
        "recover_seconds_median": round(c.median([r["seconds"] for r in recover_runs]), 3),
        "recover_timeline": [[r["start"], r["seconds"], r["rc"], r["swept"]]
                             for r in sorted(recover_runs, key=lambda r: r["start"])],
        "first_install_done_seconds": round(min(e["seconds"] for e in installs), 2),
        "projects_consistent": sum(p["consistent"] for p in projects_state),
        "inconsistent": [p for p in projects_state if not p["consistent"]],
        "namespaces_ok": not bad_ns and "error" not in state,
        "namespace_problems": bad_ns,
        "check_error": state.get("error"),
        "leftovers": state["leftovers"],
        "new_leftovers": sorted(set(state["leftovers"]) - previous_leftovers),
        "tmpdir_entries_after": len(tmp_entries),
        "victim_tmpdir_entries_after": sum(
            int(m.group(1)) in victim_pids for m in map(PID_IN_NAME.search, tmp_entries) if m),
        "tmpdir_examples": [re.sub(r"\d+-\w+$", "<pid>-<rand>", e) for e in tmp_entries][:5],
        "seconds": round(seconds, 2),
        "installs_seconds": round(installs_done - started, 2),
        "install_seconds_median": round(c.median(durations), 2),
        "install_seconds_max": round(max(durations), 2),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "install_details": installs,
    }


def markdown(rounds: list[dict[str, Any]]) -> str:
    rows = []
    for r in rounds:
        rows.append([
            r["round"], f"**{r['installs_ok']}/{r['installs']}**", r["installs_failed"],
            f"{r['projects_consistent']}/{r['installs']}" + ("" if r["namespaces_ok"]
                                                            else " (namespaces wrong)"),
            f"{r['victim_leftovers_before']} -> {len(r['leftovers'])}",
            r["recover_runs"], r["recover_failed"],
            f"{r['recover_sweep_reports']} / {r['installer_sweep_reports']}",
            f"{r['recover_suspect_runs']} / {r['installer_suspect_lines']}",
            r["seconds"], f"{r['install_seconds_median']} / {r['install_seconds_max']}",
            r["load_average_before"][0],
        ])
    table = c.md_table(
        ["round", "installs ok", "failed", "projects consistent",
         ".install-atomic* entries: victims' before -> after",
         "recover runs", "recover failed",
         "victim dirs swept: by recover / by installers",
         "suspect removals: recover runs / installer lines",
         "round, s", "install s: median / max", "load (1 min)"],
        rows,
    )
    errors = []
    for r in rounds:
        for f in r["failures"]:
            said = " | ".join(f["error"].splitlines())
            errors.append(f"- round {r['round']}, {f['project']} {f['from']} -> {f['to']}"
                          f" (exit {f['rc']}): {said[-400:]}")
        for p in r["inconsistent"]:
            errors.append(f"- round {r['round']}, {p['project']}: {'; '.join(p['problems'])}")
        for x in r["recover_failures"]:
            errors.append(f"- round {r['round']}, recover exit {x['rc']}:"
                          f" {x.get('output', '').splitlines()[-1:]}")
        if r["leftovers"]:
            errors.append(f"- round {r['round']}, leftovers: {r['leftovers'][:5]}")
        for x in r["installer_suspect_examples"]:
            errors.append(f"- round {r['round']}, an installer said: {x}")
        for x in r["recover_suspect_examples"]:
            errors.append(f"- round {r['round']}, recover said: {' | '.join(x.splitlines())}")
    return table + ("\n\n" + "\n".join(errors) if errors else "")


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="rounds (all projects reinstalled)")
    p.add_argument("--installers", type=int, default=16,
                   help="projects, all installed at once in each round")
    p.add_argument("--recover-loops", type=int, default=1,
                   help="recover loops running side by side (default 1)")
    p.add_argument("--victims", type=int, default=2,
                   help="installs killed before each round, whose leftovers the round sweeps")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.installers = min(args.rounds, 2), min(args.installers, 8)
    if args.quick:
        args.victims = min(args.victims, 1)
    if min(args.rounds, args.installers, args.recover_loops) < 1 or args.victims < 0:
        p.error("--rounds, --installers and --recover-loops must be at least 1,"
                " --victims at least 0")
    # git status must not take the index lock others may be using.
    os.environ["GIT_OPTIONAL_LOCKS"] = "0"
    n = args.installers
    rounds: list[dict[str, Any]] = []
    begun = time.monotonic()
    load_start = os.getloadavg()
    with c.workdir(args, NAME) as work:
        projects = {(i, v): make_project(work / "src", i, v) for i in range(n) for v in VERSIONS}
        victim = make_victim(work / "src")
        venv = c.make_venv(work / "venv")
        (work / "tmp").mkdir()
        (work / "logs").mkdir()
        env = c.clean_env({"TMPDIR": str(work / "tmp"), "PYTHONUNBUFFERED": "1"})
        namespaces: dict[str, list[str]] = {}
        for i in range(n):
            if kind(i) != "plain":
                top, sub = import_name(i).split(".")
                namespaces.setdefault(top, ["__init__.py"] if kind(i) == "pkgutil" else [])
                namespaces[top].append(sub)
        spec = {"site": str(venv.site_packages), "bin": str(venv.bin), "namespaces": namespaces,
                "projects": [{"dist": dist_name(i), "import": import_name(i),
                              "script": has_script(i)} for i in range(n)]}
        (work / "spec.json").write_text(json.dumps(spec))
        (work / "check.py").write_text(CHECK)

        c.log(f"set-up: installing {n} projects one after the other")
        t = time.monotonic()
        for i in range(n):
            c.run([venv.python, "setup.py", "install_atomic"], cwd=projects[(i, target(i, 0))],
                  env=env)
        setup_seconds = time.monotonic() - t
        base = check(venv, work / "check.py", work / "spec.json")
        current: dict[int, str | None] = {}
        for i in range(n):
            got = base["projects"].get(dist_name(i), {"version": None, "problems": ["missing"]})
            if got["problems"] or got["version"] != target(i, 0):
                raise c.BenchmarkError(f"set-up install of {dist_name(i)} fails the check: {got}")
            current[i] = got["version"]
        if base["leftovers"] or not all(v["ok"] for v in base["namespaces"].values()):
            raise c.BenchmarkError(f"the set-up fails the check: {base}")

        leftovers: set[str] = set()
        victim_pids: set[int] = set()
        for rnd in range(1, args.rounds + 1):
            c.log(f"round {rnd}: {args.victims} victims killed, then {n} installers at once,"
                  " recover looping")
            r = one_round(rnd, venv, projects, n, env, work, current, leftovers, victim,
                          args.victims, victim_pids, args.recover_loops)
            leftovers = set(r["leftovers"])
            rounds.append(r)
            c.log(f"round {rnd}: {r['installs_ok']}/{r['installs']} installs ok,"
                  f" {r['projects_consistent']}/{r['installs']} consistent,"
                  f" {r['victim_leftovers_before']} -> {len(r['leftovers'])} leftovers,"
                  f" {r['recover_runs']} recover runs ({r['recover_failed']} failed,"
                  f" {r['recover_suspect_runs']} suspect), {r['installer_suspect_lines']}"
                  f" suspect installer lines, {r['seconds']} s")
            for f in r["failures"]:
                c.log(f"  FAILED {f['project']} {f['from']} -> {f['to']}: "
                      + f["error"].replace("\n", " | ")[-400:])
            for x in r["recover_failures"]:
                c.log(f"  RECOVER FAILED (exit {x['rc']}): "
                      + x.get("output", "").replace("\n", " | ")[-400:])
        machine = c.machine_info(venv, work)
        machine["source_digest"] = Path(c.repo_wheel()).parent.name
        machine["load_average_start"] = [round(x, 2) for x in load_start]
        machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        total = {
            "rounds": len(rounds),
            "installers": n,
            "installs": sum(r["installs"] for r in rounds),
            "installs_ok": sum(r["installs_ok"] for r in rounds),
            "installs_failed": sum(r["installs_failed"] for r in rounds),
            "projects_checked": sum(r["installs"] for r in rounds),
            "projects_consistent": sum(r["projects_consistent"] for r in rounds),
            "rounds_with_namespace_problems": sum(not r["namespaces_ok"] for r in rounds),
            "rounds_with_leftovers": sum(bool(r["leftovers"]) for r in rounds),
            "recover_runs": sum(r["recover_runs"] for r in rounds),
            "recover_failed": sum(r["recover_failed"] for r in rounds),
            "recover_suspect_runs": sum(r["recover_suspect_runs"] for r in rounds),
            "installer_suspect_lines": sum(r["installer_suspect_lines"] for r in rounds),
            "victims_killed": sum(r["victims_killed"] for r in rounds),
            "victim_leftovers_planted": sum(r["victim_leftovers_before"] for r in rounds),
            "victim_dirs_swept_by_recover": sum(r["recover_sweep_reports"] for r in rounds),
            "victim_dirs_swept_by_installers": sum(r["installer_sweep_reports"] for r in rounds),
            "victim_tmpdir_entries_left": sum(r["victim_tmpdir_entries_after"] for r in rounds),
            "setup_seconds": round(setup_seconds, 2),
            "total_seconds": round(time.monotonic() - begun, 1),
        }
        data = {
            "benchmark": NAME, "quick": args.quick, "modules_per_project": MODULES + 1,
            "victims_per_round": args.victims, "recover_loops": args.recover_loops,
            "projects": [{"name": dist_name(i), "package": import_name(i), "kind": kind(i),
                          "console_script": has_script(i)} for i in range(n)],
            "machine": machine, "summary": total, "rounds": rounds,
        }
    c.save_results(NAME, data, args)
    goals = {
        f"every install exited 0 ({total['installs_ok']}/{total['installs']})":
            total["installs_failed"] == 0,
        f"every project consistent at the version installed, after every round"
        f" ({total['projects_consistent']}/{total['projects_checked']})":
            total["projects_consistent"] == total["projects_checked"]
            and total["rounds_with_namespace_problems"] == 0,
        f"no .install-atomic* left in site-packages or bin"
        f" ({total['rounds_with_leftovers']} rounds with leftovers)":
            total["rounds_with_leftovers"] == 0,
        f"every recover exited 0 ({total['recover_runs'] - total['recover_failed']}"
        f"/{total['recover_runs']})": total["recover_failed"] == 0,
        "recover ran during every round": all(r["recover_runs"] > 0 for r in rounds),
        f"nothing removed or undone but dead installers' leftovers"
        f" ({total['recover_suspect_runs']} recover runs, {total['installer_suspect_lines']}"
        " installer reports)":
            total["recover_suspect_runs"] == 0 and total["installer_suspect_lines"] == 0,
    }
    if not args.quick:
        goals[">= 5 rounds of >= 16 installers"] = len(rounds) >= 5 and n >= 16
    print(f"install-atomic {machine['install_atomic_revision']} (sources"
          f" {machine['source_digest']}): {total['installs']} installs in {total['rounds']}"
          f" rounds of {n}, {total['recover_runs']} recover runs, {total['total_seconds']} s,"
          f" load average {machine['load_average_start'][0]} -> {machine['load_average_end'][0]}"
          "\n")
    return c.report(markdown(rounds), goals)


if __name__ == "__main__":
    raise SystemExit(main())
