"""install-atomic merge versus ``cp -Rp``: Sage's race (seeds 002 and 004) reproduced and
beaten, and the speed of a 10,000-file merge.

**Race.**  A prefix with ``lib/python3.X/site-packages`` and ``include``; several
packages whose staged trees (DESTDIR layout, bytecode included, as a ``pip install``
into the DESTDIR leaves them) share ``site-packages/backports/`` (a pkgutil
namespace ``__init__.py`` and its ``.pyc``) and ``include/``.  Merge workers
(one per group of packages, as a parallel ``make`` builds different packages at
once) upgrade and downgrade their packages in a loop, while reader processes
import every module of every package and byte-compiler processes run
``compileall`` over the prefix, both in a loop.  Two modes, one after the other
in one run, on the same trees:

* ``cp``: Sage's ``sage-spkg``: remove the files of the installed version
  (its manifest), then ``cp -Rp DESTDIR/. PREFIX``;
* ``merge``: ``install-atomic merge --manifest NEW --replace OLD DESTDIR PREFIX``.

Counted: failed merges (non-zero exit: "cp: cannot create regular file ...: File
exists"), broken imports (any exception), mixed imports (modules of two versions
in one import, informational).  Goal: merge 0 failed, 0 broken, at least 200
merges (``--quick``: 24).

**Speed.**  A 10,000-file tree (``--quick``: 2,000) upgraded over its previous
version, staged on the prefix's filesystem and on another one (``/dev/shm``):
``cp -Rp``, ``rsync -a`` (when installed) and ``merge``; wall time, and the time
the prefix is inconsistent (for a copy the whole copy; for a merge its renames).
Each tool starts from the same state: the old version installed and the new one
staged, both flushed to disk (one ``sync`` before the timed run), as after any
build; otherwise the first tool to wait for the disk (a durable merge's
``syncfs``, or deleting files whose blocks were just allocated) would pay for
the writes the set-up made.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

import _common as c

NAME = "merge"
PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
SITE = f"lib/{PY}/site-packages"
NS = "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"

READER = r"""
import importlib, json, os, sys, time
site, stop, out, names = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
dropped = json.loads(sys.argv[5])  # modules only the older version has
sys.path.insert(0, site)
ok = broken = mixed = gone = 0
errors = {}
while not os.path.exists(stop):
    for name in names:
        for key in [k for k in sys.modules if k == "backports" or k.startswith("backports.")]:
            del sys.modules[key]
        importlib.invalidate_caches()
        try:
            pkg = importlib.import_module(f"backports.{name}")
            versions = {pkg.VERSION}
            for m in pkg.MODULES:
                versions.add(importlib.import_module(f"backports.{name}.{m}").VERSION)
        except (ModuleNotFoundError, FileNotFoundError) as exc:
            # Imported the version that has it; the upgrade swapped in one that has not.
            if any(f"{name}.{m}'" in str(exc) or f"/{m}.py" in str(exc) for m in dropped):
                gone += 1
                continue
            broken += 1
            key = f"{type(exc).__name__}: {str(exc)[:120]}"
            errors[key] = errors.get(key, 0) + 1
            continue
        except Exception as exc:
            broken += 1
            key = f"{type(exc).__name__}: {str(exc)[:120]}"
            errors[key] = errors.get(key, 0) + 1
            continue
        ok += 1
        mixed += len(versions) > 1
with open(out, "w") as f:
    json.dump({"ok": ok, "broken": broken, "mixed": mixed, "gone": gone, "errors": errors}, f)
"""

COMPILER = r"""
import compileall, os, sys
site, stop, out = sys.argv[1], sys.argv[2], sys.argv[3]
runs = failures = 0
while not os.path.exists(stop):
    try:
        compileall.compile_dir(site, quiet=2)
    except Exception:
        failures += 1
    runs += 1
with open(out, "w") as f:
    f.write(f"{runs} {failures}")
"""


def package_tree(root: Path, name: str, version: int, modules: int) -> Path:
    """A DESTDIR tree of one package, bytecode compiled as in a staged pip install."""
    site = root / SITE
    mods = [f"m{i}" for i in range(modules)]
    files = {
        f"{SITE}/backports/__init__.py": NS,
        f"{SITE}/backports/{name}/__init__.py":
            f"VERSION = {version}\nMODULES = {mods!r}\n",
        f"include/backports/{name}.h": f"#define {name.upper()}_VERSION {version}\n",
        "include/backports-config.h": "#define BACKPORTS 1\n",
        f"share/doc/{name}/NEWS": f"{version}\n",
    }
    for m in mods:
        files[f"{SITE}/backports/{name}/{m}.py"] = f"VERSION = {version}\n" + "x = 1\n" * 50
    c.write_files(root, files)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(site)], check=True)
    return root


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def cp_install(dest: Path, prefix: Path, old_files: list[str]) -> tuple[bool, str]:
    for rel in old_files:  # sage-spkg: uninstall the old version first
        with contextlib.suppress(FileNotFoundError):
            os.unlink(prefix / rel)
    proc = subprocess.run(["cp", "-Rp", f"{dest}/.", str(prefix)], capture_output=True,
                          text=True, check=False)
    return proc.returncode == 0, proc.stderr.strip()


def merge_install(dest: Path, prefix: Path, new: Path, old: Path | None) -> tuple[bool, str]:
    cmd = [sys.executable, "-m", "install_atomic", "merge", "-q", "--no-fsync", "--manifest",
           str(new)]
    if old is not None:
        cmd += ["--replace", str(old)]
    proc = subprocess.run([*cmd, str(dest), str(prefix)], capture_output=True, text=True,
                          check=False, env=_env())
    return proc.returncode == 0, proc.stderr.strip()


def _env() -> dict[str, str]:
    env = c.clean_env()
    env["PYTHONPATH"] = str(c.REPO_ROOT / "src")
    return env


def race(work: Path, mode: str, packages: int, workers: int, rounds: int,
         modules: int) -> dict[str, Any]:
    prefix = work / f"prefix-{mode}"
    (prefix / SITE).mkdir(parents=True)
    (prefix / "include").mkdir()
    names = [f"pkg{i}" for i in range(packages)]
    templates = {(n, v): package_tree(work / f"tpl-{n}-{v}", n, v, modules - (v - 1) * 3)
                 for n in names for v in (1, 2)}
    manifests = prefix / "var/lib/pkgs"
    manifests.mkdir(parents=True)
    installed: dict[str, tuple[int, Path | None]] = {}

    def stage(name: str, version: int, tag: str) -> Path:
        dest = work / f"dest-{mode}-{tag}"
        shutil.copytree(templates[(name, version)], dest, symlinks=True)
        return dest

    def install(name: str, version: int, tag: str) -> tuple[bool, str]:
        dest = stage(name, version, tag)
        try:
            if mode == "cp":
                old = installed.get(name)
                old_files = listing(templates[(name, old[0])]) if old else []
                ok, err = cp_install(dest, prefix, old_files)
            else:
                new = manifests / f"{name}-{version}-{tag}.json"
                previous = installed.get(name)
                ok, err = merge_install(dest, prefix, new, previous[1] if previous else None)
                if ok:
                    installed[name] = (version, new)
            if ok and mode == "cp":
                installed[name] = (version, None)
            return ok, err
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    for name in names:  # first versions, before anyone reads
        ok, err = install(name, 1, f"init-{name}")
        if not ok:
            raise c.BenchmarkError(f"initial {mode} install of {name} failed: {err}")
    stop = work / f"stop-{mode}"
    helpers = []
    for i in range(2):
        helpers.append(subprocess.Popen(
            [sys.executable, "-c", READER, str(prefix / SITE), str(stop),
             str(work / f"reader-{mode}-{i}.json"), json.dumps(names),
             json.dumps([f"m{j}" for j in range(modules - 3, modules)])], env=c.clean_env()))
    helpers.append(subprocess.Popen([sys.executable, "-c", COMPILER, str(prefix / SITE),
                                     str(stop), str(work / f"compiler-{mode}.txt")],
                                    env=c.clean_env()))
    # Workers: threads driving processes, each owning a group of packages.
    import threading

    failures: list[str] = []
    count = [0]
    lock = threading.Lock()

    def worker(w: int) -> None:
        mine = names[w::workers]
        rng = random.Random(w)
        for r in range(rounds):
            name = rng.choice(mine)
            version = 2 if installed[name][0] == 1 else 1
            ok, err = install(name, version, f"w{w}-{r}")
            with lock:
                count[0] += 1
                if not ok:
                    failures.append(c.scrub(err.splitlines()[-1] if err else "failed"))

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    stop.touch()
    for h in helpers:
        h.wait(timeout=300)
    readers = [json.loads((work / f"reader-{mode}-{i}.json").read_text()) for i in range(2)]
    runs, compile_failures = (int(x) for x in
                              (work / f"compiler-{mode}.txt").read_text().split())
    errors: dict[str, int] = {}
    for r in readers:
        for k, v in r["errors"].items():
            errors[c.scrub(k)] = errors.get(c.scrub(k), 0) + v
    leftovers = [p for p in prefix.rglob(".install-atomic*")
                 if not any(q.name.startswith(".install-atomic") for q in p.parents)]
    # compileall listed a replaced directory at its backup name and wrote a .pyc there
    # after it was deleted (py_compile's makedirs recreates the name): bytecode only.
    resurrected = [p for p in leftovers if p.is_dir() and all(
        f.suffix == ".pyc" for f in p.rglob("*") if not f.is_dir())]
    return {
        "mode": mode, "merges": count[0], "failed_merges": len(failures),
        "failure_messages": sorted(set(failures))[:5],
        "imports": sum(r["ok"] + r["broken"] + r["gone"] for r in readers),
        "dropped_module_imports": sum(r["gone"] for r in readers),
        "broken_imports": sum(r["broken"] for r in readers),
        "mixed_imports": sum(r["mixed"] for r in readers),
        "import_errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5]),
        "compileall_runs": runs, "compileall_failures": compile_failures,
        "seconds": round(seconds, 1), "leftovers": len(leftovers) - len(resurrected),
        "bytecode_only_leftovers": len(resurrected),
    }


def big_tree(root: Path, files: int, version: int) -> Path:
    per = 100
    entries: dict[str, str] = {}
    for i in range(files):
        entries[f"share/bench/d{i // per}/f{i}"] = f"{version} {i}\n"
    entries["include/bench.h"] = f"{version}\n"
    c.write_files(root, entries)
    # Each version a minute apart, as builds are: rsync's quick check (size and mtime
    # in seconds) would skip the same-size files of two versions written in one second.
    when = time.time() - (10 - version) * 60
    for rel in entries:
        os.utime(root / rel, (when, when))
    return root


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise c.BenchmarkError(f"{cmd[:3]} failed: {proc.stderr}")
    return time.perf_counter() - t, proc.stdout


def speed(work: Path, files: int, other_fs: Path | None) -> list[dict[str, Any]]:
    rows = []
    v1, v2 = big_tree(work / "big-v1", files, 1), big_tree(work / "big-v2", files, 2)
    places = [("same filesystem", work)]
    if other_fs is not None:
        places.append(("across filesystems", other_fs))
    tools = ["cp -Rp", *(["rsync -a"] if shutil.which("rsync") else []), "merge",
             "merge --no-fsync"]
    for where, base in places:
        for tool in tools:
            prefix = work / f"speed-{tool.split()[0]}-{len(rows)}"
            prefix.mkdir()
            manifest = prefix / "var/m-1.json"
            if tool.startswith("merge"):  # the old version installed by merge, with a manifest
                first = work / f"first-{len(rows)}"
                shutil.copytree(v1, first, symlinks=True)
                timed([sys.executable, "-m", "install_atomic", "merge", "--no-fsync",
                       "--manifest", str(manifest), str(first), str(prefix)], env=_env())
            else:
                shutil.copytree(v1, prefix, symlinks=True, dirs_exist_ok=True)
            dest = Path(base) / f"ia-bench-dest-{os.getpid()}-{len(rows)}"
            shutil.copytree(v2, dest, symlinks=True)
            subprocess.run(["sync"], check=False)  # the set-up's writes are not timed
            try:
                if tool == "cp -Rp":
                    seconds, _ = timed(["cp", "-Rp", f"{dest}/.", str(prefix)])
                    window = seconds
                elif tool == "rsync -a":
                    seconds, _ = timed(["rsync", "-a", f"{dest}/", f"{prefix}/"])
                    window = seconds
                else:
                    extra = ["--no-fsync"] if "no-fsync" in tool else []
                    seconds, out = timed([sys.executable, "-m", "install_atomic", "merge",
                                          *extra, "--manifest", str(prefix / "var/m-2.json"),
                                          "--replace", str(manifest), str(dest), str(prefix)],
                                         env=_env())
                    match = re.search(r"renames in ([\d.]+) ms", out)
                    window = float(match.group(1)) / 1e3 if match else float("nan")
                correct = (prefix / "include/bench.h").read_text() == "2\n" and (
                    prefix / f"share/bench/d0/f{files - 1 if files < 100 else 0}").exists()
            finally:
                shutil.rmtree(dest, ignore_errors=True)
            rows.append({"where": where, "tool": tool, "files": files,
                         "seconds": round(seconds, 3), "inconsistent_seconds": round(window, 4),
                         "correct": correct})
            c.log(f"{where}: {tool}: {seconds:.2f} s, inconsistent {window * 1e3:.1f} ms")
    return rows


def main(argv: list[str] | None = None) -> int:
    args = c.parser(__doc__.splitlines()[0]).parse_args(argv)
    if args.quick:
        packages, workers, rounds, modules, files = 4, 3, 8, 8, 500
    else:
        packages, workers, rounds, modules, files = 6, 3, 70, 12, 10000
    other = Path("/dev/shm") if os.path.isdir("/dev/shm") else None
    with c.workdir(args, NAME) as work:
        if other is not None and c.filesystem_type(other) == c.filesystem_type(work):
            other = None
        results = []
        for mode in ("cp", "merge"):
            c.log(f"race: {mode}: {workers} workers x {rounds} rounds, {packages} packages")
            results.append(race(work, mode, packages, workers, rounds, modules))
            c.log(json.dumps(results[-1]))
        speeds = speed(work, files, other)
        info = c.machine_info(where=work)
    cp_r, m_r = results
    want = 24 if args.quick else 200
    data = {"benchmark": NAME, "quick": args.quick, "machine": info, "load_average":
            c.load_average(), "race": results, "speed": speeds}
    c.save_results(NAME, data, args)
    table = c.md_table(
        ["", "merges", "failed", "imports", "broken", "dropped module", "mixed",
         "compileall runs", "leftovers"],
        [[r["mode"], r["merges"], r["failed_merges"], r["imports"], r["broken_imports"],
          r["dropped_module_imports"], r["mixed_imports"], r["compileall_runs"],
          r["leftovers"]] for r in results])
    table += "\n\n" + c.md_table(
        ["where", "tool", "files", "seconds", "prefix inconsistent (s)"],
        [[s["where"], s["tool"], s["files"], s["seconds"], s["inconsistent_seconds"]]
         for s in speeds])
    goals = {
        f"merge: 0 failed merges of {m_r['merges']}": m_r["failed_merges"] == 0,
        f"merge: 0 broken imports of {m_r['imports']}": m_r["broken_imports"] == 0,
        f"merge: at least {want} merges": m_r["merges"] >= want,
        "merge: nothing named .install-atomic* left": m_r["leftovers"] == 0,
        "every speed run left the new version in place": all(s["correct"] for s in speeds),
    }
    if cp_r["failed_merges"] == 0 and cp_r["broken_imports"] == 0:
        print("(note: cp -Rp had no failure in this run; its race is probabilistic)")
    return c.report(table, goals)


if __name__ == "__main__":
    raise SystemExit(main())
