"""Turn what the user asked for into one wheel per distribution, with pip.

pip stays the resolver: ``pip install --dry-run --report`` run for the target
interpreter, with the user's location and index options, says which
distributions (names, versions, where from) a ``pip install`` would install
into that environment, given what it already has.  Whatever is not already a
wheel file on disk (a wheel on an index, an sdist, a project directory, a VCS
URL) then becomes one through one ``pip wheel --no-deps`` call into a private
wheelhouse: any PEP 517 backend builds there, isolated as pip isolates it.

Nothing here writes into the target environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name, parse_wheel_filename

from install_atomic import children
from install_atomic.errors import InstallAtomicError
from install_atomic.frontends.wheels.target import Target

Logger = Callable[[str], None]


class ResolveError(InstallAtomicError):
    """pip could not resolve, fetch or build what was asked for."""


@dataclass
class PipOptions:
    """The options passed through to pip, named as pip names them."""

    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    no_deps: bool = False
    upgrade: bool = False
    force_reinstall: bool = False
    no_index: bool = False
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    no_build_isolation: bool = False
    pre: bool = False
    verbose: int = 0

    def index_args(self) -> list[str]:
        args: list[str] = []
        if self.no_index:
            args.append("--no-index")
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        if self.pre:
            args.append("--pre")
        return args

    def build_args(self) -> list[str]:
        return ["--no-build-isolation"] if self.no_build_isolation else []


@dataclass
class Item:
    """One distribution to install."""

    name: str
    version: str
    #: True when the user named it (pip's REQUESTED), False for a dependency.
    requested: bool
    #: PEP 610 ``direct_url.json`` content for a file, directory or URL; else None.
    direct_url: dict[str, Any] | None
    #: Where pip found it (a URL).
    url: str
    #: The wheel file, once fetched or built.
    wheel: str = ""
    #: The archive's hashes pip resolved (algorithm -> hex digest), checked again on
    #: the file that gets installed.
    hashes: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)


def _file_path(url: str) -> str | None:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "file":
        return None
    return urllib.request.url2pathname(parsed.path)


def pip_command(target: Target) -> list[str]:
    """pip, run for the target interpreter: its own pip when the target is the
    running interpreter, else this interpreter's pip with ``--python``."""
    base = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    if not target.is_running_interpreter:
        base += ["--python", target.executable]
    return base


def _location_args(target: Target) -> list[str]:
    args: list[str] = []
    if target.target_dir:
        args += ["--target", target.target_dir]
    if target.user:
        args.append("--user")
    if target.prefix:
        args += ["--prefix", target.prefix]
    if target.root:
        args += ["--root", target.root]
    return args


def _run_pip(cmd: list[str], what: str, advice: str, verbose: int, workdir: str) -> str:
    """Run pip as a child that dies with the installer (:mod:`install_atomic.children`).
    Its temporary files go below *workdir* (the install's build directory), so that
    when both are killed the next install or ``recover`` removes them with it."""
    tmp = os.path.join(workdir, "tmp")
    os.makedirs(tmp, exist_ok=True)
    env = dict(os.environ, TMPDIR=tmp)
    try:
        status, stdout, stderr = children.run_in_own_group(cmd, env=env)
    except OSError as exc:
        raise ResolveError(f"cannot run pip ({cmd[0]}): {exc.strerror}. {advice}",
                           cmd[0]) from exc
    if verbose:
        sys.stdout.write(stdout)
        sys.stderr.write(stderr)
    if status != 0:
        output = "\n".join(x.strip() for x in (stdout, stderr) if x.strip())
        raise ResolveError(
            f"{what} failed (pip exit status {status}); nothing was installed and"
            f" the environment is unchanged.\n{output}\n{advice}",
            None,
        )
    return stdout


def _local_source(spec: str) -> str | None:
    """The absolute path of *spec* if it names a project directory or an sdist on disk.

    As with pip, a directory is meant only when the spec looks like a path (it holds a
    path separator or starts with ``.``): ``six`` is a requirement even where a
    ``six/`` directory exists."""
    if spec.endswith(".whl") or not os.path.exists(spec):
        return None
    if os.path.isdir(spec):
        looks_like_path = os.sep in spec or spec.startswith(".")
        return os.path.abspath(spec) if looks_like_path else None
    if spec.endswith((".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz")):
        return os.path.abspath(spec)
    return None


def _direct_url_of(path: str, digest: str | None = None) -> dict[str, Any]:
    url = urllib.parse.urljoin("file:", urllib.request.pathname2url(path))
    if os.path.isdir(path):
        return {"url": url, "dir_info": {}}
    if digest is None:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    return {"url": url, "archive_info": {"hash": f"sha256={digest}",
                                         "hashes": {"sha256": digest}}}


def _without_stale_build(project: str, copy: str) -> str:
    """*project*, or a copy of it without its ``build/`` directory when it has one.

    setuptools builds into ``build/`` inside the project and copies into the wheel
    whatever an earlier build left in ``build/lib``, so a module deleted since would
    come back and an "exact" downgrade would not be exact.  A copy leaves the user's
    tree alone (``build/`` stays as it was) and the wheel holds only the sources.
    """
    if not os.path.isdir(project) or not os.path.isdir(os.path.join(project, "build")):
        return project
    shutil.copytree(project, copy, symlinks=True,
                    ignore=lambda d, names: ["build"] if d == project else [])
    return copy


def _prebuild(
    specs: Sequence[str], options: PipOptions, target: Target, workdir: str
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Build project directories and sdists named on the command line into wheels first,
    once (else pip would prepare their metadata in one isolated build environment and
    build them in another).  Returns the specs with those replaced by their wheels, and
    wheel path -> the PEP 610 record of what the user named."""
    out: list[str] = []
    direct: dict[str, dict[str, Any]] = {}
    for n, spec in enumerate(specs):
        local = _local_source(spec)
        if local is None:
            out.append(spec)
            continue
        wheelhouse = os.path.join(workdir, f"local-{n}")
        os.makedirs(wheelhouse)
        source = _without_stale_build(local, os.path.join(workdir, f"source-{n}"))
        cmd = [
            *pip_command(target), "wheel", "--no-deps", "--wheel-dir", wheelhouse,
            *(["-v"] * options.verbose or ["-q"]),
            *options.index_args(), *options.build_args(), source,
        ]
        _run_pip(cmd, f"building {local}",
                 "Fix the project's build (pip's output says why).",
                 options.verbose, workdir)
        wheels = [w for w in os.listdir(wheelhouse) if w.endswith(".whl")]
        if len(wheels) != 1:
            raise ResolveError(f"building {local} gave {len(wheels)} wheels, not one; nothing"
                               " was changed.", local)
        wheel = os.path.join(wheelhouse, wheels[0])
        direct[wheel] = _direct_url_of(local)
        out.append(wheel)
    return out, direct


def check_files(specs: Sequence[str]) -> None:
    """Refuse a SPEC that names a wheel or sdist file that is not there, before pip runs."""
    archives = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz")
    for spec in specs:
        if "://" in spec or "@" in spec or not spec.endswith(archives):
            continue
        if not os.path.isfile(spec):
            raise ResolveError(
                f"{os.path.abspath(spec)} does not exist (or is not a file). Nothing was"
                " installed. Check the path, or give a requirement such as 'name==1.0'"
                " instead of a file.",
                os.path.abspath(spec),
            )


def wheel_files_only(specs: Sequence[str], options: PipOptions) -> bool:
    """True when there is nothing for pip to resolve: ``--no-deps`` and every SPEC a
    wheel file on disk (no requirements or constraints files)."""
    return (
        options.no_deps and bool(specs) and not options.requirements
        and not options.constraints
        and all(s.endswith(".whl") and os.path.isfile(s) for s in specs)
    )


def local_wheels(
    specs: Sequence[str], options: PipOptions, installed: Callable[[str], Sequence[str]]
) -> list[Item]:
    """:func:`resolve` without pip, for :func:`wheel_files_only`: pip's own rule, a
    wheel whose version is installed already is satisfied unless ``--force-reinstall``
    (``-U`` changes nothing for a file).  *installed* maps a name to its installed
    versions."""
    items = []
    for spec in specs:
        path = os.path.abspath(spec)
        name, version, _, _ = parse_wheel_filename(os.path.basename(path))
        if str(version) in installed(str(name)) and not options.force_reinstall:
            continue
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        direct = _direct_url_of(path, digest)
        items.append(Item(name=str(name), version=str(version), requested=True,
                          direct_url=direct, url=str(direct["url"]), wheel=path,
                          hashes={"sha256": digest}))
    return items


def resolve(
    specs: Sequence[str], options: PipOptions, target: Target, workdir: str
) -> list[Item]:
    """What ``pip install SPECS`` would install into *target*, as :class:`Item` s."""
    specs, prebuilt = _prebuild(specs, options, target, workdir)
    report_path = os.path.join(workdir, "pip-report.json")
    cmd = [
        *pip_command(target), "install", "--dry-run", "--report", report_path,
        *(["-v"] * options.verbose or ["-q"]),
        *_location_args(target), *options.index_args(), *options.build_args(),
    ]
    if options.no_deps:
        cmd.append("--no-deps")
    if options.upgrade:
        cmd.append("--upgrade")
    if options.force_reinstall:
        cmd.append("--force-reinstall")
    for path in options.requirements:
        cmd += ["-r", path]
    for path in options.constraints:
        cmd += ["-c", path]
    cmd += list(specs)
    _run_pip(
        cmd,
        "resolving " + (" ".join([*specs, *(f"-r {r}" for r in options.requirements)])),
        "Check the names, versions and index options, or the project's build.",
        options.verbose,
        workdir,
    )
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    items = []
    for entry in report.get("install", []):
        meta = entry["metadata"]
        info = entry.get("download_info") or {}
        url = str(info.get("url", ""))
        if (info.get("dir_info") or {}).get("editable"):
            raise ResolveError(
                f"{meta['name']} is an editable install ({url}); install-atomic installs"
                " complete copies only. Leave out -e, or use pip for editable installs.",
                url,
            )
        item = Item(
            name=str(meta["name"]),
            version=str(meta["version"]),
            requested=bool(entry.get("requested", False)),
            direct_url=info if entry.get("is_direct") else None,
            url=url,
            hashes=_hashes(info),
        )
        built = _file_path(url)
        if built is not None and built in prebuilt:
            item.direct_url = prebuilt.pop(built)  # the directory or sdist, not our wheel
            item.url = str(item.direct_url["url"])
            item.wheel = built
            item.hashes = {}
        items.append(item)
    # pip keeps an installed version equal to a local wheel's, but always reinstalls a
    # project directory or an sdist named on the command line: so do we.
    for wheel, direct in prebuilt.items():
        name, version, _, _ = parse_wheel_filename(os.path.basename(wheel))
        items.append(Item(name=str(name), version=str(version), requested=True,
                          direct_url=direct, url=str(direct["url"]), wheel=wheel))
    return items


def _hashes(info: dict[str, Any]) -> dict[str, str]:
    archive = info.get("archive_info") or {}
    hashes = {str(k): str(v) for k, v in (archive.get("hashes") or {}).items()}
    algorithm, _, value = str(archive.get("hash", "")).partition("=")
    if value and algorithm not in hashes:
        hashes[algorithm] = value
    return hashes


def _build_spec(item: Item) -> str:
    info = item.direct_url or {}
    vcs = info.get("vcs_info")
    if vcs:
        return f"{vcs['vcs']}+{item.url}@{vcs['commit_id']}"
    path = _file_path(item.url)
    if path is not None:
        return path
    # The very file pip resolved, with its hash for pip to check (not "name==version",
    # which a second download from another index could answer with another file).
    if "sha256" in item.hashes and "#" not in item.url:
        return f"{item.name} @ {item.url}#sha256={item.hashes['sha256']}"
    return item.url


def fetch(
    items: Sequence[Item], options: PipOptions, target: Target, wheelhouse: str
) -> None:
    """Set each item's :attr:`Item.wheel`: a wheel file on disk is used as it is;
    everything else goes through one ``pip wheel --no-deps`` into *wheelhouse*."""
    needed = []
    for item in items:
        path = _file_path(item.url)
        if item.wheel:
            continue  # built from a directory or an sdist before resolving
        if path is not None and path.endswith(".whl") and os.path.isfile(path):
            item.wheel = path
        else:
            needed.append(item)
    for item in items:
        _check_hash(item)
    if not needed:
        return
    os.makedirs(wheelhouse, exist_ok=True)
    cmd = [
        *pip_command(target), "wheel", "--no-deps", "--wheel-dir", wheelhouse,
        *(["-v"] * options.verbose or ["-q"]),
        *options.index_args(), *options.build_args(),
        *(_build_spec(item) for item in needed),
    ]
    names = ", ".join(f"{i.name} {i.version}" for i in needed)
    _run_pip(cmd, f"building or fetching {names}",
             "Fix the project's build (its output is above), or check the index options.",
             options.verbose, os.path.dirname(wheelhouse))
    built: dict[str, str] = {}
    for name in os.listdir(wheelhouse):
        if name.endswith(".whl"):
            dist, _, _, _ = parse_wheel_filename(name)
            built[canonicalize_name(dist)] = os.path.join(wheelhouse, name)
    for item in needed:
        if item.key not in built:
            raise ResolveError(
                f"pip built no wheel for {item.name} {item.version} ({item.url}); nothing"
                " was installed. Build it with 'pip wheel --no-deps' to see why.",
                item.url,
            )
        item.wheel = built[item.key]
        if item.url.endswith(".whl"):
            _check_hash(item)  # a downloaded wheel: the very file pip resolved


def _check_hash(item: Item) -> None:
    """Refuse a wheel file whose sha256 is not the one pip resolved (a wheel replaced
    between the resolution and the install)."""
    expected = item.hashes.get("sha256")
    if not expected or not item.wheel or not item.url.endswith(".whl"):
        return
    with open(item.wheel, "rb") as f:
        actual = hashlib.sha256(f.read()).hexdigest()
    if actual != expected:
        raise ResolveError(
            f"{item.wheel} has sha256 {actual}, not the {expected} pip resolved for"
            f" {item.name} {item.version} ({item.url}); nothing was installed. The file"
            " changed or another index answered; check the index options and run again.",
            item.wheel,
        )
