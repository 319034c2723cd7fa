"""Shared helpers of the benchmarks: virtual environments, generated projects, results.

Every benchmark is one script, runnable as ``python3 benchmarks/<name>.py``
(``--quick`` for the few-second CI version).  They all:

* make fresh virtual environments with :func:`make_venv`: ``python3 -m venv``,
  then pip, setuptools (newest), wheel, filelock, uv and this repository
  (built once into a wheel, cached by a hash of its sources);
* generate the projects they install into a private work directory
  (deleted afterwards unless ``--keep``);
* write their result as JSON (``benchmarks/results/<name>.json``; quick runs
  write ``benchmarks/results/raw/<name>-quick.json``, which git ignores) and
  print a Markdown table.

Nothing here writes an absolute path of the machine into a result: outputs
quoted in results go through :func:`scrub`.

Environment variables:

``INSTALL_ATOMIC_BENCH_CACHE``
    cache directory (default ``$XDG_CACHE_HOME/install-atomic-benchmarks``,
    else ``~/.cache/install-atomic-benchmarks``): a tools venv holding ``uv``,
    built wheels of this repository, downloaded sdists, a matplotlib venv.
``INSTALL_ATOMIC_BENCH_PIP_ONLY=1``
    make venvs with ``python3 -m venv`` + pip only (slower; no uv bootstrap).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
RAW_DIR = RESULTS_DIR / "raw"
STATIC_DIR = REPO_ROOT / "docs" / "_static"

#: What every benchmark venv gets besides this repository.
BASE_PACKAGES = ("pip", "setuptools", "wheel", "filelock", "uv")
#: Files and directories of the repository that make up the install-atomic distribution.
_DIST_INPUTS = ("src", "setup.cfg", "pyproject.toml", "LICENSE", "README.md", "MANIFEST.in")
#: Environment variables that would change how an installer or an import behaves.
_DROP_ENV = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "PYTHONNOUSERSITE",
    "VIRTUAL_ENV",
    "SETUPTOOLS_ENFORCE_DEPRECATION",
    "SETUPTOOLS_USE_DISTUTILS",
    "SOURCE_DATE_EPOCH",
    "PIP_REQUIRE_VIRTUALENV",
    "UV_PYTHON",
    "UV_SYSTEM_PYTHON",
)

StrPath = Union[str, "os.PathLike[str]"]
_T0 = time.monotonic()
_SCRUB: dict[str, str] = {}
#: The wheel (and git revision) of this repository used for the whole benchmark process,
#: so that every venv of one run gets the same install-atomic even if the tree changes.
_WHEEL: dict[str, Any] = {}


class BenchmarkError(RuntimeError):
    """A step of a benchmark's set-up failed (not a measured outcome)."""


def log(message: str) -> None:
    """Progress on stderr, with the seconds since the benchmark started."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- paths, text


def cache_dir() -> Path:
    explicit = os.environ.get("INSTALL_ATOMIC_BENCH_CACHE")
    if explicit:
        path = Path(explicit)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "install-atomic-benchmarks"
    path.mkdir(parents=True, exist_ok=True)
    register_scrub(path, "<cache>")
    return path


def register_scrub(path: StrPath, placeholder: str) -> None:
    """Replace *path* by *placeholder* in everything :func:`scrub` cleans."""
    _SCRUB[os.path.abspath(os.fspath(path))] = placeholder
    _SCRUB[os.path.realpath(os.fspath(path))] = placeholder


def scrub(text: str) -> str:
    """*text* without absolute paths of this machine (work dirs, cache, repository, home)."""
    items = dict(_SCRUB)
    items.setdefault(str(REPO_ROOT), "<repo>")
    items.setdefault(str(Path.home()), "~")
    for path, placeholder in sorted(items.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(path, placeholder)
    return re.sub(r"/tmp/[\w.-]+", "<tmp>", text)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "n/a"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


# --------------------------------------------------------------------------- processes


def clean_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """This process's environment without variables that change installs or imports."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return _overridden(env, extra)


def _overridden(env: dict[str, str], extra: Mapping[str, str | None] | None) -> dict[str, str]:
    """*env* with *extra* applied: a value sets the variable, None removes it."""
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(
    cmd: Sequence[StrPath],
    *,
    cwd: StrPath | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 900.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run *cmd*, capturing text output; raise :class:`BenchmarkError` on failure if *check*."""
    proc = subprocess.run(
        [os.fspath(c) for c in cmd],
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        shown = " ".join(os.fspath(c) for c in cmd)
        raise BenchmarkError(
            scrub(f"command failed (exit {proc.returncode}): {shown}\n{proc.stdout}\n{proc.stderr}")
        )
    return proc


# --------------------------------------------------------------------------- venvs


def _uv() -> Path | None:
    """A ``uv`` binary from a tools venv in the cache (installed with pip on first use)."""
    if os.environ.get("INSTALL_ATOMIC_BENCH_PIP_ONLY"):
        return None
    tools = cache_dir() / "tools"
    uv = tools / "bin" / "uv"
    if uv.exists():
        return uv
    log("bootstrapping uv into the benchmark cache (pip install uv)")
    try:
        if not (tools / "bin" / "python").exists():
            run([sys.executable, "-m", "venv", tools])
        run([tools / "bin" / "python", "-m", "pip", "install", "-q", "uv"])
    except BenchmarkError as exc:
        log(f"no uv ({exc}); falling back to pip")
        return None
    return uv if uv.exists() else None


def _dist_inputs() -> list[Path]:
    files: list[Path] = []
    for name in _DIST_INPUTS:
        path = REPO_ROOT / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            for sub in sorted(path.rglob("*")):
                parts = sub.relative_to(REPO_ROOT).parts
                if sub.is_file() and not any(
                    p == "__pycache__" or p.endswith(".egg-info") for p in parts
                ):
                    files.append(sub)
    return files


def repo_wheel() -> Path:
    """A wheel of this repository's working tree, cached by a hash of its sources.

    Built from a copy, so that the build never writes ``build/`` or an
    ``.egg-info`` into the repository.
    """
    if "path" in _WHEEL:
        return Path(_WHEEL["path"])
    _WHEEL["revision"] = git_revision()
    files = _dist_inputs()
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    out = cache_dir() / "wheels" / digest.hexdigest()[:16]
    found = sorted(out.glob("install_atomic-*.whl"))
    if found:
        _WHEEL["path"] = str(found[0])
        return found[0]
    log("building a wheel of this repository")
    with tempfile.TemporaryDirectory(prefix="ia-bench-src-") as tmp:
        for path in files:
            target = Path(tmp) / path.relative_to(REPO_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        staging = Path(tmp) / "dist"
        uv = _uv()
        if uv is not None:
            run([uv, "build", "--wheel", "-o", staging, tmp])
        else:
            run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", staging, tmp])
        wheels = sorted(staging.glob("install_atomic-*.whl"))
        if not wheels:
            raise BenchmarkError("building install-atomic produced no wheel")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(wheels[0], out / wheels[0].name)
    _WHEEL["path"] = str(out / wheels[0].name)
    return out / wheels[0].name


def git_revision() -> str:
    """``<short hash>`` of the repository, ``+dirty`` when the distribution's files changed."""
    try:
        rev = run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT).stdout.strip()
        dirty = run(["git", "status", "--porcelain", "--", *_DIST_INPUTS], cwd=REPO_ROOT).stdout
    except (BenchmarkError, OSError):
        return "unknown"
    return rev + ("+dirty" if dirty.strip() else "")


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def site_packages(self) -> Path:
        ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        return self.root / "lib" / ver / "site-packages"

    def run(self, *args: StrPath, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return run([self.python, *args], **kwargs)

    def versions(self) -> dict[str, str]:
        """Installed versions of the tools (distribution name -> version)."""
        names = [*BASE_PACKAGES, "install-atomic"]
        code = (
            "import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            f"for n in {names!r}:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))\n"
        )
        return dict(json.loads(self.run("-c", code).stdout))


def make_venv(path: Path, extra: Sequence[str] = ()) -> Venv:
    """A fresh venv at *path* with :data:`BASE_PACKAGES` and this repository installed.

    ``python3 -m venv --without-pip``, then one ``uv pip install`` (seconds, from
    uv's cache); without uv, ``python3 -m venv`` and ``pip install``.
    """
    venv = Venv(path)
    wheel = repo_wheel()
    uv = _uv()
    wanted = [*BASE_PACKAGES, *extra, str(wheel)]
    if uv is not None:
        run([sys.executable, "-m", "venv", "--without-pip", path])
        run([uv, "pip", "install", "-q", "--python", venv.python, *wanted])
    else:
        run([sys.executable, "-m", "venv", path])
        venv.run("-m", "pip", "install", "-q", "--upgrade", *wanted)
    return venv


def helper_python(name: str, packages: Sequence[str]) -> Path | None:
    """The interpreter of a cached helper venv holding *packages* (e.g. matplotlib), or None."""
    root = cache_dir() / name
    python = root / "bin" / "python"
    marker = root / ".ready"
    if marker.exists():
        return python
    try:
        uv = _uv()
        if uv is not None:
            run([sys.executable, "-m", "venv", "--without-pip", root])
            run([uv, "pip", "install", "-q", "--python", python, *packages])
        else:
            run([sys.executable, "-m", "venv", root])
            run([python, "-m", "pip", "install", "-q", *packages])
    except BenchmarkError as exc:
        log(f"could not install {', '.join(packages)}: {exc}")
        return None
    marker.write_text("ok\n")
    return python


# --------------------------------------------------------------------------- projects


def write_files(root: Path, files: Mapping[str, str | bytes]) -> None:
    """Write *files* (relative path -> content) below *root*."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def setup_py(name: str, version: str, **kwargs: str) -> str:
    """A ``setup.py`` calling ``setup(name=..., version=..., <key>=<python expression>)``."""
    args = "".join(f"    {key}={expr},\n" for key, expr in kwargs.items())
    return (
        "from setuptools import Extension, setup\n\n"
        f"setup(\n    name={name!r},\n    version={version!r},\n{args})\n"
    )


def set_mtime(root: Path, when: float) -> None:
    """Give every file below *root* the modification time *when*.

    The two versions of a generated project get different times (and sizes),
    so no timestamp-checked pyc of one can pass for the other.
    """
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (when, when))


def build_wheel(venv: Venv, project: Path, out: Path) -> Path:
    """``pip wheel --no-deps --no-build-isolation`` of *project* with *venv*'s setuptools."""
    before = set(out.glob("*.whl")) if out.exists() else set()
    venv.run("-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, project)
    new = sorted(set(out.glob("*.whl")) - before)
    if len(new) != 1:
        raise BenchmarkError(f"expected one new wheel from {project.name}, got {new}")
    return new[0]


def find_leftovers(*dirs: Path) -> list[str]:
    """Every entry named ``.install-atomic*`` anywhere below *dirs* (relative names)."""
    out = []
    for top in dirs:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                if name.startswith(".install-atomic"):
                    out.append(os.path.relpath(os.path.join(dirpath, name), top.parent))
    return sorted(out)


# --------------------------------------------------------------------------- runs, results


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="the few-second CI version")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--workdir", default=None,
                   help="parent of the work directory (default: the system temp dir)")
    p.add_argument("--output", default=None, help="where to write the JSON result")
    return p


@contextlib.contextmanager
def workdir(args: argparse.Namespace, name: str) -> Iterator[Path]:
    """A private work directory, removed afterwards unless ``--keep``."""
    path = Path(tempfile.mkdtemp(prefix=f"ia-bench-{name}-", dir=args.workdir)).resolve()
    register_scrub(path, "<work>")
    try:
        yield path
    finally:
        if args.keep:
            log(f"kept the work directory {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding *path*, from ``/proc/mounts`` (``stat -f`` says
    "ext2/ext3" for ext4)."""
    best, fstype = "", "unknown"
    target = os.path.realpath(path)
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            mount = fields[1].replace("\\040", " ")
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best):
                best, fstype = mount, fields[2]
    return fstype


def machine_info(venv: Venv | None = None, where: Path | None = None) -> dict[str, Any]:
    """Date, machine and versions, for the results."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "install_atomic_revision": _WHEEL.get("revision") or git_revision(),
    }
    if where is not None:
        info["filesystem"] = filesystem_type(where)
    if venv is not None:
        info["versions"] = venv.versions()
    return info


def save_results(name: str, data: Mapping[str, Any], args: argparse.Namespace) -> Path:
    """Write the JSON result; quick runs go to the git-ignored ``results/raw``."""
    if args.output:
        path = Path(args.output)
    elif args.quick:
        path = RAW_DIR / f"{name}-quick.json"
    else:
        path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = scrub(json.dumps(data, indent=1, sort_keys=False))
    path.write_text(text + "\n", encoding="utf-8")
    log(f"wrote {os.path.relpath(path, REPO_ROOT)}")
    return path


def report(markdown: str, goals: Mapping[str, bool]) -> int:
    """Print the Markdown and the goals; return the exit status (1 if a goal failed)."""
    print(markdown)
    print()
    for goal, ok in goals.items():
        print(f"- {'PASS' if ok else 'FAIL'}: {goal}")
    return 0 if all(goals.values()) else 1


# --------------------------------------------------------------------------- sets of wheels


def isolated_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """:func:`clean_env` without the machine's pip and uv configuration (``pip.conf``,
    ``PIP_*`` such as ``PIP_FIND_LINKS`` or a global constraint, ``UV_*``), so that
    ``--no-index --find-links WHEELHOUSE`` sees the wheelhouse and nothing else."""
    env = {k: v for k, v in clean_env().items()
           if not (k.startswith(("PIP_", "UV_")) and k != "PIP_DISABLE_PIP_VERSION_CHECK")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    return _overridden(env, extra)


def wheelhouse(specs: Sequence[str], python: StrPath | None = None) -> Path:
    """A directory of wheels for *specs* (``name==version``) and their dependencies,
    from ``pip download --only-binary :all:`` with *python* (default: this interpreter)
    on first use, then from the cache (keyed by the sorted specs)."""
    key = hashlib.sha256("\n".join(sorted(specs)).encode()).hexdigest()[:12]
    dest = cache_dir() / "wheelhouses" / key
    if (dest / ".complete").exists():
        return dest
    log(f"pip download --only-binary :all: {len(specs)} requirements into the cache")
    partial = dest.with_name(key + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    run([python or sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:",
         "-d", partial, *specs])
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    (dest / ".complete").write_text("\n".join(sorted(specs)) + "\n")
    return dest


_DISTS = (
    "import importlib.metadata as m, json, re\n"
    "out = {}\n"
    "for d in m.distributions():\n"
    "    name = re.sub(r'[-_.]+', '-', d.metadata['Name']).lower()\n"
    "    out.setdefault(name, []).append(d.version)\n"
    "print(json.dumps({k: sorted(v) for k, v in sorted(out.items())}))\n"
)


def installed_distributions(python: StrPath) -> dict[str, list[str]]:
    """Canonical name -> versions of every distribution ``importlib.metadata`` finds
    with *python* (several versions: several metadata directories)."""
    proc = run([python, "-I", "-B", "-c", _DISTS])
    return dict(json.loads(proc.stdout))


def load_average() -> float:
    """The 1-minute load average (nan where unknown)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")
