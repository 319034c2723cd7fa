"""Crash recovery of a multi-distribution upgrade: SIGKILL ``install-atomic install -U``.

Eight distributions (requests, urllib3, idna, certifi, charset-normalizer,
six, attrs, pygments: about 450 modules, two console scripts) are installed
at their old versions by ``pip install`` into a venv holding pip and
install-atomic only, which is then kept as a template.  Each run
starts from a fresh copy of the template (same path, so every absolute path
in it holds) and upgrades the whole set in one transaction::

    install-atomic install -U --no-index -f OLD -f NEW requests urllib3 ...

(two wheelhouses, ``pip download`` of each pinned set, cached).  The
installer alone gets ``SIGKILL`` (not its process group: its pip and compile
children must die with it), then at once::

    VENV/bin/python -m install_atomic recover VENV/lib/pythonX.Y/site-packages

and the venv is checked:

* every distribution of the set has exactly one ``.dist-info``, and either
  every one is at its old version or every one at its new version (never a mix);
* the files on disk are exactly what the RECORDs of the installed versions
  list: every file below any top-level entry that either version ships (its
  packages, modules and their bytecode, ``.dist-info`` directories, console
  scripts) is listed, every listed file exists, every listed hash matches;
* every top-level module imports, and its ``__version__`` is the one it has
  after an uninterrupted install of the same version;
* ``pip check`` passes; ``install-atomic status`` reports nothing; nothing
  named ``.install-atomic*`` below site-packages or bin.

Where a kill landed is read from the venv just after the kill (before
``recover``): a journal present is **during the commit**; the new versions in
place and no journal is **after the commit**; otherwise **before the commit**
(split by whether the installer had printed ``committing``: then it was
inside the commit call, flushing the staged tree, taking the lock or planning,
before the journal).  Runs that finished before the kill are repeated.

Two series:

* **random**: the delay is uniform over [0, D), D the median duration of an
  uninterrupted upgrade (measured first, from fresh copies);
* **commit**: aimed at the part of the commit where its journal exists (the
  renames, then the removal of the old versions): once the installer has
  printed ``install-atomic: committing``, the benchmark polls site-packages
  for the journal and, when it appears, waits a delay uniform over 1.1 times
  the journal's measured lifetime, then kills.  (The commit's first part,
  flushing the staged tree, taking the lock and planning, changes nothing
  and is covered by the random series.)

Usage: ``python3 benchmarks/kill_set.py --kills 100 --commit-kills 50``
(``--quick``: the set without pygments, 5 random and 3 commit kills; exit 1 on
any inconsistency or if no kill landed while the installer ran).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import _common as c
from kill import snapshot, survivors

NAME = "kill_set"
OLD = {"requests": "2.32.3", "urllib3": "2.2.3", "idna": "3.10", "certifi": "2024.8.30",
       "charset-normalizer": "3.4.0", "six": "1.16.0", "attrs": "24.2.0",
       "pygments": "2.18.0"}
NEW = {"requests": "2.34.2", "urllib3": "2.8.0", "idna": "3.21",
       "certifi": "2026.10.19.post1", "charset-normalizer": "3.5.3", "six": "1.17.0",
       "attrs": "26.1.0", "pygments": "2.21.0"}
#: Left out by --quick (the largest: its compile and removal make up most of the time).
QUICK_LEAVES_OUT = ("pygments",)
COMMITTING = "install-atomic: committing"
DONE = "install-atomic: installed"
GONE_SECONDS = 60.0

CHECK = r'''
import base64, hashlib, importlib, importlib.metadata as md, json, os, re, sys
site, bindir, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
old, new = spec["old"], spec["new"]
problems = []


def canon(name):
    return re.sub(r"[-_.]+", "-", name).lower()


infos = {}
for entry in os.listdir(site):
    if entry.endswith(".dist-info"):
        name, _, version = entry[:-len(".dist-info")].partition("-")
        if canon(name) in old:
            infos.setdefault(canon(name), []).append((version, entry))
versions = {}
for name in old:
    found = infos.get(name, [])
    if len(found) != 1:
        problems.append(f"{name}: {len(found)} .dist-info directories {sorted(found)}")
    if found:
        versions[name] = found[0][0]
state = ("old" if versions == old else "new" if versions == new
         else "none" if not versions else "mixed")
if state not in ("old", "new"):
    problems.append(f"versions are {state}: {versions}")
for name, version in versions.items():
    try:
        got = md.version(name)
    except md.PackageNotFoundError:
        got = None
    if got != version:
        problems.append(f"importlib.metadata: {name} {got}, its .dist-info says {version}")

# Every file below what either version ships, against the installed RECORDs.
on_disk = set()
for top in spec["tops"]:
    path = os.path.join(site, top)
    if os.path.isdir(path) and not os.path.islink(path):
        for dirpath, dirnames, filenames in os.walk(path):
            for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                on_disk.add(os.path.join(dirpath, n))
    elif os.path.lexists(path):
        on_disk.add(path)
    if top.endswith(".py"):
        cache = os.path.join(site, "__pycache__")
        stem = top[:-3] + "."
        if os.path.isdir(cache):
            on_disk.update(os.path.join(cache, n) for n in os.listdir(cache)
                           if n.startswith(stem) and n.endswith(".pyc"))
for script in spec["scripts"]:
    path = os.path.join(bindir, script)
    if os.path.lexists(path):
        on_disk.add(path)
listed = {}
for name in versions:
    for version, entry in infos[name]:
        try:
            with open(os.path.join(site, entry, "RECORD"), newline="") as f:
                import csv
                for row in csv.reader(f):
                    if row:
                        path = os.path.normpath(os.path.join(site, row[0]))
                        listed[path] = row[1] if len(row) > 1 else ""
        except OSError as exc:
            problems.append(f"{entry}/RECORD unreadable: {exc!r}")
stray = sorted(on_disk - set(listed))
missing = sorted(p for p in listed if not os.path.lexists(p))
bad = []
for path, digest in sorted(listed.items()):
    if digest and os.path.isfile(path):
        algo, _, value = digest.partition("=")
        with open(path, "rb") as f:
            got = base64.urlsafe_b64encode(hashlib.new(algo, f.read()).digest()).rstrip(b"=")
        if got.decode() != value:
            bad.append(path)
rel = lambda ps: [os.path.relpath(p, os.path.dirname(site)) for p in ps[:5]]
if stray:
    problems.append(f"{len(stray)} files on disk no RECORD lists, e.g. {rel(stray)}")
if missing:
    problems.append(f"{len(missing)} files listed in RECORD missing, e.g. {rel(missing)}")
if bad:
    problems.append(f"{len(bad)} files whose hash differs from RECORD, e.g. {rel(bad)}")
module_versions = {}
for module in spec["modules"]:
    try:
        v = getattr(importlib.import_module(module), "__version__", None)
        module_versions[module] = v if isinstance(v, str) else None
    except Exception as exc:
        problems.append(f"import {module}: {exc!r}")
print(json.dumps({"state": state, "versions": versions, "problems": problems,
                  "files": len(on_disk), "module_versions": module_versions}))
'''


def shipped(wheels: list[Path]) -> tuple[list[str], list[str], dict[str, str]]:
    """Top-level entries of site-packages, console-script names and importable top-level
    modules (module -> distribution) of these wheels."""
    tops: set[str] = set()
    scripts: set[str] = set()
    modules: dict[str, str] = {}
    for wheel in wheels:
        dist = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                top = name.split("/")[0]
                if top.endswith(".data"):
                    parts = name.split("/")
                    if len(parts) > 2 and parts[1] == "scripts":
                        scripts.add(parts[2])
                    continue
                tops.add(top)
                if top.endswith(".dist-info"):
                    if name.endswith("/entry_points.txt"):
                        section = ""
                        for line in z.read(name).decode().splitlines():
                            line = line.strip()
                            if line.startswith("["):
                                section = line
                            elif "=" in line and section in ("[console_scripts]",
                                                             "[gui_scripts]"):
                                scripts.add(line.split("=")[0].strip())
                elif top.endswith(".py"):
                    modules[top[:-3]] = dist
                elif "/" in name and name.split("/")[1] == "__init__.py":
                    modules[top] = dist
    return sorted(tops), sorted(scripts), dict(sorted(modules.items()))


class Installer:
    """One ``install-atomic install -U`` in its own session, output watched."""

    def __init__(self, venv: c.Venv, cmd: list[str], env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=venv.root, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.committing = threading.Event()
        self.committing_at = 0.0
        self.done = False
        self.output: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if line.startswith(COMMITTING) and not self.committing.is_set():
                self.committing_at = time.monotonic()
                self.committing.set()
            if line.startswith(DONE):
                self.done = True

    def finish(self) -> int:
        rc = self.proc.wait()
        self.thread.join(timeout=GONE_SECONDS)
        return rc


def journals(site: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(site) if n.endswith(".journal"))
    except OSError:
        return []


def versions_on_disk(site: Path, old: dict[str, str], new: dict[str, str]) -> str:
    """"old", "new", "mixed" or "none": the set's .dist-info directories right now."""
    found: dict[str, set[str]] = {}
    for entry in os.listdir(site):
        if entry.endswith(".dist-info"):
            name, _, version = entry[: -len(".dist-info")].partition("-")
            key = re.sub(r"[-_.]+", "-", name).lower()
            if key in old:
                found.setdefault(key, set()).add(version)
    if all(found.get(k) == {v} for k, v in old.items()):
        return "old"
    if all(found.get(k) == {v} for k, v in new.items()):
        return "new"
    return "mixed" if found else "none"


class Bench:
    def __init__(self, work: Path, venv: c.Venv, template: Path, cmd: list[str],
                 env: dict[str, str], spec: dict[str, Any], script: Path) -> None:
        self.work, self.venv, self.template = work, venv, template
        self.cmd, self.env, self.spec, self.script = cmd, env, spec, script
        self.tmpdir = Path(env["TMPDIR"])
        #: "old"/"new" -> each module's __version__, from the clean states.
        self.module_versions: dict[str, dict[str, str | None]] = {}

    def fresh(self) -> None:
        """The venv as pip left it: a copy of the template at the venv's path, its files
        hard links (nothing writes into an installed file in place: installs add, rename
        and unlink; :func:`fingerprint` of the template, before and after, checks it)."""
        if self.venv.root.exists():
            c.run(["rm", "-rf", self.venv.root])
        c.run(["cp", "-al", self.template, self.venv.root])

    def check(self) -> dict[str, Any]:
        v = self.venv
        proc = c.run([v.python, "-I", "-B", self.script, v.site_packages, v.bin,
                      json.dumps(self.spec)], check=False, cwd=self.work, env=self.env)
        try:
            state = dict(json.loads(proc.stdout.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            state = {"state": None, "problems": [c.scrub(proc.stderr[-500:])]}
        pip = c.run([v.python, "-m", "pip", "check"], check=False, cwd=self.work,
                    env={**self.env, "PYTHONDONTWRITEBYTECODE": "1"})
        if pip.returncode != 0:
            state["problems"].append("pip check: " + c.scrub(pip.stdout.strip()[-300:]))
        status = c.run([v.python, "-m", "install_atomic", "status", v.site_packages, v.bin],
                       check=False, cwd=self.work, env=self.env)
        if status.returncode != 0 or status.stdout.strip() != "no interrupted installs":
            state["problems"].append("install-atomic status: "
                                     + c.scrub((status.stdout + status.stderr).strip()[-300:]))
        # The modules' own __version__ (certifi 2026.10.19.post1 says 2026.10.19): as
        # in the clean state of the same version.
        clean = self.module_versions.get(str(state.get("state")))
        if clean is not None and state.get("module_versions") != clean:
            state["problems"].append(f"modules' __version__ {state.get('module_versions')},"
                                     f" after a clean install {clean}")
        state["leftovers"] = c.find_leftovers(v.site_packages, v.bin)
        if state["leftovers"]:
            state["problems"].append(f"leftovers: {state['leftovers']}")
        return state

    def calibrate(self, runs: int) -> dict[str, float]:
        totals, commits, journal_s = [], [], []
        for _ in range(runs):
            self.fresh()
            inst = Installer(self.venv, self.cmd, self.env)
            first = last = 0.0
            while inst.proc.poll() is None:
                if inst.committing.is_set() and journals(self.venv.site_packages):
                    last = time.monotonic()
                    first = first or last
                time.sleep(0.0005)
            end = time.monotonic()
            if inst.finish() != 0 or not inst.done:
                raise c.BenchmarkError(c.scrub("upgrade failed:\n" + "".join(inst.output)))
            state = self.check()
            self.module_versions.setdefault("new", state.get("module_versions", {}))
            if state["problems"] or state["state"] != "new":
                raise c.BenchmarkError(f"an uninterrupted upgrade fails the check: {state}")
            totals.append(end - inst.started)
            commits.append(end - inst.committing_at)
            if first:
                journal_s.append(last - first)
        return {"total": c.median(totals), "commit": c.median(commits),
                "journal": c.median(journal_s) if journal_s else 0.0}

    def one_kill(self, mode: str, cal: dict[str, float], rng: random.Random) -> dict[str, Any]:
        t0 = time.monotonic()
        self.fresh()
        v = self.venv
        t1 = time.monotonic()
        inst = Installer(v, self.cmd, self.env)
        if mode == "random":
            time.sleep(rng.uniform(0, cal["total"]))
        else:
            deadline = time.monotonic() + 300
            while not inst.committing.wait(0.005) and inst.proc.poll() is None:
                if time.monotonic() > deadline:
                    break
            if not inst.committing.is_set() and inst.proc.poll() is None:
                raise c.BenchmarkError(c.scrub("the installer never committed:\n"
                                               + "".join(inst.output)))
            while inst.proc.poll() is None and not journals(v.site_packages):
                time.sleep(0.0001)
            seen = time.monotonic()
            after = rng.uniform(0, 1.1 * cal["journal"])
            time.sleep(max(0.0, seen + after - time.monotonic()))
        delay = time.monotonic() - inst.started
        before = snapshot(inst.proc.pid)
        finished = inst.proc.poll() is not None
        committing = inst.committing.is_set()
        with contextlib.suppress(ProcessLookupError):
            os.kill(inst.proc.pid, signal.SIGKILL)
        inst.proc.wait()
        journal = journals(v.site_packages)
        on_disk = versions_on_disk(v.site_packages, self.spec["old"], self.spec["new"])
        stages = c.find_leftovers(v.site_packages, v.bin)
        t2 = time.monotonic()
        rec = c.run([v.python, "-m", "install_atomic", "recover", v.site_packages],
                    check=False, cwd=self.work, env=self.env)
        t3 = time.monotonic()
        left = survivors(before, GONE_SECONDS)
        for pid, _, _ in left:  # so that the series can go on
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        inst.finish()
        if finished:
            phase = "finished before the kill"
        elif journal:
            phase = "during the commit (journal present)"
        elif on_disk == "new":
            phase = "after the commit"
        elif committing:
            phase = "before the commit (in commit(), before the journal)"
        else:
            phase = "before the commit"
        text = rec.stdout + rec.stderr
        if rec.returncode != 0:
            outcome = "recover failed"
        elif "rolled back" in text:
            outcome = "rolled back"
        elif "rolled forward" in text:
            outcome = "rolled forward"
        elif "abandoned staging" in text:
            outcome = "nothing to recover (abandoned staging removed)"
        else:
            outcome = "nothing to recover"
        t4 = time.monotonic()
        state = self.check()
        t5 = time.monotonic()
        tmp_left = sorted(p.name for p in self.tmpdir.iterdir())
        for p in self.tmpdir.iterdir():
            c.run(["rm", "-rf", p])
        return {
            "mode": mode, "delay_s": round(delay, 4), "killed": not finished, "phase": phase,
            "versions_at_kill": on_disk, "journal_at_kill": bool(journal),
            "leftovers_at_kill": len(stages), "descendants_at_kill": len(before),
            "surviving_processes": [c.scrub(p[2].replace(b"\0", b" ").decode(
                errors="replace")[:120]) for p in left],
            "recover": outcome, "recover_output": c.scrub(text.strip())[-400:],
            "state_after": state["state"], "consistent": not state["problems"],
            "problems": state["problems"],
            "tmp_leftovers": [re.sub(r"(\d+-)?[0-9a-z_]+$", "", n) or n for n in tmp_left],
            "seconds": {"copy": round(t1 - t0, 2), "install_until_kill": round(t2 - t1, 2),
                        "recover": round(t3 - t2, 2), "wait_for_children": round(t4 - t3, 2),
                        "check": round(t5 - t4, 2)},
        }


def fingerprint(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime in ns) of every file and symlink below *root*."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_size, st.st_mtime_ns)
    return out


def slim_venv(path: Path) -> c.Venv:
    """A venv with pip and install-atomic (and its dependencies) only: copied once per
    run, so the smaller the better (``make_venv`` adds setuptools, wheel, filelock, uv)."""
    venv = c.Venv(path)
    uv = c._uv()
    if uv is not None:
        c.run([sys.executable, "-m", "venv", "--without-pip", path])
        c.run([uv, "pip", "install", "-q", "--python", venv.python, "pip", c.repo_wheel()])
    else:
        c.run([sys.executable, "-m", "venv", path])
        venv.run("-m", "pip", "install", "-q", "--upgrade", "pip", c.repo_wheel())
    return venv


def summarize(entries: list[dict[str, Any]]) -> dict[str, Any]:
    killed = [e for e in entries if e["killed"]]
    return {
        "runs": len(entries),
        "killed": len(killed),
        "finished_before_kill": len(entries) - len(killed),
        "phases": dict(Counter(e["phase"] for e in killed)),
        "consistent": sum(e["consistent"] for e in entries),
        "state_after": dict(Counter(str(e["state_after"]) for e in entries)),
        "outcomes": dict(Counter(e["recover"] for e in entries)),
        "outcomes_by_phase": {ph: dict(Counter(e["recover"] for e in killed
                                               if e["phase"] == ph))
                              for ph in sorted({e["phase"] for e in killed})},
        "runs_with_surviving_processes": sum(bool(e["surviving_processes"]) for e in entries),
        "runs_leaving_files_in_tmpdir": sum(bool(e["tmp_leftovers"]) for e in entries),
        "inconsistent_examples": [e for e in entries if not e["consistent"]][:5],
    }


def markdown(summary: dict[str, dict[str, Any]]) -> str:
    before = "before the commit"
    inside = "before the commit (in commit(), before the journal)"
    during = "during the commit (journal present)"
    after = "after the commit"
    rows = []
    for mode, s in summary.items():
        ph, o, st = s["phases"], s["outcomes"], s["state_after"]
        rows.append([
            mode, s["runs"], s["killed"],
            f"{ph.get(before, 0) + ph.get(inside, 0)} ({ph.get(inside, 0)})",
            ph.get(during, 0), ph.get(after, 0), f"**{s['consistent']}/{s['runs']}**",
            f"{st.get('old', 0)} / {st.get('new', 0)} /"
            f" {s['runs'] - st.get('old', 0) - st.get('new', 0)}",
            o.get("rolled back", 0), o.get("rolled forward", 0),
            o.get("nothing to recover", 0)
            + o.get("nothing to recover (abandoned staging removed)", 0),
            o.get("nothing to recover (abandoned staging removed)", 0),
            o.get("recover failed", 0), s["runs_with_surviving_processes"],
            s["runs_leaving_files_in_tmpdir"],
        ])
    return c.md_table(
        ["series", "runs", "killed (rest had finished)",
         "before the commit (of which inside commit(), no journal yet)",
         "during the commit (journal)", "after the commit", "consistent after recover",
         "all old / all new / other", "rolled back", "rolled forward", "nothing to recover",
         "(of which abandoned staging removed)", "recover failed",
         "runs with processes outliving the installer", "runs leaving files in $TMPDIR"],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=100,
                   help="kills at a random instant (runs that finish first are repeated)")
    p.add_argument("--commit-kills", type=int, default=50,
                   help="kills aimed at the commit (runs that finish first are repeated)")
    p.add_argument("--seed", type=int, default=20261205)
    args = p.parse_args(argv)
    if args.quick:
        args.kills, args.commit_kills = min(args.kills, 5), min(args.commit_kills, 3)
    rng = random.Random(args.seed)
    old = {k: v for k, v in OLD.items() if not (args.quick and k in QUICK_LEAVES_OUT)}
    new = {k: NEW[k] for k in old}
    old_wh = c.wheelhouse([f"{k}=={v}" for k, v in OLD.items()])
    new_wh = c.wheelhouse([f"{k}=={v}" for k, v in NEW.items()])
    c.register_scrub(old_wh, "<wheelhouse-old>")
    c.register_scrub(new_wh, "<wheelhouse-new>")
    wheels = [w for w in [*old_wh.glob("*.whl"), *new_wh.glob("*.whl")]
              if re.sub(r"[-_.]+", "-", w.name.split("-")[0]).lower() in old]
    tops, scripts, modules = shipped(sorted(wheels))
    spec = {"old": old, "new": new, "tops": tops, "scripts": scripts, "modules": modules}
    entries: list[dict[str, Any]] = []
    series = (("random", args.kills), ("commit", args.commit_kills))
    with c.workdir(args, NAME) as work:
        tmpdir = work / "tmp"
        tmpdir.mkdir()
        env = c.isolated_env({"PYTHONUNBUFFERED": "1", "TMPDIR": str(tmpdir)})
        venv = slim_venv(work / "venv")
        venv.run("-m", "pip", "install", "-q", "--no-index", "--find-links", old_wh,
                 *(f"{k}=={v}" for k, v in old.items()), env=env)
        # Bytecode of the tools themselves, once, in the template.
        venv.run("-m", "install_atomic", "status", venv.site_packages, env=env)
        venv.run("-c", "import install_atomic.frontends.wheels.install", env=env)
        template = work / "template"
        venv.root.rename(template)
        pristine = fingerprint(template)
        script = work / "check.py"
        script.write_text(CHECK)
        cmd = [str(venv.bin / "install-atomic"), "install", "-U", "--no-index",
               "--find-links", str(old_wh), "--find-links", str(new_wh), *old]
        bench = Bench(work, venv, template, cmd, env, spec, script)
        bench.fresh()
        base = bench.check()
        bench.module_versions["old"] = base.get("module_versions", {})
        if base["problems"] or base["state"] != "old":
            raise c.BenchmarkError(f"the venv pip made fails the check: {base}")
        cal = bench.calibrate(1 if args.quick else 5)
        c.log(f"an upgrade takes {cal['total']:.2f} s; from 'committing' to its exit"
              f" {cal['commit'] * 1e3:.0f} ms, its journal lives {cal['journal'] * 1e3:.0f} ms;"
              f" {base['files']} files of the set on disk")
        for mode, wanted in series:
            killed = runs = 0
            while killed < wanted and runs < 3 * wanted:
                entry = bench.one_kill(mode, cal, rng)
                entries.append(entry)
                runs += 1
                killed += entry["killed"]
                if not entry["consistent"]:
                    c.log(f"{mode} run {runs} ({entry['phase']}): NOT CONSISTENT:"
                          f" {entry['problems']}")
                if entry["surviving_processes"]:
                    c.log(f"{mode} run {runs}: processes outlived the installer:"
                          f" {entry['surviving_processes']}")
                if runs % 25 == 0:
                    ok = sum(e["consistent"] for e in entries if e["mode"] == mode)
                    c.log(f"{mode}: {runs} runs, {killed} killed, {ok} consistent")
        changed = fingerprint(template)
        template_changed = sorted(k for k in set(pristine) | set(changed)
                                  if pristine.get(k) != changed.get(k))
        summary = {mode: summarize([e for e in entries if e["mode"] == mode])
                   for mode, _ in series if any(e["mode"] == mode for e in entries)}
        total = summarize(entries)
        data = {
            "benchmark": NAME, "quick": args.quick, "seed": args.seed,
            "distributions": {k: [old[k], new[k]] for k in old},
            "files_of_the_set_old": base["files"],
            "command": c.scrub(" ".join(cmd)),
            "signal": "SIGKILL to the installer's pid",
            "calibration_seconds": {k: round(v, 4) for k, v in cal.items()},
            "machine": c.machine_info(venv, work),
            "load_average_1min_at_end": c.load_average(),
            "template_changed": template_changed[:20],
            "summary": summary, "total": {k: v for k, v in total.items()
                                          if k != "inconsistent_examples"},
            "runs": entries,
        }
    c.save_results(NAME, data, args)
    goals = {
        f"kills that landed while the installer ran: {total['killed']} (> 0)":
            total["killed"] > 0,
        f"every state consistent after recover ({total['consistent']}/{total['runs']}):"
        " all old or all new, files exactly as RECORD, pip check, status clean":
            total["consistent"] == total["runs"],
        f"recover never failed ({total['outcomes'].get('recover failed', 0)} failed)":
            not total["outcomes"].get("recover failed", 0),
    }
    goals[f"the template venv was never written through a hard link"
          f" ({len(template_changed)} files changed)"] = not template_changed
    if not args.quick:
        goals[f">= {args.kills} kills at random instants"] = (
            summary.get("random", {}).get("killed", 0) >= args.kills)
        goals["some kills landed while a journal existed"] = any(
            "journal" in ph for ph in total["phases"])
    print(f"phases of the {total['killed']} kills: {total['phases']}\n")
    return c.report(markdown(summary), goals)


if __name__ == "__main__":
    raise SystemExit(main())
