"""Start-up cost of deferred commits: ``python -c pass`` with and without the hook.

A deferred install (``install-atomic install --defer``, or the Python API in a
process that has the old version loaded) leaves two hook files in
site-packages (``install-atomic-pending.pth`` and ``.start``) so that the
next interpreter start commits it; once nothing is pending they go, and a
start costs what it cost before.  Two fresh venvs (``python3 -m venv`` plus
this repository, as every benchmark makes them), each with a generated
package ``hookpkg`` and one real wheel (``attrs``, downloaded once into the
benchmark cache; the generated package if the index is unreachable):

* **baseline** (venv A): nothing was ever deferred there; ``hookpkg`` 2.0
  installed directly.
* **state 2, hook gone** (venv B): ``hookpkg`` 1.0, then 2.0 deferred with
  ``install-atomic install --defer`` and committed by one ``python -c pass``;
  the hook files must be gone.
* **state 3, held**: in venv B a helper process imports ``hookpkg`` and
  defers the other version through ``install_atomic.install(...,
  defer=True)``, then waits on stdin: every start runs the hook, which finds
  the install held by a live process and leaves it pending.
* **state 4, the commit**: each round defers the other version of
  ``hookpkg`` (``install-atomic install --defer``, alternating 1.0 and 2.0),
  then times the one ``python -c pass`` that commits it.
* **state 5, a real import**: ``python -c "import attrs"`` in venv A and in
  venv B in state 2.

Every measured start is paired with a baseline start in venv A, in
alternating order (A then B, B then A), so that the machine's load weighs on
both alike; the numbers are medians of the wall time of ``subprocess.run``
from this process (fork, exec and the whole interpreter start and exit), the
ratio is median state / median baseline, and "paired difference" is the
median of the per-pair differences.

Goals (exit status 1 if one is missed): every start exits 0 with empty
stderr; after the deferred install is committed the hook files are gone and
nothing is pending or left behind (``install-atomic status``, no
``.install-atomic*`` entry); each commit round had its install pending before
its start and nothing pending after it; the held install stays pending while
its process lives and is committed at the first start after it exits; the
hook runs in state 3 and not in states 1 and 2.  No timing goal but a loose
sanity bound (state-2 and state-5 ratios below 1.5): the machine is shared.

Usage: ``python3 benchmarks/startup_hook.py`` (200 pairs per state, 30 commit
rounds; ``--quick``: 40 pairs in state 2, 20 in state 5, 15 in state 3, 3
commit rounds).
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import json
import subprocess
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as c

NAME = "startup_hook"
PACKAGE = "hookpkg"
VERSIONS = ("1.0", "2.0")
#: The real distribution imported in state 5 (pinned as in install_set.py).
REAL = ("attrs", "26.1.0", "attrs")
HOOK_FILES = ("install-atomic-pending.pth", "install-atomic-pending.start")
PENDING_GLOB = ".install-atomic-*.pending"
#: Interpreter starts before the timed ones of each comparison (pyc files, page cache).
WARMUP = 5
SANITY_RATIO = 1.5
#: The module the hook's .pth line imports: present in sys.modules after a start iff the
#: hook ran.  (While every pending install is held, it imports nothing more.)
HOOK_MODULE = "install_atomic.frontends.deferred.hook"

HOLDER = """\
import json, sys, warnings
import hookpkg
import install_atomic
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    r = install_atomic.install(sys.argv[1], no_index=True, no_deps=True, defer=True)
print(json.dumps({"deferred": r.deferred, "pending_id": r.pending_id,
                  "version": hookpkg.VERSION}), flush=True)
sys.stdin.readline()
"""


# --------------------------------------------------------------------------- set-up


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(directory: Path, version: str, modules: int = 10) -> Path:
    """A pure wheel of ``hookpkg`` *version*: a package whose ``__init__`` imports
    *modules* submodules."""
    files: dict[str, str] = {}
    init = [f"VERSION = {version!r}\n"]
    for n in range(modules):
        body = "".join(f"\n\ndef f{k}(x):\n    return x + {k}\n" for k in range(10))
        files[f"{PACKAGE}/m{n:02d}.py"] = f"VERSION = {version!r}\n{body}"
        init.append(f"from {PACKAGE} import m{n:02d}  # noqa: F401\n")
    files[f"{PACKAGE}/__init__.py"] = "".join(init)
    dist_info = f"{PACKAGE}-{version}.dist-info"
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {version}\n")
    files[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: install-atomic-benchmarks\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n")
    path = directory / f"{PACKAGE}-{version}-py3-none-any.whl"
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, content in files.items():
            data = content.encode()
            zf.writestr(arcname, data)
            rows.append(f"{arcname},sha256={_digest(data)},{len(data)}\n")
        rows.append(f"{dist_info}/RECORD,,\n")
        zf.writestr(f"{dist_info}/RECORD", "".join(rows))
    return path


def real_wheel() -> Path | None:
    """The ``attrs`` wheel from the benchmark cache (downloaded on first use), or None."""
    name, version, _module = REAL
    try:
        house = c.wheelhouse([f"{name}=={version}"])
    except c.BenchmarkError as exc:
        c.log(f"no {name} wheel ({str(exc).splitlines()[0]}); importing {PACKAGE} instead")
        return None
    c.register_scrub(house, "<wheelhouse>")
    found = sorted(house.glob(f"{name}-{version}-*.whl"))
    return found[0] if found else None


def ia(venv: c.Venv, env: dict[str, str], *args: c.StrPath) -> subprocess.CompletedProcess[str]:
    return c.run([venv.bin / "install-atomic", *args], env=env, cwd=venv.root)


def pending(venv: c.Venv) -> list[str]:
    return sorted(p.name for p in venv.site_packages.glob(PENDING_GLOB))


def hook_files(venv: c.Venv) -> list[str]:
    return [n for n in HOOK_FILES if (venv.site_packages / n).exists()]


def installed_version(venv: c.Venv) -> str | None:
    found = [v for v in VERSIONS if (venv.site_packages / f"{PACKAGE}-{v}.dist-info").is_dir()]
    return found[0] if len(found) == 1 else None


# --------------------------------------------------------------------------- starts


@dataclass
class Starts:
    """Every interpreter start of the run: failures (exit status or stderr) are kept."""

    env: dict[str, str]
    cwd: Path
    count: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def start(self, venv: c.Venv, args: Sequence[str], label: str) -> float:
        """Start ``python ARGS`` of *venv*; its wall time in milliseconds."""
        t = time.perf_counter()
        proc = subprocess.run([str(venv.python), *args], cwd=self.cwd, env=self.env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              check=False, timeout=120)
        ms = (time.perf_counter() - t) * 1e3
        self.count += 1
        if proc.returncode != 0 or proc.stderr:
            self.failures.append({"state": label, "args": list(args),
                                  "exit": proc.returncode,
                                  "stderr": c.scrub(proc.stderr[-2000:])})
        return ms

    def ok(self) -> bool:
        return not self.failures


def summary(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {"median_ms": round(c.median(values), 3), "p10_ms": round(q(0.1), 3),
            "p90_ms": round(q(0.9), 3), "n": len(values)}


def comparison(base: Sequence[float], other: Sequence[float], load: tuple[float, float],
               seconds: float) -> dict[str, Any]:
    b, o = c.median(base), c.median(other)
    return {
        "baseline": summary(base),
        "state": summary(other),
        "ratio": round(o / b, 3) if b else float("nan"),
        "paired_difference_ms": round(c.median([x - y for x, y in zip(other, base)]), 3),
        "load_before": load[0],
        "load_after": load[1],
        "seconds": round(seconds, 1),
    }


def interleaved(starts: Starts, base: c.Venv, other: c.Venv, args: Sequence[str],
                pairs: int, label: str) -> dict[str, Any]:
    """*pairs* starts of ``python ARGS`` in *base* and in *other*, alternating which
    goes first; after :data:`WARMUP` untimed starts of each."""
    load0, t0 = c.load_average(), time.monotonic()
    for _ in range(WARMUP):
        starts.start(base, args, "baseline")
        starts.start(other, args, label)
    b: list[float] = []
    o: list[float] = []
    for i in range(pairs):
        if i % 2 == 0:
            b.append(starts.start(base, args, "baseline"))
            o.append(starts.start(other, args, label))
        else:
            o.append(starts.start(other, args, label))
            b.append(starts.start(base, args, "baseline"))
    out = comparison(b, o, (load0, c.load_average()), time.monotonic() - t0)
    c.log(f"{label}: {out['state']['median_ms']:.1f} ms vs baseline"
          f" {out['baseline']['median_ms']:.1f} ms (x{out['ratio']:.3f}, load {load0})")
    return out


def hook_ran(starts: Starts, venv: c.Venv, label: str) -> bool | None:
    """Whether a start of *venv* ran the hook (imported its commit module)."""
    proc = subprocess.run([str(venv.python), "-c",
                           f"import sys; print({HOOK_MODULE!r} in sys.modules)"],
                          cwd=starts.cwd, env=starts.env, capture_output=True, text=True,
                          check=False, timeout=120)
    starts.count += 1
    if proc.returncode != 0 or proc.stderr:
        starts.failures.append({"state": label + " (hook check)", "exit": proc.returncode,
                                "stderr": c.scrub(proc.stderr[-2000:])})
        return None
    return proc.stdout.strip() == "True"


def clean(venv: c.Venv, env: dict[str, str]) -> dict[str, Any]:
    """What is left of deferred installs in *venv*'s site-packages."""
    status = ia(venv, env, "status", venv.site_packages).stdout
    return {
        "hook_files": hook_files(venv),
        "pending": pending(venv),
        "leftovers": c.find_leftovers(venv.site_packages),
        "status_clean": "no interrupted installs" in status,
        "status": c.scrub(status.strip()),
    }


def is_clean(state: dict[str, Any]) -> bool:
    return (not state["hook_files"] and not state["pending"] and not state["leftovers"]
            and state["status_clean"])


# --------------------------------------------------------------------------- phases


def held_phase(starts: Starts, a: c.Venv, b: c.Venv, env: dict[str, str], wheel: Path,
               pairs: int, work: Path) -> dict[str, Any]:
    """State 3: a live process holds a pending install of *wheel* in *b*."""
    script = work / "holder.py"
    script.write_text(HOLDER, encoding="utf-8")
    holder = subprocess.Popen([str(b.python), str(script), str(wheel)], cwd=work, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert holder.stdin is not None and holder.stdout is not None
    out: dict[str, Any] = {}
    try:
        line = holder.stdout.readline()
        if not line:
            _o, err = holder.communicate(timeout=60)
            raise c.BenchmarkError(c.scrub(f"the holding process failed:\n{err}"))
        out["holder"] = json.loads(line)
        out["pending_before"] = len(pending(b))
        out["hook_files_before"] = hook_files(b)
        out["hook_ran"] = hook_ran(starts, b, "held")
        out.update(interleaved(starts, a, b, ["-c", "pass"], pairs, "state 3 (held)"))
        out["pending_while_held"] = len(pending(b))
        out["hook_files_while_held"] = hook_files(b)
    finally:
        if holder.poll() is None:
            _o, err = holder.communicate("\n", timeout=120)
        else:
            _o, err = holder.communicate(timeout=60)
        out["holder_exit"] = holder.returncode
        out["holder_stderr"] = c.scrub(err[-2000:])
    # The first start after the holder exited commits it.
    out["release_start_ms"] = round(starts.start(b, ["-c", "pass"], "release"), 3)
    out["version_after_release"] = installed_version(b)
    out["after_release"] = clean(b, env)
    out["ok"] = bool(
        out["holder"].get("deferred") and out["pending_before"] == 1
        and out["hook_files_before"] == list(HOOK_FILES) and out["hook_ran"] is True
        and out["pending_while_held"] == 1 and out["hook_files_while_held"] == list(HOOK_FILES)
        and out["holder_exit"] == 0 and not out["holder_stderr"]
        and out["version_after_release"] == wheel.name.split("-")[1]
        and is_clean(out["after_release"]))
    return out


def commit_phase(starts: Starts, a: c.Venv, b: c.Venv, env: dict[str, str],
                 wheels: dict[str, Path], rounds: int) -> dict[str, Any]:
    """State 4: defer the other version, then time the start that commits it."""
    load0, t0 = c.load_average(), time.monotonic()
    base: list[float] = []
    commit: list[float] = []
    defer_s: list[float] = []
    bad: list[dict[str, Any]] = []
    for r in range(rounds):
        current = installed_version(b)
        target = VERSIONS[1] if current == VERSIONS[0] else VERSIONS[0]
        t = time.perf_counter()
        ia(b, env, "install", "--no-index", "--no-deps", "--defer", "-q", wheels[target])
        defer_s.append(time.perf_counter() - t)
        before = {"pending": len(pending(b)), "hook_files": hook_files(b),
                  "version": installed_version(b)}
        if r % 2 == 0:
            base.append(starts.start(a, ["-c", "pass"], "baseline"))
            commit.append(starts.start(b, ["-c", "pass"], "state 4 (commit)"))
        else:
            commit.append(starts.start(b, ["-c", "pass"], "state 4 (commit)"))
            base.append(starts.start(a, ["-c", "pass"], "baseline"))
        after = {"pending": pending(b), "hook_files": hook_files(b),
                 "version": installed_version(b),
                 "leftovers": c.find_leftovers(b.site_packages)}
        if (before != {"pending": 1, "hook_files": list(HOOK_FILES), "version": current}
                or after["pending"] or after["hook_files"] or after["leftovers"]
                or after["version"] != target):
            bad.append({"round": r, "target": target, "before": before, "after": after})
    out = comparison(base, commit, (load0, c.load_average()), time.monotonic() - t0)
    out["rounds"] = rounds
    out["defer_command_s"] = round(c.median(defer_s), 3)
    out["bad_rounds"] = bad
    out["final"] = clean(b, env)
    out["ok"] = not bad and is_clean(out["final"])
    c.log(f"state 4 (commit): {out['state']['median_ms']:.1f} ms vs baseline"
          f" {out['baseline']['median_ms']:.1f} ms (x{out['ratio']:.3f}), {len(bad)} bad rounds")
    return out


# --------------------------------------------------------------------------- report


def markdown(results: dict[str, Any], real_label: str) -> str:
    rows = []
    labels = {
        "hook_gone": "2. deferred, then committed (hook gone): `-c pass`",
        "held": "3. pending, held by a live process (hook runs, leaves it): `-c pass`",
        "commit": "4. the start that commits (one per round)",
        "import_hook_gone": f"5. `-c \"import {real_label}\"` after the hook came and went",
    }
    for key, label in labels.items():
        r = results.get(key)
        if not r:
            continue
        rows.append([label, r["state"]["n"], f"{r['baseline']['median_ms']:.2f}",
                     f"{r['state']['median_ms']:.2f}",
                     f"{r['state']['p10_ms']:.1f} to {r['state']['p90_ms']:.1f}",
                     f"{r['ratio']:.3f}", f"{r['paired_difference_ms']:+.2f}",
                     f"{r['load_before']} / {r['load_after']}"])
    return c.md_table(
        ["state", "pairs", "baseline median, ms (1. nothing pending)", "state median, ms",
         "state p10 to p90, ms", "ratio (median / baseline median)",
         "median paired difference, ms", "load before / after"],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=200, help="baseline/state pairs, state 2")
    p.add_argument("--import-pairs", type=int, default=200, help="pairs, state 5")
    p.add_argument("--held-pairs", type=int, default=200, help="pairs, state 3")
    p.add_argument("--rounds", type=int, default=30, help="commit rounds (state 4)")
    args = p.parse_args(argv)
    if args.quick:
        args.pairs, args.import_pairs, args.held_pairs, args.rounds = 40, 20, 15, 3
    results: dict[str, Any] = {}
    with c.workdir(args, NAME) as work:
        env = c.clean_env({"INSTALL_ATOMIC_COMMIT_AT_START": None})
        wheels = {v: make_wheel(work / "wheels", v) for v in VERSIONS}
        real = real_wheel()
        real_module = REAL[2] if real is not None else PACKAGE
        c.log("making venv A (baseline) and venv B")
        c.repo_wheel()  # built (or found) once, before the two venvs are made at once
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            a, b = pool.map(c.make_venv, [work / "venv-a", work / "venv-b"])
        extra = [real] if real is not None else []
        ia(a, env, "install", "--no-index", "--no-deps", "-q", wheels[VERSIONS[1]], *extra)
        ia(b, env, "install", "--no-index", "--no-deps", "-q", wheels[VERSIONS[0]], *extra)
        starts = Starts(env=env, cwd=work)

        c.log("state 2: defer hookpkg 2.0 in venv B, commit it with one start")
        ia(b, env, "install", "--no-index", "--no-deps", "--defer", "-q", wheels[VERSIONS[1]])
        deferred = {"pending": len(pending(b)), "hook_files": hook_files(b)}
        first = starts.start(b, ["-c", "pass"], "state 2 (committing start)")
        gone = clean(b, env)
        gone_ok = (deferred == {"pending": 1, "hook_files": list(HOOK_FILES)}
                   and installed_version(b) == VERSIONS[1] and is_clean(gone))
        results["setup"] = {"deferred": deferred, "committing_start_ms": round(first, 3),
                            "after_commit": gone, "ok": gone_ok,
                            "real_package": real.name if real is not None else None}
        ran = {"baseline": hook_ran(starts, a, "baseline"),
               "hook_gone": hook_ran(starts, b, "state 2")}
        results["hook_gone"] = interleaved(starts, a, b, ["-c", "pass"], args.pairs,
                                           "state 2 (hook gone)")
        import_args = ["-c", f"import {real_module}"]
        results["import_hook_gone"] = interleaved(starts, a, b, import_args, args.import_pairs,
                                                  f"state 5 (import {real_module}, hook gone)")
        results["hook_gone"]["hook_files_after"] = hook_files(b)

        c.log("state 3: a live process holds a pending install")
        held_version = VERSIONS[0] if installed_version(b) == VERSIONS[1] else VERSIONS[1]
        results["held"] = held_phase(starts, a, b, env, wheels[held_version],
                                     args.held_pairs, work)

        c.log(f"state 4: {args.rounds} rounds of defer + the start that commits")
        results["commit"] = commit_phase(starts, a, b, env, wheels, args.rounds)
        results["baseline_clean"] = clean(a, env)

        data = {"benchmark": NAME, "quick": args.quick,
                "pairs": {"hook_gone": args.pairs, "import_hook_gone": args.import_pairs,
                          "held": args.held_pairs, "commit_rounds": args.rounds},
                "warmup": WARMUP,
                "timing": "wall time of subprocess.run from the benchmark process (fork, exec,"
                          " interpreter start and exit), in ms; pairs alternate which start"
                          " goes first",
                "machine": c.machine_info(a, work), "starts": starts.count,
                "failed_starts": starts.failures, "hook_ran": ran, "results": results}
    c.save_results(NAME, data, args)
    hg, held, commit = results["hook_gone"], results["held"], results["commit"]
    goals = {
        f"all {starts.count} interpreter starts exited 0 with empty stderr": starts.ok(),
        "deferred then committed: hook files gone, nothing pending or left behind":
            gone_ok and not hg["hook_files_after"],
        "the hook runs while an install is pending and not once it is gone":
            ran == {"baseline": False, "hook_gone": False} and held["hook_ran"] is True,
        "held install stays pending while its process lives, committed at the next start":
            held["ok"],
        f"each of {args.rounds} commit rounds: pending before its start, nothing pending or"
        " left after it (and 'install-atomic status' clean at the end)": commit["ok"],
        f"sanity: state-2 ratio below {SANITY_RATIO} (measured {hg['ratio']:.3f})":
            hg["ratio"] < SANITY_RATIO,
        f"sanity: state-5 ratio below {SANITY_RATIO}"
        f" (measured {results['import_hook_gone']['ratio']:.3f})":
            results["import_hook_gone"]["ratio"] < SANITY_RATIO,
    }
    for failure in starts.failures[:5]:
        c.log(f"failed start: {failure}")
    return c.report(markdown(results, real_module), goals)


if __name__ == "__main__":
    raise SystemExit(main())
