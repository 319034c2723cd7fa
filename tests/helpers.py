"""Helpers shared by the test-suite: fixture projects, tree digests, subprocesses, venvs.

Import them from tests as ``from helpers import make_project, tree_digest, run`` (the
``tests/`` directory is put on ``sys.path`` by ``tests/conftest.py``).

Fixture projects live in ``tests/packages/<scenario>/`` as *templates*:

* every text file may contain the placeholder ``@VERSION@``, replaced by the chosen version;
* ``versions/<version>/`` (optional) is an overlay copied over the base for that version,
  which is how versions differ in their *file sets* (modules added or dropped);
* :data:`SCENARIO_VERSIONS` lists the versions each scenario supports; the first one is the
  default.

Use :func:`make_project` to get a ready-to-build copy; never build inside ``tests/packages``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Union

__all__ = [
    "BROKEN_SCENARIOS",
    "BUILDABLE_SCENARIOS",
    "COMMON_TOOLS",
    "DEFAULT_TIMEOUT",
    "FLAVOURS",
    "PACKAGES_DIR",
    "REPO_ROOT",
    "SCENARIOS",
    "SCENARIO_VERSIONS",
    "TOOLS_PTH",
    "VERSION_PLACEHOLDER",
    "MakeVenv",
    "StrPath",
    "Toolset",
    "Venv",
    "bin_dir",
    "clean_env",
    "create_venv",
    "flock_holders",
    "make_project",
    "run",
    "site_packages",
    "tree_digest",
]

StrPath = Union[str, "os.PathLike[str]"]

TESTS_DIR = Path(__file__).resolve().parent
PACKAGES_DIR = TESTS_DIR / "packages"
REPO_ROOT = TESTS_DIR.parent

VERSION_PLACEHOLDER = "@VERSION@"

#: Supported versions per fixture scenario; the first one is the default of make_project().
SCENARIO_VERSIONS: dict[str, tuple[str, ...]] = {
    "pkg": ("1.0", "2.0", "3.0"),
    "module": ("1.0", "2.0"),
    "ext": ("1.0", "2.0"),
    "scripts": ("1.0", "2.0"),
    "broken_build": ("1.0",),
    "broken_import": ("9.0",),
    "ns_pep420_a": ("1.0", "2.0"),
    "ns_pep420_b": ("1.0", "2.0"),
    "ns_pkgutil_a": ("1.0", "2.0"),
    "ns_pkgutil_b": ("1.0", "2.0"),
    "ns_pkgres_a": ("1.0", "2.0"),
    "ns_pkgres_b": ("1.0", "2.0"),
}
SCENARIOS: tuple[str, ...] = tuple(SCENARIO_VERSIONS)
#: broken_build does not compile; broken_import builds and installs but raises at import.
BROKEN_SCENARIOS: tuple[str, ...] = ("broken_build", "broken_import")
BUILDABLE_SCENARIOS: tuple[str, ...] = tuple(s for s in SCENARIOS if s not in BROKEN_SCENARIOS)

#: Setuptools flavours the tests run against: flavour name -> extra requirements of its toolset
#: (besides :data:`COMMON_TOOLS` and install-atomic itself).  "66" mimics Debian 12
#: (python3-setuptools 66.1.1, python3-wheel 0.38.4; newer wheel releases emit a FutureWarning
#: on ``bdist_wheel`` with setuptools < 70.1).
FLAVOURS: dict[str, tuple[str, ...]] = {
    "newest": ("setuptools", "wheel"),
    "66": ("setuptools==66.1.1", "wheel==0.38.4"),
}
COMMON_TOOLS: tuple[str, ...] = ("pip", "filelock", "installer", "packaging")

#: Default timeout (seconds) of run(): generous, builds and pip installs run through it.
DEFAULT_TIMEOUT = 300.0

# Never copied out of a template (left-overs of someone building in the template dir).
_TEMPLATE_IGNORE = ("__pycache__", "*.pyc", "build", "dist", "*.egg-info", "*.so")


# --------------------------------------------------------------------------- fixture projects


def make_project(scenario: str, dest_dir: StrPath, version: str | None = None) -> Path:
    """Copy the template of *scenario* to ``dest_dir/<scenario>-<version>`` and return that path.

    *version* must be one of ``SCENARIO_VERSIONS[scenario]``; ``None`` means the scenario's
    default (its first version: ``"1.0"``, or ``"9.0"`` for ``broken_import``).  The copy is
    the template's base files, overlaid with ``versions/<version>/`` if present, with every
    ``@VERSION@`` replaced by *version*.  *dest_dir* is created if needed; the project
    directory itself must not exist yet.
    """
    try:
        versions = SCENARIO_VERSIONS[scenario]
    except KeyError:
        raise ValueError(
            f"unknown fixture scenario {scenario!r}; known: {', '.join(SCENARIOS)}"
        ) from None
    if version is None:
        version = versions[0]
    if version not in versions:
        raise ValueError(
            f"fixture scenario {scenario!r} has no version {version!r}; "
            f"supported: {', '.join(versions)}"
        )
    template = PACKAGES_DIR / scenario
    if not (template / "setup.py").is_file():
        raise FileNotFoundError(f"fixture template {template} has no setup.py")

    project = Path(dest_dir) / f"{scenario}-{version}"
    project.parent.mkdir(parents=True, exist_ok=True)
    project.mkdir()  # FileExistsError if it is already there: never mix two copies
    _copy_template(template, project, version, skip_top=("versions",))
    overlay = template / "versions" / version
    if overlay.is_dir():
        _copy_template(overlay, project, version, skip_top=())
    return project


def _ignored(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in _TEMPLATE_IGNORE)


def _copy_template(src: Path, dst: Path, version: str, *, skip_top: Sequence[str]) -> None:
    placeholder = VERSION_PLACEHOLDER.encode()
    replacement = version.encode()
    for dirpath, dirnames, filenames in os.walk(src):
        here = Path(dirpath)
        rel = here.relative_to(src)
        dirnames[:] = sorted(
            d for d in dirnames if not _ignored(d) and not (rel == Path() and d in skip_top)
        )
        target_dir = dst / rel
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in sorted(filenames):
            if _ignored(name):
                continue
            source = here / name
            target = target_dir / name
            # Fresh content and mtime (not copy2): setuptools compares mtimes.
            target.write_bytes(source.read_bytes().replace(placeholder, replacement))
            shutil.copymode(source, target)


# --------------------------------------------------------------------------- tree digests


def tree_digest(path: StrPath, *, exclude: Iterable[str] = ()) -> dict[str, str]:
    """Describe the tree under *path*: ``{relative posix path: description}``, sorted by path.

    The description is the sha256 hex digest of a regular file's content, ``"dir"`` for a
    directory (so empty directories count), ``"link:<target>"`` for a symlink (never
    followed, whatever it points to) and ``"special:<mode>"`` for anything else.  *path*
    itself is not an entry.  *exclude* holds :mod:`fnmatch` patterns matched against each
    entry's relative posix path and against its name: a matching directory is skipped with
    everything below it (e.g. ``exclude=("__pycache__",)``).
    """
    root = Path(path)
    if not root.is_dir() or root.is_symlink():
        raise NotADirectoryError(f"tree_digest() needs a real directory: {root}")
    patterns = tuple(exclude)
    result: dict[str, str] = {}

    def excluded(rel: str, name: str) -> bool:
        return any(
            fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(name, pattern)
            for pattern in patterns
        )

    def walk(directory: Path, prefix: str) -> None:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda entry: entry.name)
        for entry in entries:
            rel = prefix + entry.name
            if excluded(rel, entry.name):
                continue
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                result[rel] = "link:" + os.readlink(entry.path)
            elif stat.S_ISDIR(mode):
                result[rel] = "dir"
                walk(Path(entry.path), rel + "/")
            elif stat.S_ISREG(mode):
                result[rel] = _sha256(Path(entry.path))
            else:
                result[rel] = f"special:{stat.filemode(mode)}"

    walk(root, "")
    return dict(sorted(result.items()))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- subprocesses

# Variables that would make a child interpreter or pip escape the environment under test.
_LEAKY_ENV = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "PIP_TARGET",
    "PIP_PREFIX",
    "PIP_ROOT",
    "PIP_USER",
    "PIP_REQUIRE_VIRTUALENV",
    "__PYVENV_LAUNCHER__",
)


def clean_env(overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """``os.environ`` without variables that leak into child interpreters, plus *overrides*.

    An override whose value is ``None`` removes that variable.  Pip is made non-interactive
    and quiet about running as root.
    """
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    env["PIP_NO_INPUT"] = "1"
    env["PIP_ROOT_USER_ACTION"] = "ignore"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    for key, value in (overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _describe(
    cmd: Sequence[str], cwd: StrPath | None, headline: str, stdout: str, stderr: str
) -> str:
    return (
        f"{headline}\n"
        f"  command: {subprocess.list2cmdline(cmd)}\n"
        f"  cwd:     {os.fspath(cwd) if cwd is not None else os.getcwd()}\n"
        f"---------- stdout ----------\n{stdout}\n"
        f"---------- stderr ----------\n{stderr}\n"
        f"----------------------------"
    )


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def run(
    cmd: Sequence[StrPath],
    *,
    cwd: StrPath | None = None,
    env: Mapping[str, str | None] | None = None,
    check: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run *cmd*, capturing stdout and stderr as text, with stdin closed.

    The environment is :func:`clean_env` with *env* applied on top (``None`` values remove a
    variable).  With *check* (the default) a non-zero exit status raises ``AssertionError``
    whose message holds the command, the exit status, stdout and stderr; a timeout always
    raises ``AssertionError`` with the output collected so far.
    """
    args = [os.fspath(part) for part in cmd]
    try:
        proc = subprocess.run(
            args,
            cwd=cwd,
            env=clean_env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            _describe(
                args, cwd, f"timed out after {timeout} s", _text(exc.stdout), _text(exc.stderr)
            )
        ) from None
    if check and proc.returncode != 0:
        raise AssertionError(
            _describe(args, cwd, f"exit status {proc.returncode}", proc.stdout, proc.stderr)
        )
    return proc


# --------------------------------------------------------------------------- virtual envs


def bin_dir(venv: StrPath) -> Path:
    """The scripts directory of the virtual environment *venv*."""
    return Path(venv) / ("Scripts" if os.name == "nt" else "bin")


def site_packages(venv: StrPath) -> Path:
    """The (only) site-packages directory of the virtual environment *venv*."""
    root = Path(venv)
    if os.name == "nt":
        return root / "Lib" / "site-packages"
    expected = root / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    if (expected / "site-packages").is_dir():
        return expected / "site-packages"
    found = sorted(root.glob("lib/python*/site-packages"))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one site-packages under {root}/lib, found {found}")
    return found[0]


#: Name of the .pth file that hooks a toolset into a venv's site-packages.
TOOLS_PTH = "_install_atomic_test_tools.pth"


@dataclass(frozen=True)
class Toolset:
    """A ``pip install --target`` directory with the tools of one setuptools flavour."""

    flavour: str
    path: Path
    #: Installed distributions in :attr:`path`: canonical name -> version.
    versions: Mapping[str, str]
    #: Why install-atomic (this repository) could not be built/installed, or None.
    install_atomic_error: str | None = None

    @property
    def setuptools_version(self) -> str:
        return self.versions["setuptools"]


@dataclass(frozen=True)
class Venv:
    """A real virtual environment made by the ``make_venv`` fixture.

    Its interpreter sees the tools of its flavour (pip, setuptools, wheel, filelock,
    install-atomic) through a ``.pth`` file; everything installed into it lands in
    :attr:`site_packages`, never in :attr:`tools`.
    """

    root: Path
    flavour: str
    tools: Path

    @property
    def python(self) -> Path:
        return bin_dir(self.root) / ("python.exe" if os.name == "nt" else "python")

    @property
    def bin(self) -> Path:
        return bin_dir(self.root)

    @property
    def site_packages(self) -> Path:
        return site_packages(self.root)

    def run(
        self,
        *args: StrPath,
        cwd: StrPath | None = None,
        env: Mapping[str, str | None] | None = None,
        check: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``<venv python> *args`` through :func:`run`, by default in the venv root (so
        that neither the repository nor a project directory shadows installed modules)."""
        return run(
            [self.python, *args],
            cwd=self.root if cwd is None else cwd,
            env=env,
            check=check,
            timeout=timeout,
        )

    def pip(
        self,
        *args: StrPath,
        cwd: StrPath | None = None,
        env: Mapping[str, str | None] | None = None,
        check: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``<venv python> -m pip *args``."""
        return self.run("-m", "pip", *args, cwd=cwd, env=env, check=check, timeout=timeout)

    def setup_py(
        self,
        project: StrPath,
        *args: StrPath,
        env: Mapping[str, str | None] | None = None,
        check: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``<venv python> setup.py *args`` in the project directory *project*."""
        return self.run("setup.py", *args, cwd=project, env=env, check=check, timeout=timeout)

    def import_version(self, module: str, *, cwd: StrPath | None = None) -> str:
        """Import *module* in the venv and return its ``VERSION`` attribute."""
        proc = self.run("-c", f"import {module} as m; print(m.VERSION)", cwd=cwd)
        return proc.stdout.strip()


def create_venv(root: StrPath, tools: StrPath, *, flavour: str) -> Venv:
    """Create a pip-less venv at *root* whose interpreter also sees the toolset *tools*.

    The ``.pth`` file first adds *tools* to ``sys.path`` as a plain path line (so that pip's
    build isolation strips it again like any site directory) and then runs
    ``site.addsitedir`` on it so that the ``.pth`` files in *tools* (setuptools'
    ``distutils-precedence.pth``) are processed as in a normal installation.  *tools* comes
    after the venv's own site-packages, so anything installed into the venv wins.
    """
    root = Path(root)
    tools = Path(tools).resolve()
    run([sys.executable, "-m", "venv", "--without-pip", root], timeout=120)
    venv = Venv(root=root, flavour=flavour, tools=tools)
    (venv.site_packages / TOOLS_PTH).write_text(
        f"{tools}\nimport site; site.addsitedir({str(tools)!r})\n", encoding="utf-8"
    )
    return venv


class MakeVenv(Protocol):
    """Type of the ``make_venv`` fixture."""

    def __call__(
        self,
        flavour: str = "newest",
        *,
        name: str | None = None,
        require_install_atomic: bool = True,
    ) -> Venv: ...


def leftovers(*roots: StrPath) -> list[str]:
    """Every entry named ``.install-atomic*`` (stages, backups, journals) below *roots*,
    sorted: after a success or a failure there must be none."""
    found: list[str] = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            found += [
                os.path.join(dirpath, n)
                for n in dirnames + filenames
                if n.startswith(".install-atomic")
            ]
    return sorted(found)


def flock_holders(path: StrPath) -> list[int]:
    """Pids holding a ``flock`` on the file *path* (waiters excluded), read from
    ``/proc/locks`` (Linux); [] when *path* does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return []
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    with open("/proc/locks", encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if "->" not in parts and len(parts) >= 6 and parts[1] == "FLOCK" \
                    and parts[5] == wanted:
                pids.append(int(parts[4]))
    return pids


# -- install-atomic install helpers --
# For tests/test_install_*.py (``install-atomic install``): a wheelhouse of real releases,
# pinned, downloaded once per test session; tiny wheels made on the spot (one that raises
# on import, say); copies of real wheels with one file rewritten; RECORD checks.

import base64  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
import zipfile  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from typing import Callable  # noqa: E402

#: Tiny pyproject-only projects of the install tests (copy them before building).
INSTALL_PACKAGES_DIR = PACKAGES_DIR / "install"

#: Real releases the install tests use, pinned; one ``pip download`` per group (a group never
#: names two versions of one project).  The last group holds the build back ends (and what
#: they require) that isolated builds of the fixture projects install from the wheelhouse.
WHEEL_GROUPS: tuple[tuple[str, ...], ...] = (
    ("six==1.16.0", "markupsafe==2.1.5", "pyflakes==3.2.0", "jmespath==1.0.1",
     "greenlet==3.1.1", "requests==2.32.3", "urllib3==2.2.3", "idna==3.10",
     "charset-normalizer==3.4.0", "certifi==2024.8.30"),
    ("six==1.17.0", "markupsafe==3.0.2", "pyflakes==3.1.0", "requests==2.31.0",
     "urllib3==1.26.20", "idna==3.7", "charset-normalizer==3.3.2", "certifi==2024.7.4"),
    ("hatchling==1.25.0", "packaging==24.2", "pathspec==0.12.1", "pluggy==1.5.0",
     "trove-classifiers==2024.10.21.16", "tomli==2.2.1", "flit_core==3.9.0",
     "setuptools==75.6.0", "wheel==0.45.1"),
    ("pycryptodome==3.21.0",),
)
#: Real sdists (built by pip, isolated, with setuptools from the wheelhouse).
SDIST_PINS: tuple[str, ...] = ("jmespath==1.0.1",)
#: A real binary wheel for another CPython than the one running the tests (wrong tags).
FOREIGN_PIN = "markupsafe==2.1.5"
FOREIGN_PYTHON = "3.9" if sys.version_info[:2] != (3, 9) else "3.10"


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Wheelhouse:
    """Downloaded releases: wheels in :attr:`path`, sdists in :attr:`sdists`, and in
    :attr:`foreign` the wheel of :data:`FOREIGN_PIN` for CPython :data:`FOREIGN_PYTHON`."""

    path: Path
    sdists: Path
    foreign: Path

    def wheel(self, project: str, version: str) -> Path:
        """The wheel of *project* *version* (fails if it was not downloaded)."""
        return self._find(self.path, project, version, ".whl")

    def sdist(self, project: str, version: str) -> Path:
        return self._find(self.sdists, project, version, ".tar.gz")

    @staticmethod
    def _find(directory: Path, project: str, version: str, suffix: str) -> Path:
        def name_version(path: Path) -> tuple[str, str]:
            stem = path.name[: -len(suffix)]
            parts = stem.split("-")[:2] if suffix == ".whl" else stem.rsplit("-", 1)
            return canonical_name(parts[0]), parts[1]

        wanted = (canonical_name(project), version)
        found = [p for p in directory.glob(f"*{suffix}") if name_version(p) == wanted]
        if len(found) != 1:
            raise FileNotFoundError(f"{project} {version}: expected one {suffix} in {directory},"
                                    f" found {found}")
        return found[0]

    def pip_args(self) -> list[str]:
        """Index options for an offline install from this wheelhouse."""
        return ["--no-index", "--find-links", str(self.path)]


_WHEELHOUSE: dict[str, Wheelhouse] = {}
_WHEELHOUSE_LOCK = threading.Lock()


def _download(dest: Path, pins: Sequence[str], options: Sequence[str]) -> None:
    try:
        run([sys.executable, "-m", "pip", "download", "--no-deps", *options, "--dest", dest,
             *pins], timeout=900)
    except AssertionError as exc:
        raise AssertionError(
            f"Could not download {' '.join(pins)} for the install tests. Is the package index"
            f" reachable (pip's index / proxy configuration)?\n{exc}"
        ) from None


def session_wheelhouse(mktemp: Callable[[str], Path]) -> Wheelhouse:
    """The wheelhouse of :data:`WHEEL_GROUPS` and :data:`SDIST_PINS`, downloaded on the
    first call of the test session (``mktemp`` is ``tmp_path_factory.mktemp``) and the same
    one afterwards."""
    with _WHEELHOUSE_LOCK:
        if "wheelhouse" not in _WHEELHOUSE:
            base = mktemp("wheelhouse")
            wheels, sdists, foreign = base / "wheels", base / "sdists", base / "foreign"
            binary = ["--only-binary=:all:"]
            other = [*binary, "--python-version", FOREIGN_PYTHON, "--implementation", "cp",
                     "--platform", f"manylinux2014_{platform.machine()}"]
            with ThreadPoolExecutor(max_workers=len(WHEEL_GROUPS) + 2) as pool:
                jobs = [pool.submit(_download, wheels, group, binary) for group in WHEEL_GROUPS]
                jobs.append(pool.submit(_download, sdists, SDIST_PINS, ["--no-binary=:all:"]))
                jobs.append(pool.submit(_download, foreign, [FOREIGN_PIN], other))
                for job in jobs:
                    job.result()
            _WHEELHOUSE["wheelhouse"] = Wheelhouse(wheels, sdists, foreign)
        return _WHEELHOUSE["wheelhouse"]


def describe_proc(proc: subprocess.CompletedProcess[str]) -> str:
    return _describe(proc.args, None, f"exit status {proc.returncode}", proc.stdout, proc.stderr)


def ia_run(
    venv: Venv, *args: StrPath, status: int | None = 0, env: Mapping[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """``<venv python> -m install_atomic *args``; with *status*, assert the exit status."""
    proc = venv.run("-m", "install_atomic", *args, check=False, env=env)
    if status is not None:
        assert proc.returncode == status, describe_proc(proc)
    return proc


def ia_install(
    venv: Venv, wheelhouse: Wheelhouse, *args: StrPath, status: int | None = 0,
    env: Mapping[str, str | None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``install-atomic install --no-index --find-links WHEELHOUSE *args`` in *venv*."""
    return ia_run(venv, "install", *wheelhouse.pip_args(), *args, status=status, env=env)


def pip_list(venv: Venv, path: StrPath | None = None) -> dict[str, str]:
    """``pip list`` of *path* (default: the venv's site-packages, not the toolset):
    canonical name -> version."""
    proc = venv.pip("list", "--format", "json", "--path", path or venv.site_packages)
    return {canonical_name(d["name"]): d["version"] for d in json.loads(proc.stdout)}


def _b64_digest(data: bytes, algorithm: str = "sha256") -> str:
    return base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).decode().rstrip("=")


def record_rows(dist_info: StrPath) -> list[tuple[Path, str, str]]:
    """The rows of *dist_info*'s RECORD: (absolute normalised path, hash, size)."""
    base = Path(dist_info).parent
    text = (Path(dist_info) / "RECORD").read_text(encoding="utf-8")
    return [
        (Path(os.path.normpath(base / row[0])), row[1], row[2])
        for row in csv.reader(text.splitlines()) if row
    ]


def record_problems(dist_info: StrPath) -> list[str]:
    """What is wrong with *dist_info*'s RECORD: a listed file missing, a hash or size that
    does not match the file, a row without hash other than RECORD itself and bytecode."""
    problems = []
    for path, hash_, size in record_rows(dist_info):
        if not path.is_file():
            problems.append(f"listed but missing: {path}")
            continue
        if not hash_:
            if path.name != "RECORD" and path.suffix != ".pyc":
                problems.append(f"no hash: {path}")
            continue
        algorithm, _, value = hash_.partition("=")
        data = path.read_bytes()
        if _b64_digest(data, algorithm) != value:
            problems.append(f"hash mismatch: {path}")
        if size != str(len(data)):
            problems.append(f"size {size} != {len(data)}: {path}")
    return problems


def make_wheel(
    directory: StrPath,
    name: str,
    version: str,
    files: Mapping[str, str | bytes],
    *,
    tag: str = "py3-none-any",
    requires: Sequence[str] = (),
    entry_points: str | None = None,
) -> Path:
    """Write a valid wheel of *name* *version* holding *files* (archive path -> content)
    with a correct RECORD into *directory*; return its path."""
    dist = re.sub(r"[-_.]+", "_", name)
    dist_info = f"{dist}-{version}.dist-info"
    entries: dict[str, str | bytes] = dict(files)
    entries[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires)
    )
    entries[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: install-atomic-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
    )
    if entry_points is not None:
        entries[f"{dist_info}/entry_points.txt"] = entry_points
    path = Path(directory) / f"{dist}-{version}-{tag}.whl"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, content in entries.items():
            data = content.encode() if isinstance(content, str) else content
            zf.writestr(arcname, data)
            rows.append(f"{arcname},sha256={_b64_digest(data)},{len(data)}\n")
        rows.append(f"{dist_info}/RECORD,,\n")
        zf.writestr(f"{dist_info}/RECORD", "".join(rows))
    return path


def tamper_wheel(wheel: StrPath, directory: StrPath, member: str) -> Path:
    """Copy *wheel* into *directory* (same file name) with *member*'s content changed and
    its RECORD left as it was; return the copy."""
    source = Path(wheel)
    copy = Path(directory) / source.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    changed = False
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(copy, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == member:
                data += b"\nTAMPERED = True\n"
                changed = True
            zout.writestr(info, data)
    if not changed:
        raise KeyError(f"{member} is not in {source}")
    return copy


def copy_install_project(name: str, dest_dir: StrPath) -> Path:
    """Copy the project ``tests/packages/install/<name>`` to ``dest_dir/<name>``."""
    target = Path(dest_dir) / name
    shutil.copytree(INSTALL_PACKAGES_DIR / name, target,
                    ignore=shutil.ignore_patterns(*_TEMPLATE_IGNORE))
    return target


def venv_files(venv: Venv) -> set[Path]:
    """Every file of *venv* not made by ``make_venv`` (interpreter links, activation
    scripts, pyvenv.cfg, the toolset .pth) nor the engine's lock: what installs added."""
    own = {"pyvenv.cfg", ".lock"}
    found = set()
    for dirpath, dirnames, filenames in os.walk(venv.root):
        dirnames[:] = [d for d in dirnames if d != "lib64"]
        here = Path(dirpath)
        for name in filenames:
            path = here / name
            if here == venv.root and name in own:
                continue
            if here == venv.bin and (name.startswith(("python", "activate"))
                                     or name == "Activate.ps1"):
                continue
            if here == venv.site_packages and name == TOOLS_PTH:
                continue
            found.add(path)
    return found


def listed_files(*site_dirs: StrPath) -> set[Path]:
    """Every path the RECORDs of the distributions in *site_dirs* list."""
    listed: set[Path] = set()
    for site_dir in site_dirs:
        for dist_info in Path(site_dir).glob("*.dist-info"):
            listed |= {row[0] for row in record_rows(dist_info)}
    return listed


def dist_info(site_dir: StrPath, name: str, version: str) -> Path:
    """The one ``.dist-info`` directory of *name* *version* in *site_dir*."""
    found = [
        p for p in Path(site_dir).glob("*.dist-info")
        if p.name[: -len(".dist-info")].split("-")[1:] == [version]
        and canonical_name(p.name.split("-")[0]) == canonical_name(name)
    ]
    assert len(found) == 1, (name, version, sorted(p.name for p in Path(site_dir).iterdir()))
    return found[0]
