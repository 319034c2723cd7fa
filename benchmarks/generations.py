"""Generations: readers while the environment switches, against per-entry swaps.

Two scenarios, each run against two environments made by :func:`_common.make_venv`:

* **generations**: a venv put under generations (``install-atomic init
  --generations ENV``); every version below is installed into it by a real
  ``install-atomic install --python ENV/bin/python --no-deps --no-index WHEEL``,
  which builds one generation each.  A *switcher* process (that venv's
  interpreter) then makes those generations current round-robin, back to back,
  with :func:`install_atomic.engine.generations.manage.switch_to` (the
  environment's lock each time, ``durable=False``);
* **per-entry**: a plain venv where the same versions were installed by the
  same command; the switcher there replaces them back to back with
  install-atomic's plain-mode engine
  (:class:`install_atomic.engine.transaction.Transaction`, as ``swap_window.py``
  uses it, ``durable=False``): each commit stages what ``install-atomic
  install`` had put in site-packages for that version (the package directory
  and its ``.dist-info``, bytecode included; hard links to a copy taken after
  that install, so that staging costs no copying) and renames it in, one rename
  per top-level entry.

Scenarios:

* **churn**: ``churnpkg`` in ``--versions`` versions (default 4) out of
  ``--modules`` submodules (default 300): a third are in every version, half
  are missing from exactly one version, a sixth exist in one version only.
  Every module has ``VERSION``; ``churnpkg.MODULES`` lists the version's
  submodules.  A reader imports ``churnpkg``, then every module of
  ``churnpkg.MODULES`` in a random order, sleeping ``--pause-ms`` before each.
* **alpha/beta**: distributions ``alpha`` and ``beta`` in 1.0 and 2.0 (``beta X``
  requires ``alpha==X``; each has one submodule).  In the generations venv one
  ``install-atomic install`` of both makes the generation {alpha 1, beta 1},
  another {alpha 2, beta 2}; the switcher switches between those two.  In the
  plain venv each flip is two commits, alpha then beta, as any per-distribution
  installer does it.  A reader imports ``beta`` (half of them ``alpha``), sleeps
  20 pauses, then ``beta.check()`` imports ``alpha``, ``alpha.core`` and
  ``beta.extra`` lazily and raises ``beta.MixedVersionsError`` unless all four
  versions agree.

Readers are fresh interpreters (``ENV/bin/python -c ...``, bytecode writing
enabled, an empty working directory) that first sleep a random 0 to 100 pauses
(else, restarting as soon as a switch broke them, they fall in step with the
switcher and see some versions only), ``--pool`` of them at a time, until
``--readers`` ran in each (scenario, environment) while its switcher ran.  Each
is **ok** (every module had the version of the first one), **mixed** (a module
of another version was loaded) or **broken** (ImportError,
ModuleNotFoundError, any other exception, or a dead interpreter).  A reader
in the generations venv also reports the generation its start-up hook pinned
and whether the package came from it.  "Spanning a switch" counts the readers
whose import sequence (from the end of the first import to the end of the
last) overlaps a change the switcher made: the rename of ``current``
(generations), or the renames of one commit (per-entry), timed by wrapping
``switch.point_current`` and ``Transaction._run_steps`` (``time.monotonic``
is one clock for every process on Linux).  In the per-entry alpha/beta runs a
reader that spans no commit can still see mixed versions: between the alpha
commit and the beta commit the environment itself holds alpha X+1 and beta X.
"Switches" are the switcher's flips from one version (set) to the next: one
rename of ``current``, or one commit (churn) or two (alpha/beta) per-entry;
switches per second are flips over the switcher's whole run.  A churn reader
that loaded a submodule of another version and then found one missing counts
as broken (the table says how many had loaded another version first).

Goals (exit status 1 if one is missed): in the generations venv, 0 mixed and
0 broken readers in both scenarios, and every reader pinned a generation,
imported from it and wrote nothing on stderr; in every run the switcher made
changes and no error; full runs have at least 500 readers in each of the four
(scenario, environment) pairs; no journal or private leftover in the
generations layout afterwards; no process of the benchmark outlives it.  The
per-entry outcomes are reported, not judged.

Usage: ``python3 benchmarks/generations.py`` (600 readers per pair, 6 at a
time; ``--quick``: 40 per pair, 4 at a time).
"""

from __future__ import annotations

import bisect
import concurrent.futures
import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _common as c

NAME = "generations"
PAIR_VERSIONS = ("1.0", "2.0")
LAYOUT_DIR = "install-atomic-generations"
#: Environment variables of the start-up hook a reader must not inherit.
_HOOK_ENV: dict[str, str | None] = {"INSTALL_ATOMIC_GENERATION": None,
                                    "INSTALL_ATOMIC_INHERIT_GENERATION": None}

# --------------------------------------------------------------------------- packages


def churn_versions(count: int) -> list[str]:
    return [f"{k + 1}.0" for k in range(count)]


def churn_members(k: int, versions: int, total: int) -> list[int]:
    """Indexes of the submodules of version number *k* (0-based)."""
    core, shared = total // 3, total * 5 // 6
    out = []
    for i in range(total):
        if i < core:
            out.append(i)
        elif i < shared:
            if (i // 10) % versions != k:
                out.append(i)
        elif i % versions == k:
            out.append(i)
    return out


def churn_module(index: int, version: str, k: int) -> str:
    pad = "# padding\n" * (k + 1)
    funcs = "".join(f"\n\ndef f_{j}(x):\n    return x * {j} + {index}\n" for j in range(6))
    return (f'"""churnpkg.m{index:03d}, release {version}."""\n\n'
            f'VERSION = "{version}"\n{pad}'
            f"TABLE = tuple(range({index}, {index} + 32))\n{funcs}\n")


def churn_project(root: Path, k: int, version: str, versions: int, total: int) -> Path:
    members = churn_members(k, versions, total)
    names = [f"m{i:03d}" for i in members]
    files: dict[str, str] = {
        "setup.py": c.setup_py("churnpkg", version, packages="['churnpkg']"),
        "churnpkg/__init__.py": (f'"""churnpkg {version}: {len(names)} submodules."""\n\n'
                                 f'VERSION = "{version}"\nMODULES = {tuple(names)!r}\n'),
    }
    for i in members:
        files[f"churnpkg/m{i:03d}.py"] = churn_module(i, version, k)
    project = root / f"churnpkg-{version}"
    c.write_files(project, files)
    c.set_mtime(project, time.time() - 3600 + 300 * k)
    return project


ALPHA_INIT = '''"""alpha {v}."""

VERSION = "{v}"
'''
BETA_INIT = '''"""beta {v}: needs alpha {v}, imported lazily by check()."""

VERSION = "{v}"


class MixedVersionsError(AssertionError):
    """check() found modules of alpha and beta of different versions."""


def check(pause=None):
    import alpha

    if pause is not None:
        pause()
    from alpha import core

    from beta import extra

    versions = {{"beta": VERSION, "beta.extra": extra.VERSION, "alpha": alpha.VERSION,
                "alpha.core": core.VERSION}}
    if len(set(versions.values())) != 1:
        raise MixedVersionsError("mixed versions: " + repr(versions))
    return VERSION
'''
SUBMODULE = '''"""{name}, release {v}."""

VERSION = "{v}"
{pad}'''


def pair_project(root: Path, dist: str, version: str) -> Path:
    pad = "# padding\n" * int(float(version))
    if dist == "alpha":
        files = {"setup.py": c.setup_py("alpha", version, packages="['alpha']"),
                 "alpha/__init__.py": ALPHA_INIT.format(v=version),
                 "alpha/core.py": SUBMODULE.format(name="alpha.core", v=version, pad=pad)}
    else:
        files = {"setup.py": c.setup_py("beta", version, packages="['beta']",
                                        install_requires=repr([f"alpha=={version}"])),
                 "beta/__init__.py": BETA_INIT.format(v=version),
                 "beta/extra.py": SUBMODULE.format(name="beta.extra", v=version, pad=pad)}
    project = root / f"{dist}-{version}"
    c.write_files(project, files)
    c.set_mtime(project, time.time() - 3600 + 600 * PAIR_VERSIONS.index(version))
    return project


# --------------------------------------------------------------------------- readers

#: Printed last by every reader: ``READER {json}``.
_READER_TAIL = r'''
out["t_last"] = time.monotonic()
hook = sys.modules.get("_install_atomic_generations")
pinned = getattr(hook, "pinned", None)
out["pinned"] = os.path.basename(pinned[0]) if pinned else None
if pinned and first is not None:
    out["from_pinned"] = os.path.abspath(first.__file__).startswith(pinned[0] + os.sep)
print("READER " + json.dumps(out), flush=True)
'''

READ_CHURN = r'''
import importlib, json, os, random, sys, time
pause = float(sys.argv[1])
out = {"outcome": "broken"}
first = None
other = {}
time.sleep(random.random() * 100 * pause)  # start at no fixed distance from a switch
try:
    import churnpkg
    first = churnpkg
    out["t_first"] = time.monotonic()
    out["version"] = churnpkg.VERSION
    names = list(churnpkg.MODULES)
    random.Random(os.getpid() ^ int(time.time() * 1e6)).shuffle(names)
    for name in names:
        time.sleep(pause)
        version = importlib.import_module("churnpkg." + name).VERSION
        if version != churnpkg.VERSION:
            other[name] = version
    out["imported"] = len(names)
    out["outcome"] = "mixed" if other else "ok"
    if other:
        out["exception"] = "mixed"
        out["detail"] = f"churnpkg {churnpkg.VERSION} with {len(other)} submodules of" \
                        f" {sorted(set(other.values()))}"
except Exception as exc:
    out["exception"] = type(exc).__name__
    out["detail"] = str(exc)[:300]
    out["mixed_before"] = bool(other)
''' + _READER_TAIL

READ_PAIR = r'''
import json, os, random, sys, time
pause, order = float(sys.argv[1]), sys.argv[2]
out = {"outcome": "broken", "order": order}
first = None


def wait(n=5):
    for _ in range(n):
        time.sleep(pause)


time.sleep(random.random() * 100 * pause)  # start at no fixed distance from a switch
try:
    if order == "beta-first":
        import beta
        first = beta
    else:
        import alpha
        first = alpha
    out["t_first"] = time.monotonic()
    out["version"] = first.VERSION
    wait(20)
    import beta
    beta.check(wait)
    out["outcome"] = "ok"
except Exception as exc:
    out["exception"] = type(exc).__name__
    out["detail"] = str(exc)[:300]
    if type(exc).__name__ == "MixedVersionsError":
        out["outcome"] = "mixed"
''' + _READER_TAIL

_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


def run_reader(python: Path, code: str, args: list[str], cwd: Path,
               env: dict[str, str]) -> dict[str, Any]:
    """One reader: its ``READER`` record, or a broken one built from how it died."""
    started = time.monotonic()
    try:
        proc = subprocess.run([str(python), "-c", code, *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        return {"outcome": "broken", "exception": "Timeout", "detail": "no exit in 300 s",
                "seconds": time.monotonic() - started}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("READER ")]
    if lines:
        data: dict[str, Any] = json.loads(lines[-1][len("READER "):])
    else:
        err = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        last = err[-1] if err else f"exit status {proc.returncode}"
        m = _EXC_LINE.match(last)
        data = {"outcome": "broken", "exception": m.group(1) if m else "exit",
                "detail": last[:300]}
    if proc.returncode != 0 and data["outcome"] != "broken":
        data.update(outcome="broken", exception=f"exit {proc.returncode}")
    data["stderr"] = proc.stderr.strip()[-300:]
    data["seconds"] = time.monotonic() - started
    return data


# --------------------------------------------------------------------------- switchers

SWITCHER = r'''
"""Switch back to back until the stop file exists; write what was done as JSON."""
import json, os, shutil, sys, time, traceback

mode, site, stop, out_path, plan = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], \
    json.loads(sys.argv[5])
stamps, swaps, notes = [], [], []
flips = 0


def warn(message):
    notes.append(str(message))




def stamped(owner, name):
    """Wrap owner.name to note when it runs: (start, end) around the rename(s) that
    change what a starting or importing reader finds."""
    orig = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.monotonic()
        result = orig(*args, **kwargs)
        stamps.append((start, time.monotonic()))
        return result

    setattr(owner, name, wrapper)


if mode == "generations":
    from install_atomic.engine.generations import manage
    from install_atomic.engine.generations import switch as generation_switch

    stamped(generation_switch, "point_current")  # the one rename of current

    def flip(i):
        manage.switch_to(site, plan[i % len(plan)], warn=warn, durable=False)
else:
    from install_atomic.engine.transaction import Transaction

    stamped(Transaction, "_run_steps")  # the renames of one commit

    def commit(project, template):
        with Transaction(project, site, durable=False, log=lambda m: None, warn=warn) as txn:
            stage = txn.stage(site)
            for name in sorted(os.listdir(template)):
                # Hard links: staging costs one link per file, not a copy; the engine
                # renames the staged entries and never writes into their files.
                src, dst = os.path.join(template, name), os.path.join(stage, name)
                if os.path.isdir(src):
                    shutil.copytree(src, dst, symlinks=True, copy_function=os.link)
                else:
                    os.link(src, dst)
            result = txn.commit()
        swaps.append(result.swap_seconds)

    def flip(i):
        for project, template in plan[i % len(plan)]:
            commit(project, template)

started = time.monotonic()
error = None
ready = False
try:
    while True:
        flip(flips)
        flips += 1
        if not ready:
            print("ready", flush=True)
            ready = True
        if os.path.exists(stop):
            break
except BaseException:
    error = traceback.format_exc()
ended = time.monotonic()
with open(out_path + ".tmp", "w") as f:
    json.dump({"flips": flips, "stamps": stamps, "swaps": swaps, "notes": notes[:20],
               "note_count": len(notes), "error": error, "started": started,
               "ended": ended}, f)
os.replace(out_path + ".tmp", out_path)
sys.exit(1 if error else 0)
'''


def stop_process(proc: subprocess.Popen[str]) -> None:
    """SIGKILL *proc*'s process group if it still runs, and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_phase(scenario: str, side: str, python: Path, site: Path, plan: Any, reader: str,
              reader_args: Any, readers: int, pool: int, work: Path) -> dict[str, Any]:
    """Readers (*pool* at a time, *readers* in all) while the switcher flips *plan*."""
    tag = f"{scenario}-{side}"
    base = work / "phases" / tag
    base.mkdir(parents=True)
    script = base / "switcher.py"
    script.write_text(SWITCHER)
    stop_file, out_file = base / "stop", base / "switcher.json"
    cwd = work / "cwd"
    env = c.clean_env(_HOOK_ENV)
    mode = "generations" if side == "generations" else "per-entry"
    c.log(f"{tag}: starting the switcher, then {readers} readers, {pool} at a time")
    load_before = c.load_average()
    with open(base / "switcher.err", "w") as err:
        proc = subprocess.Popen(
            [str(python), str(script), mode, str(site), str(stop_file), str(out_file),
             json.dumps(plan)],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
            start_new_session=True)
    outcomes: list[dict[str, Any]] = []
    halt = threading.Event()
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 300)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            stop_process(proc)
            raise c.BenchmarkError(c.scrub(
                f"{tag}: the switcher did not start switching:\n"
                f"{(base / 'switcher.err').read_text()[-3000:]}"
                f"{out_file.read_text()[-3000:] if out_file.exists() else ''}"))
        started = time.monotonic()

        def one(i: int) -> dict[str, Any] | None:
            if halt.is_set():
                return None
            return run_reader(python, reader, reader_args(i), cwd, env)

        with concurrent.futures.ThreadPoolExecutor(max_workers=pool) as ex:
            try:
                for k, r in enumerate(ex.map(one, range(readers)), 1):
                    if r is not None:
                        outcomes.append(r)
                    if k % 100 == 0:
                        c.log(f"{tag}: {k}/{readers} readers")
            finally:
                halt.set()
        reading = time.monotonic() - started
        stop_file.touch()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=120)  # else killed below, and the goal on its exit fails
    finally:
        halt.set()
        stop_process(proc)
    if not out_file.exists():
        raise c.BenchmarkError(c.scrub(f"{tag}: the switcher wrote no result:\n"
                                       f"{(base / 'switcher.err').read_text()[-3000:]}"))
    sw = json.loads(out_file.read_text())
    (base / "readers.json").write_text(json.dumps(outcomes))  # for --keep
    return summarize(scenario, side, outcomes, sw, proc.returncode, reading, pool,
                     load_before)


def summarize(scenario: str, side: str, outcomes: list[dict[str, Any]], sw: dict[str, Any],
              returncode: int, reading: float, pool: int, load_before: float) -> dict[str, Any]:
    windows = sorted(sw["stamps"])  # (start, end) of each change's renames, disjoint
    ends = [end for _, end in windows]
    spanning = 0
    for o in outcomes:
        if "t_first" in o:
            k = bisect.bisect_right(ends, o["t_first"])  # the first change ending after
            spanning += k < len(windows) and windows[k][0] < o["t_last"]
    counts = Counter(o["outcome"] for o in outcomes)
    kinds = Counter(o.get("exception", "?") for o in outcomes if o["outcome"] == "broken")
    samples: dict[str, str] = {}
    for o in outcomes:
        if o["outcome"] != "ok":
            key = o["outcome"] + ": " + o.get("exception", "?")
            samples.setdefault(key, c.scrub(str(o.get("detail", "")))[:300])
    stderr = [o["stderr"] for o in outcomes if o.get("stderr")]
    seconds = sw["ended"] - sw["started"]
    return {
        "scenario": scenario,
        "side": side,
        "readers": len(outcomes),
        "pool": pool,
        "ok": counts["ok"],
        "mixed": counts["mixed"],
        "broken": counts["broken"],
        "broken_by_type": dict(sorted(kinds.items())),
        "broken_after_loading_another_version": sum(1 for o in outcomes
                                                    if o.get("mixed_before")),
        "samples": samples,
        "readers_spanning_a_switch": spanning,
        "versions_seen": dict(sorted(Counter(o.get("version", "-") for o in outcomes).items())),
        "pinned_generations": dict(sorted(Counter(str(o.get("pinned"))
                                                  for o in outcomes).items())),
        "not_from_pinned": sum(1 for o in outcomes if o.get("from_pinned") is False),
        "readers_with_stderr": len(stderr),
        "stderr_sample": c.scrub(stderr[0]) if stderr else "",
        "reader_median_s": round(c.median([o["seconds"] for o in outcomes]), 3),
        "reading_s": round(reading, 1),
        "switches": sw["flips"],
        "changes_stamped": len(sw["stamps"]),
        "switcher_s": round(seconds, 1),
        "switches_per_s": round(sw["flips"] / seconds, 1) if seconds > 0 else 0.0,
        "median_swap_ms": round(c.median(sw["swaps"]) * 1e3, 3) if sw["swaps"] else None,
        "switcher_exit": returncode,
        "switcher_error": c.scrub(sw["error"])[-2000:] if sw["error"] else None,
        "switcher_warnings": sw["note_count"],
        "switcher_warning_samples": [c.scrub(n) for n in sw["notes"][:5]],
        "load_before": load_before,
        "load_after": c.load_average(),
    }


# --------------------------------------------------------------------------- set-up


def install(venv: c.Venv, wheels: list[Path]) -> float:
    """``install-atomic install --python ENV/bin/python --no-deps --no-index WHEEL...``."""
    t = time.monotonic()
    c.run([venv.bin / "install-atomic", "install", "-q", "--python", venv.python,
           "--no-deps", "--no-index", *wheels], env=c.clean_env(_HOOK_ENV))
    return time.monotonic() - t


def build_wheels(venv: c.Venv, sources: dict[tuple[str, str], Path],
                 out: Path) -> dict[tuple[str, str], Path]:
    """Wheels of every project in *sources* ((name, version) -> project directory), by
    ``pip wheel --no-deps --no-build-isolation`` with *venv*'s setuptools: one call per
    batch holding at most one version of each name (pip refuses two in one call)."""
    by_name: dict[str, list[Path]] = {}
    for (name, _), project in sources.items():
        by_name.setdefault(name, []).append(project)
    for k in range(max(len(v) for v in by_name.values())):
        batch = [projects[k] for projects in by_name.values() if k < len(projects)]
        venv.run("-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out,
                 *batch)
    wheels = {}
    for (name, version) in sources:
        found = sorted(out.glob(f"{name}-{version}-*.whl"))
        if len(found) != 1:
            raise c.BenchmarkError(f"expected one wheel of {name} {version}, got {found}")
        wheels[name, version] = found[0]
    return wheels


def current_generation(venv: c.Venv) -> int:
    target = os.readlink(venv.site_packages / LAYOUT_DIR / "current")
    head, tail = os.path.split(target)
    if head != "generations" or not tail.isdigit():
        raise c.BenchmarkError(f"current points to {target!r}")
    return int(tail)


def snapshot(venv: c.Venv, package: str, version: str, dest: Path) -> Path:
    """Copy what the install put in site-packages for *package* (its directory and
    ``.dist-info``) to *dest*: what the per-entry switcher stages for that version."""
    dest.mkdir(parents=True)
    for name in (package, f"{package}-{version}.dist-info"):
        src = venv.site_packages / name
        if not src.is_dir():
            raise c.BenchmarkError(f"{name} is not in the plain venv after its install")
        shutil.copytree(src, dest / name, symlinks=True)
    return dest


def layout_leftovers(venv: c.Venv) -> list[str]:
    """The journal and private entries (``.build-*``, ``.tmp-*``, ...) of the layout."""
    root = venv.site_packages / LAYOUT_DIR
    out = []
    for directory in (root, root / "generations", root / "store"):
        out += [os.path.relpath(directory / n, root) for n in os.listdir(directory)
                if n.startswith(".") or n == "journal.json"]
    return sorted(out)


def stray_processes(work: Path) -> list[str]:
    """Command lines of live processes (but this one) that name the work directory."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(work) in cmd:
            out.append(c.scrub(f"{pid}: {cmd.strip()}")[:300])
    return out


def sanity(venv: c.Venv, work: Path, code: str, args: list[str], want: str) -> None:
    r = run_reader(venv.python, code, args, work / "cwd", c.clean_env(_HOOK_ENV))
    if r["outcome"] != "ok" or r.get("version") != want or r.get("stderr"):
        raise c.BenchmarkError(c.scrub(f"a reader in {venv.root.name} without switches: {r}"))


# --------------------------------------------------------------------------- report


def markdown(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        kinds = ", ".join(f"{k} {v}" for k, v in r["broken_by_type"].items()) or "-"
        if r["broken_after_loading_another_version"]:
            kinds += (f" ({r['broken_after_loading_another_version']} had loaded modules of"
                      " another version first)")
        spanning = r["readers_spanning_a_switch"]
        rows.append([
            r["scenario"], r["side"], r["readers"],
            f"{r['ok']} ({c.pct(r['ok'], r['readers'])})",
            f"{r['mixed']} ({c.pct(r['mixed'], r['readers'])})",
            f"{r['broken']} ({c.pct(r['broken'], r['readers'])})", kinds,
            f"{spanning} ({c.pct(spanning, r['readers'])})",
            r["switches"], f"{r['switches_per_s']:.1f}",
            " ".join(f"{k}:{v}" for k, v in r["versions_seen"].items()),
        ])
    return c.md_table(
        ["scenario", "environment", "readers", "ok", "mixed", "broken", "broken by exception",
         "spanning a switch", "switches", "switches / s", "versions seen"],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--readers", type=int, default=600,
                   help="readers per (scenario, environment)")
    p.add_argument("--pool", type=int, default=6, help="readers running at a time")
    p.add_argument("--modules", type=int, default=300, help="submodules of churnpkg in all")
    p.add_argument("--versions", type=int, default=4, help="versions of churnpkg")
    p.add_argument("--pause-ms", type=float, default=1.0,
                   help="a reader's sleep before each lazy import")
    args = p.parse_args(argv)
    if args.quick:
        args.readers, args.pool = min(args.readers, 40), min(args.pool, 4)
    if args.versions < 2:
        p.error("--versions must be 2 or more")
    t_start = time.monotonic()
    versions = churn_versions(args.versions)
    pause = str(args.pause_ms / 1e3)
    results: list[dict[str, Any]] = []
    with c.workdir(args, NAME) as work:
        (work / "cwd").mkdir()
        c.log("making the plain venv (it also builds the wheels)")
        plain = c.make_venv(work / "plain")
        churn_src = {v: churn_project(work / "src", k, v, args.versions, args.modules)
                     for k, v in enumerate(versions)}
        pair_src = {(d, v): pair_project(work / "src", d, v)
                    for d in ("alpha", "beta") for v in PAIR_VERSIONS}
        sources = {**{("churnpkg", v): s for v, s in churn_src.items()}, **pair_src}
        c.log(f"making the generations venv; meanwhile building {len(sources)} wheels")
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
            gen_future = ex.submit(c.make_venv, work / "gen")
            wheels = build_wheels(plain, sources, work / "wheels")
            gen = gen_future.result()
        templates = work / "templates"

        def setup_gen() -> tuple[Any, dict[str, int], dict[str, int], list[float]]:
            init = c.run([gen.bin / "install-atomic", "init", "--generations", gen.root],
                         env=c.clean_env(_HOOK_ENV))
            churn_gens, pair_gens, seconds = {}, {}, []
            for v in versions:
                seconds.append(install(gen, [wheels["churnpkg", v]]))
                churn_gens[v] = current_generation(gen)
            for v in PAIR_VERSIONS:
                seconds.append(install(gen, [wheels["alpha", v], wheels["beta", v]]))
                pair_gens[v] = current_generation(gen)
            return init, churn_gens, pair_gens, seconds

        def setup_plain() -> tuple[dict[str, str], dict[str, list[list[str]]], list[float]]:
            churn_tpl, pair_tpl, seconds = {}, {}, []
            for v in versions:
                seconds.append(install(plain, [wheels["churnpkg", v]]))
                churn_tpl[v] = str(snapshot(plain, "churnpkg", v, templates / f"churnpkg-{v}"))
            for v in PAIR_VERSIONS:
                seconds.append(install(plain, [wheels["alpha", v], wheels["beta", v]]))
                pair_tpl[v] = [[d, str(snapshot(plain, d, v, templates / f"{d}-{v}"))]
                               for d in ("alpha", "beta")]
            return churn_tpl, pair_tpl, seconds

        c.log(f"install-atomic init --generations, then {len(versions)} churnpkg versions and"
              f" {len(PAIR_VERSIONS)} alpha+beta pairs installed into each venv (the two venvs"
              " at once)")
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
            gen_future = ex.submit(setup_gen)
            churn_tpl, pair_tpl, plain_seconds = setup_plain()
            init, churn_gens, pair_gens, gen_seconds = gen_future.result()
        install_s = {"generations": gen_seconds, "plain": plain_seconds}
        numbers = [*churn_gens.values(), *pair_gens.values()]
        if len(set(numbers)) != len(numbers):
            raise c.BenchmarkError(f"installs did not each make a generation: {numbers}")
        for venv in (gen, plain):
            sanity(venv, work, READ_CHURN, [pause], versions[-1])
            sanity(venv, work, READ_PAIR, [pause, "beta-first"], PAIR_VERSIONS[-1])
        listing = c.run([gen.bin / "install-atomic", "generations", gen.root],
                        env=c.clean_env(_HOOK_ENV)).stdout

        def pair_args(i: int) -> list[str]:
            return [pause, "beta-first" if i % 2 == 0 else "alpha-first"]

        scenarios = [
            ("churn", READ_CHURN, lambda i: [pause],
             {"generations": [churn_gens[v] for v in versions],
              "per-entry": [[["churnpkg", churn_tpl[v]]] for v in versions]}),
            ("alpha/beta", READ_PAIR, pair_args,
             {"generations": [pair_gens[v] for v in PAIR_VERSIONS],
              "per-entry": [pair_tpl[v] for v in PAIR_VERSIONS]}),
        ]
        for scenario, reader, reader_args, plans in scenarios:
            for side, venv in (("generations", gen), ("per-entry", plain)):
                r = run_phase(scenario.replace("/", "-"), side, venv.python,
                              venv.site_packages, plans[side], reader, reader_args,
                              args.readers, args.pool, work)
                r["scenario"] = scenario
                results.append(r)
                c.log(f"{scenario} / {side}: {r['readers']} readers, ok {r['ok']}, mixed"
                      f" {r['mixed']}, broken {r['broken']}, {r['switches']} switches"
                      f" ({r['switches_per_s']}/s)")
        c.log("checking both venvs and the processes after the runs")
        after = {
            "generations_layout_leftovers": layout_leftovers(gen),
            "generations_final_listing": c.run(
                [gen.bin / "install-atomic", "generations", gen.root],
                env=c.clean_env(_HOOK_ENV)).stdout.splitlines()[-3:],
            "plain_leftovers": c.find_leftovers(plain.site_packages, plain.bin),
            "stray_processes": stray_processes(work),
        }
        data = {
            "benchmark": NAME,
            "quick": args.quick,
            "config": {
                "readers_per_pair": args.readers,
                "pool": args.pool,
                "pause_ms": args.pause_ms,
                "churn_modules_in_all": args.modules,
                "churn_versions": versions,
                "churn_modules_per_version": {
                    v: len(churn_members(k, args.versions, args.modules))
                    for k, v in enumerate(versions)},
                "pair_versions": list(PAIR_VERSIONS),
            },
            "machine": c.machine_info(plain, work),
            "setup": {
                "init_output": c.scrub(init.stdout.strip()).splitlines()[-1:],
                "churn_generations": churn_gens,
                "pair_generations": pair_gens,
                "install_seconds_median": {k: round(c.median(v), 2)
                                           for k, v in install_s.items()},
                "generations_listing": [c.scrub(ln) for ln in listing.splitlines()],
            },
            "results": results,
            "after": after,
            "seconds": round(time.monotonic() - t_start, 1),
        }
        c.log("removing the work directory" if not args.keep else "done")
    c.save_results(NAME, data, args)
    goals: dict[str, bool] = {}
    for r in results:
        tag = f"{r['scenario']} / {r['side']}"
        if r["side"] == "generations":
            goals[f"{tag}: 0 mixed ({r['mixed']})"] = r["mixed"] == 0
            goals[f"{tag}: 0 broken ({r['broken']})"] = r["broken"] == 0
            goals[f"{tag}: every reader pinned a generation, imported from it, and wrote"
                  " nothing on stderr"] = (
                "None" not in r["pinned_generations"] and r["not_from_pinned"] == 0
                and r["readers_with_stderr"] == 0)
        goals[f"{tag}: the switcher switched ({r['switches']}) without an error"] = (
            r["switches"] > 0 and r["switcher_error"] is None and r["switcher_exit"] == 0)
        if not args.quick:
            goals[f"{tag}: >= 500 readers ({r['readers']})"] = r["readers"] >= 500
    goals["generations layout: no journal or private leftovers after the run"] = (
        not after["generations_layout_leftovers"])
    goals["no process of the benchmark outlived its phase"] = not after["stray_processes"]
    return c.report(markdown(results), goals)


if __name__ == "__main__":
    raise SystemExit(main())
