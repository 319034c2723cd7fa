"""Crash recovery of a merge: SIGKILL ``install-atomic merge`` at random instants, recover, check.

A prefix holds version 1 of a generated package ``mk`` (10,000 files; ``--quick``:
1,500), merged from a DESTDIR tree with a manifest: headers in ``include/mk``, a
shared library with its soname links in ``lib``, programs in ``bin``, data in
``share/mk/dNN`` (100 files a directory) and a Python distribution in
``lib/pythonX.Y/site-packages`` (package ``mkpkg`` and ``mkpkg-1.0.dist-info``,
as ``pip install --root`` leaves them: about one file in sixteen).  Another
package, ``other``, merged before it, shares ``include``, ``lib``, ``share/mk``
and ``site-packages`` (a module and its own ``dist-info``).

Version 2 changes every file it keeps, drops a fifth of the data files and a whole
data directory, a header, a Python module and the old soname, and adds files, a
directory, a header, a module and a new soname.  Each run::

    python -m install_atomic merge --strip /usr/local --manifest .../mk-2.0.json \\
        --replace .../mk-1.0.json [--copy] DESTDIR PREFIX

runs in a real process over a fresh copy of the version 1 prefix (alternately with
the staged tree on the prefix's filesystem, moved, and with ``--copy``), is killed
with ``SIGKILL``, then::

    python -m install_atomic recover PREFIX

runs and the prefix is checked.  The check follows the guarantees
(``docs/explanation/guarantees.md``, section 3): recovery rolls an interrupted merge
back unless every rename was made, and then forward, so "the result is never a
mix": the whole prefix, compared byte for byte (contents, modes, link targets,
directories) but for the manifests, compared by what they say (which manifests,
and each one's name, version, prefix and files), must equal either the version 1
prefix or the prefix an uninterrupted merge leaves.  Per-entry atomicity (section
1) is what a reader sees *before* recovery; after it, a mix of old and new entries
is a failure, and the run records which top-level entries are old, new or neither.
Also checked: the manifests agree with the tree (every file of the prefix is listed by exactly one
manifest, every listed file exists), nothing named ``.install-atomic*`` is left
anywhere in the prefix, ``recover`` exits 0 and leaves nothing alone, and with
``--copy`` the staged tree is untouched.

Two series:

* **random**: the delay is uniform in [0, D), D the median duration of an
  uninterrupted merge (measured first, with the journal's lifetime);
* **commit**: kills aimed at the commit: the benchmark polls the prefix for the
  merge's journal (``PREFIX/.install-atomic-*.journal``); when it appears, it kills
  at once (one run in three: the renames follow the journal within milliseconds) or
  after a delay uniform over the journal's measured lifetime (+10 %).

Whether a kill landed during the commit is read from the prefix just after the
kill: a journal was there.  Runs that finished before the kill are repeated.  The
runs use a copy of ``src/`` taken when the benchmark starts, so that edits made to
the sources meanwhile change no run.

Usage: ``python3 benchmarks/merge_kill.py --kills 20 --commit-kills 12``
(``--quick``: 1,500 files, 2 random and 2 commit kills).  Goal: every run
consistent, and (full mode) at least 30 kills, some of them during the commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _common as c

NAME = "merge_kill"
STRIP = "/usr/local"
PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
SITE = f"lib/{PY}/site-packages"
PKGS = "var/lib/pkgs"
PER_DIR = 100
#: How long ``recover`` may take.
RECOVER_TIMEOUT = 600.0

Digest = dict[str, tuple[str, int, str]]
#: What the manifests say: file name -> (name, version, prefix, files).
Manifests = dict[str, tuple[str, str, str, tuple[str, ...]]]
#: The install-atomic sources the runs use: a snapshot, taken when the benchmark starts,
#: so that the sources changing meanwhile change no run (as kill.py's wheel).
SRC: list[Path] = []


# --------------------------------------------------------------------------- the trees


def _record(site_files: dict[str, bytes], dist_info: str) -> bytes:
    """A wheel ``RECORD`` for *site_files* (paths relative to site-packages)."""
    import base64

    lines = []
    for rel, data in sorted(site_files.items()):
        h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{rel},sha256={h},{len(data)}")
    lines.append(f"{dist_info}/RECORD,,")
    return ("\n".join(lines) + "\n").encode()


def _dist(name: str, version: str, files: dict[str, bytes], top: str) -> dict[str, bytes]:
    """*files* (relative to site-packages) and the ``dist-info`` pip would write."""
    info = f"{name}-{version}.dist-info"
    out = dict(files)
    out[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                               ).encode()
    out[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag:"\
        b" py3-none-any\n"
    out[f"{info}/INSTALLER"] = b"pip\n"
    out[f"{info}/top_level.txt"] = f"{top}\n".encode()
    out[f"{info}/RECORD"] = _record(out, info)
    return out


def mk_tree(files: int, version: int) -> dict[str, bytes | str]:
    """The files of ``mk`` *version* (1 or 2), relative to the prefix; a ``str`` value
    ``-> target`` is a symbolic link.  Version 1 has *files* entries."""
    out: dict[str, bytes | str] = {}
    modules = max(8, files // 16)
    headers = 20
    data = files - modules - 5 - headers - 5  # -5: dist-info; -5: lib and bin
    tag = f"v{version}"
    # data: share/mk/dNN/fI; version 2 drops directory d00 and every fifth file, adds new-dNN
    for i in range(data):
        if version == 2 and (i < PER_DIR or i % 5 == 0):
            continue
        out[f"share/mk/d{i // PER_DIR:02d}/f{i}.dat"] = f"{tag} data {i}\n"
    if version == 2:
        for i in range(data // 20):
            out[f"share/mk/new-d{i // PER_DIR:02d}/g{i}.dat"] = f"{tag} added {i}\n"
    for i in range(headers):
        if version == 2 and i == 0:
            continue
        out[f"include/mk/h{i}.h"] = f"/* mk {tag} header {i} */\n"
    if version == 2:
        out["include/mk/h-new.h"] = "/* only in 2 */\n"
    soname = f"libmk.so.{version}"
    out[f"lib/{soname}.0.0"] = b"\x7fELF" + f" mk {tag}\n".encode() * 50
    out[f"lib/{soname}"] = f"-> {soname}.0.0"
    out["lib/libmk.so"] = f"-> {soname}"
    out["bin/mk-tool"] = f"#!/bin/sh\necho mk {version}\n"
    out["bin/mk-config"] = f"#!/bin/sh\necho {version}\n"
    py: dict[str, bytes] = {"mkpkg/__init__.py": f"VERSION = {version}\n".encode()}
    for i in range(modules - 1):
        if version == 2 and i == 0:
            continue
        py[f"mkpkg/m{i}.py"] = f"VERSION = {version}\nX = {i}\n".encode()
    if version == 2:
        py["mkpkg/m_new.py"] = b"VERSION = 2\n"
    for rel, content in _dist("mkpkg", f"{version}.0", py, "mkpkg").items():
        out[f"{SITE}/{rel}"] = content
    return out


OTHER: dict[str, bytes | str] = {
    "include/other.h": "/* other 3 */\n",
    "lib/libother.so.3": b"\x7fELF other 3\n",
    "lib/libother.so": "-> libother.so.3",
    "share/mk/OTHER-PLUGIN": "a plugin of mk, packaged apart\n",
    **{f"{SITE}/{rel}": content for rel, content in _dist(
        "other", "3.0", {"other_mod.py": b"OTHER = 3\n"}, "other_mod").items()},
}


def write_tree(root: Path, entries: dict[str, bytes | str]) -> Path:
    for rel, content in entries.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str) and content.startswith("-> "):
            os.symlink(content[3:], path)
        elif isinstance(content, str):
            path.write_text(content)
            if rel.startswith("bin/"):
                path.chmod(0o755)
        else:
            path.write_bytes(content)
    return root


def digest(root: Path) -> Digest:
    """Every entry below *root*: (type, mode, sha256 or link target), by relative path."""
    out: Digest = {}
    top = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), "")
            else:
                with open(path, "rb") as f:
                    out[rel] = ("file", stat.S_IMODE(st.st_mode),
                                hashlib.sha256(f.read()).hexdigest())
    return out


def leftovers(root: Path) -> list[str]:
    """Entries named ``.install-atomic*`` anywhere below *root* (relative)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        found += [os.path.relpath(os.path.join(dirpath, n), root) for n in dirnames + filenames
                  if n.startswith(".install-atomic")]
    return sorted(found)


def journals(prefix: Path) -> list[str]:
    try:
        return [n for n in os.listdir(prefix)
                if n.startswith(".install-atomic") and n.endswith(".journal")]
    except OSError:
        return []


# --------------------------------------------------------------------------- processes


def _env() -> dict[str, str]:
    env = c.clean_env()
    env["PYTHONPATH"] = str(SRC[0] if SRC else c.REPO_ROOT / "src")
    return env


def snapshot_sources(work: Path) -> None:
    """Copy this repository's ``src`` into *work*; every run uses that copy."""
    dest = work / "src"
    shutil.copytree(c.REPO_ROOT / "src" / "install_atomic", dest / "install_atomic",
                    ignore=shutil.ignore_patterns("__pycache__"))
    SRC[:] = [dest]


def manifests(prefix: Path) -> Manifests:
    """The manifests of *prefix*, by what they say (not byte for byte: their format may
    record more, such as the identity of each file)."""
    out: Manifests = {}
    pkgs = prefix / PKGS
    for name in sorted(os.listdir(pkgs)) if pkgs.is_dir() else []:
        try:
            data = json.loads((pkgs / name).read_text())
            out[name] = (str(data.get("name")), str(data.get("version")),
                         str(data.get("prefix")), tuple(data.get("files", [])))
        except (OSError, ValueError, AttributeError):
            out[name] = ("unreadable", "", "", ())
    return out


def state(prefix: Path) -> tuple[Digest, Manifests]:
    """Everything below *prefix* byte for byte but the manifests, and what they say."""
    d = {rel: e for rel, e in digest(prefix).items()
         if not rel.startswith(PKGS + os.sep)}
    return d, manifests(prefix)


def ia(*args: str | Path, timeout: float = RECOVER_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "install_atomic", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env=_env())


def copy_tree(src: Path, dst: Path) -> None:
    """``cp -a``: contents, modes, owners, times and links, fast."""
    if dst.exists():
        shutil.rmtree(dst)
    c.run(["cp", "-a", src, dst], env=c.clean_env())


class Layout:
    """The work directory: templates and the one prefix every run uses (its path is in
    the manifests, so it never moves)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.prefix = work / "prefix"
        self.v1 = work / "prefix-v1"       # the version 1 prefix, copied before each run
        self.v2 = work / "prefix-v2"       # what an uninterrupted merge leaves
        self.dest = work / "dest-v2"       # version 2's DESTDIR tree (template)
        self.run_dest = work / "dest-run"  # a copy of it, consumed by a moving merge

    @property
    def pkgs(self) -> Path:
        return self.prefix / PKGS

    def merge_cmd(self, copy: bool) -> list[str]:
        dest = self.dest if copy else self.run_dest
        return [sys.executable, "-m", "install_atomic", "merge", "-q", "--strip", STRIP,
                "--manifest", str(self.pkgs / "mk-2.0.json"), "--version", "2.0",
                "--replace", str(self.pkgs / "mk-1.0.json"), *(["--copy"] if copy else []),
                str(dest), str(self.prefix)]

    def reset(self, copy: bool) -> None:
        """The version 1 prefix at its place; the staged tree ready."""
        copy_tree(self.v1, self.prefix)
        if not copy:
            copy_tree(self.dest, self.run_dest)


def build(layout: Layout, files: int) -> tuple[tuple[Digest, Manifests], int]:
    """The version 1 prefix (merged as a user would: other, then mk 1.0) and version 2's
    DESTDIR; returns the version 1 digest and its number of files."""
    work = layout.work
    staged_prefix = STRIP.lstrip("/")
    write_tree(work / "dest-other" / staged_prefix, OTHER)
    v1 = mk_tree(files, 1)
    write_tree(work / "dest-v1" / staged_prefix, v1)
    write_tree(layout.dest / staged_prefix, mk_tree(files, 2))
    for name, dest in (("other-3.0", "dest-other"), ("mk-1.0", "dest-v1")):
        proc = ia("merge", "-q", "--strip", STRIP, "--manifest", layout.pkgs / f"{name}.json",
                  "--version", name.split("-")[1], work / dest, layout.prefix)
        if proc.returncode != 0:
            raise c.BenchmarkError(c.scrub(f"merging {name} failed:\n{proc.stderr}"))
    copy_tree(layout.prefix, layout.v1)
    shutil.rmtree(layout.prefix)
    return state(layout.v1), len(v1)


# --------------------------------------------------------------------------- one run


def calibrate(layout: Layout, runs: int) -> dict[str, float]:
    """Median seconds of an uninterrupted merge, and of its journal's lifetime; leaves
    the reference version 2 prefix."""
    totals, lives = [], []
    for i in range(runs):
        copy = i % 2 == 1
        layout.reset(copy)
        started = time.monotonic()
        proc = subprocess.Popen(layout.merge_cmd(copy), env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        first = last = 0.0
        while proc.poll() is None:
            if journals(layout.prefix):
                last = time.monotonic()
                first = first or last
            time.sleep(0.0002)
        _, err = proc.communicate()
        totals.append(time.monotonic() - started)
        if proc.returncode != 0:
            raise c.BenchmarkError(c.scrub(f"an uninterrupted merge failed:\n{err}"))
        if first:
            lives.append(last - first)
        if i == 0:
            copy_tree(layout.prefix, layout.v2)
        elif state(layout.prefix) != state(layout.v2):
            raise c.BenchmarkError("two uninterrupted merges left different prefixes")
    if not lives:
        raise c.BenchmarkError("never saw the merge's journal while calibrating")
    return {"total": c.median(totals), "journal": c.median(lives), "journal_max": max(lives)}


def _manifest_problems(prefix: Path) -> list[str]:
    """The manifests agree with the tree: each file of the prefix is listed by exactly
    one manifest (or is one), and every listed file exists."""
    problems = []
    owners: Counter[str] = Counter()
    pkgs = prefix / PKGS
    names = sorted(os.listdir(pkgs)) if pkgs.is_dir() else []
    for name in names:
        try:
            data = json.loads((pkgs / name).read_text())
        except (OSError, ValueError) as exc:
            problems.append(f"manifest {name} unreadable: {exc}")
            continue
        if data.get("prefix") != str(prefix):
            problems.append(f"manifest {name} names the prefix {data.get('prefix')}")
        for rel in data.get("files", []):
            owners[rel] += 1
            if not os.path.lexists(prefix / rel):
                problems.append(f"{rel}, listed by {name}, is missing")
    tree = {rel for rel, entry in digest(prefix).items() if entry[0] != "dir"}
    tree -= {f"{PKGS}/{n}" for n in names}
    unlisted = sorted(tree - set(owners))
    if unlisted:
        problems.append(f"{len(unlisted)} files no manifest lists, e.g. {unlisted[:3]}")
    twice = sorted(rel for rel, n in owners.items() if n > 1)
    if twice:
        problems.append(f"{len(twice)} files listed twice, e.g. {twice[:3]}")
    return problems


def _entries(d: Digest) -> dict[str, Digest]:
    """*d* grouped by entry: the first two components of each path (``share/mk``,
    ``lib/libmk.so``), three below ``lib/pythonX.Y``."""
    out: dict[str, Digest] = {}
    for rel, entry in d.items():
        parts = rel.split(os.sep)
        depth = 4 if rel.startswith(SITE + os.sep) else 2
        key = os.sep.join(parts[:depth])
        out.setdefault(key, {})[rel] = entry
    return out


def _mix(now: Digest, old: Digest, new: Digest) -> dict[str, list[str]]:
    """Which entries are old, new, both (identical in the two) or neither."""
    a, b, n = _entries(old), _entries(new), _entries(now)
    out: dict[str, list[str]] = {"old": [], "new": [], "neither": []}
    for key in sorted(set(a) | set(b) | set(n)):
        here = n.get(key, {})
        if here == a.get(key, {}) and here == b.get(key, {}):
            continue
        if here == a.get(key, {}):
            out["old"].append(key)
        elif here == b.get(key, {}):
            out["new"].append(key)
        else:
            out["neither"].append(key)
    return out


def one_kill(layout: Layout, mode: str, copy: bool, cal: dict[str, float],
             rng: random.Random, old: tuple[Digest, Manifests], new: tuple[Digest, Manifests],
             staged: Digest | None) -> dict[str, Any]:
    layout.reset(copy)
    out_path = layout.work / "merge.err"
    with open(out_path, "w") as err:
        started = time.monotonic()
        proc = subprocess.Popen(layout.merge_cmd(copy), env=_env(), stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
        if mode == "random":
            time.sleep(rng.uniform(0, cal["total"]))
        else:
            deadline = started + 10 * cal["total"] + 60
            while proc.poll() is None and not journals(layout.prefix):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.0002)
            seen = time.monotonic()
            # A third at once (the renames follow the journal within milliseconds), the
            # rest over the journal's lifetime (mostly the deletion of what was replaced).
            after = 0.0 if rng.random() < 1 / 3 else rng.uniform(0, 1.1 * cal["journal"])
            time.sleep(max(0.0, seen + after - time.monotonic()))
        delay = time.monotonic() - started
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        rc = proc.wait()
    killed = rc == -signal.SIGKILL
    journal_at_kill = bool(journals(layout.prefix))
    left_at_kill = len(leftovers(layout.prefix))
    t = time.monotonic()
    rec = ia("recover", layout.prefix)
    recover_seconds = time.monotonic() - t
    text = (rec.stdout + rec.stderr).strip()
    if rec.returncode != 0:
        outcome = "recover failed"
    elif "rolled back" in text:
        outcome = "rolled back"
    elif "rolled forward" in text:
        outcome = "rolled forward"
    elif "abandoned staging" in text:
        outcome = "abandoned staging removed"
    else:
        outcome = "nothing to recover"
    problems = []
    if rec.returncode != 0:
        problems.append(f"recover exited {rec.returncode}")
    if "left alone" in text or "not trusted" in text:
        problems.append("recover left something alone")
    now = state(layout.prefix)
    which = "v1" if now == old else "v2" if now == new else "neither"
    mix: dict[str, list[str]] = {}
    if which == "neither":
        mix = _mix(now[0], old[0], new[0])
        if now[1] not in (old[1], new[1]):
            mix["neither"].append(f"{PKGS} (manifests {sorted(now[1])})")
        problems.append(f"neither version 1 nor version 2: {len(mix['old'])} entries old,"
                        f" {len(mix['new'])} new, {len(mix['neither'])} neither")
    problems += _manifest_problems(layout.prefix)
    left = leftovers(layout.prefix)
    if left:
        problems.append(f"{len(left)} .install-atomic* entries left, e.g. {left[:3]}")
    if copy and staged is not None and digest(layout.dest) != staged:
        problems.append("--copy: the staged tree changed")
    if not killed and rc != 0:
        problems.append(f"the merge failed on its own (exit {rc}):"
                        f" {out_path.read_text()[-300:]}")
    return {
        "mode": mode,
        "staged": "copied (--copy)" if copy else "moved",
        "delay_s": round(delay, 4),
        "killed": killed,
        "exit": rc,
        "journal_at_kill": journal_at_kill,
        "private_entries_at_kill": left_at_kill,
        "recover": outcome,
        "recover_seconds": round(recover_seconds, 3),
        "recover_output": c.scrub(text)[-300:],
        "state_after": which,
        "consistent": not problems,
        "problems": [c.scrub(p) for p in problems],
        "mix": {k: v[:10] for k, v in mix.items()},
    }


# --------------------------------------------------------------------------- results


def summarize(entries: list[dict[str, Any]]) -> dict[str, Any]:
    killed = [e for e in entries if e["killed"]]
    return {
        "runs": len(entries),
        "killed": len(killed),
        "finished_before_kill": len(entries) - len(killed),
        "killed_during_commit": sum(e["journal_at_kill"] for e in killed),
        "commit_kills_rolled_back": sum(e["journal_at_kill"] and e["recover"] == "rolled back"
                                        for e in killed),
        "commit_kills_rolled_forward": sum(
            e["journal_at_kill"] and e["recover"] == "rolled forward" for e in killed),
        "killed_while_staging": sum(not e["journal_at_kill"] and e["private_entries_at_kill"] > 0
                                    for e in killed),
        "consistent": sum(e["consistent"] for e in entries),
        "states_after": dict(Counter(e["state_after"] for e in entries)),
        "outcomes": dict(Counter(e["recover"] for e in entries)),
        "staged": dict(Counter(e["staged"] for e in killed)),
        "median_recover_seconds": round(c.median([e["recover_seconds"] for e in entries]), 3),
        "inconsistent_examples": [e for e in entries if not e["consistent"]][:5],
    }


def markdown(summary: dict[str, dict[str, Any]]) -> str:
    rows = []
    for mode, s in summary.items():
        o, st = s["outcomes"], s["states_after"]
        rows.append([
            mode, s["runs"], s["killed"], s["killed_during_commit"], s["killed_while_staging"],
            f"**{s['consistent']}/{s['runs']}**", f"{st.get('v1', 0)} / {st.get('v2', 0)}",
            o.get("rolled back", 0), o.get("rolled forward", 0),
            o.get("abandoned staging removed", 0), o.get("nothing to recover", 0),
            o.get("recover failed", 0), s["median_recover_seconds"],
        ])
    return c.md_table(
        ["series", "runs", "killed (rest had finished)", "during the commit (journal present)",
         "while staging", "consistent after recover", "prefix after: version 1 / version 2",
         "rolled back", "rolled forward", "abandoned staging removed", "nothing to recover",
         "recover failed", "recover (s, median)"],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=10000, help="files of version 1")
    p.add_argument("--kills", type=int, default=20,
                   help="kills at a random instant (runs that finish first are repeated)")
    p.add_argument("--commit-kills", type=int, default=12,
                   help="kills aimed at the commit (runs that finish first are repeated)")
    p.add_argument("--seed", type=int, default=20261206)
    args = p.parse_args(argv)
    if args.quick:
        args.files = min(args.files, 1500)
        args.kills, args.commit_kills = min(args.kills, 2), min(args.commit_kills, 2)
    rng = random.Random(args.seed)
    entries: list[dict[str, Any]] = []
    t0 = time.monotonic()
    with c.workdir(args, NAME) as work:
        layout = Layout(work)
        snapshot_sources(work)
        old, files = build(layout, args.files)
        c.log(f"version 1: {files} files of mk in the prefix, {len(old[0])} entries in all")
        cal = calibrate(layout, 1 if args.quick else 4)
        new = state(layout.v2)
        staged = digest(layout.dest)
        c.log(f"a merge takes {cal['total']:.2f} s, its journal lives"
              f" {cal['journal'] * 1e3:.0f} ms (max {cal['journal_max'] * 1e3:.0f} ms)")
        series = (("random", args.kills), ("commit", args.commit_kills))
        for mode, wanted in series:
            killed = runs = 0
            while killed < wanted and runs < 3 * wanted:
                copy = len(entries) % 2 == 1
                entry = one_kill(layout, mode, copy, cal, rng, old, new, staged)
                entries.append(entry)
                runs += 1
                killed += entry["killed"]
                c.log(f"{mode} {runs}: {'killed' if entry['killed'] else 'finished'} after"
                      f" {entry['delay_s']:.2f} s ({entry['staged']}),"
                      f" journal {'present' if entry['journal_at_kill'] else 'absent'},"
                      f" {entry['recover']}, {entry['state_after']}"
                      + ("" if entry["consistent"] else f" NOT CONSISTENT: {entry['problems']}"))
        summary = {mode: summarize([e for e in entries if e["mode"] == mode])
                   for mode, _ in series if any(e["mode"] == mode for e in entries)}
        total = summarize(entries)
        seconds = time.monotonic() - t0
        data = {
            "benchmark": NAME, "quick": args.quick, "seed": args.seed, "files": files,
            "prefix_entries": len(old[0]), "signal": "SIGKILL to the merge's pid",
            "calibration_seconds": {k: round(v, 4) for k, v in cal.items()},
            "seconds": round(seconds, 1), "load_average": c.load_average(),
            "machine": c.machine_info(where=work), "summary": summary, "total": total,
            "runs": entries,
        }
    c.save_results(NAME, data, args)
    print(f"{files} files; {total['killed']} kills, {total['killed_during_commit']} during the"
          f" commit, {total['consistent']}/{total['runs']} runs consistent, {seconds:.0f} s\n")
    goals = {
        f"every run consistent after recover ({total['consistent']}/{total['runs']})":
            total["consistent"] == total["runs"],
    }
    for mode, _ in series:
        s = summary.get(mode, {"killed": 0})
        goals[f"{mode}: kills that landed while the merge ran: {s['killed']} (> 0)"] = (
            s["killed"] > 0)
    if not args.quick:
        want = args.kills + args.commit_kills
        goals[f">= {want} kills ({total['killed']})"] = total["killed"] >= want
        goals[f"some kills landed during the commit ({total['killed_during_commit']})"] = (
            total["killed_during_commit"] > 0)
    return c.report(markdown(summary), goals)


if __name__ == "__main__":
    raise SystemExit(main())
