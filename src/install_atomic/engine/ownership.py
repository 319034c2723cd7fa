"""Who owns which path in a destination, read from installed metadata.

A distribution's files come from, in order of trust:

1. ``*.dist-info/RECORD`` (pip, uv, installer): paths relative to the
   directory holding the dist-info;
2. ``*.egg-info/installed-files.txt`` (pip's legacy installs, and ours): paths
   relative to the egg-info directory;
3. ``top_level.txt``: each top-level name claims ``name/``, ``name.py`` and
   ``name.*.so`` (or ``.pyd``) whole, except the names listed in
   ``namespace_packages.txt``, which are shared by definition.

Every path is joined to the *real* directory holding the metadata
(``os.path.realpath``, so a destination reached through a symlink resolves
``../../../bin/tool`` in a RECORD to the script pip installed, not to a file
beside the link), normalised, and kept only if it lies inside the install
scheme's directories (lib, scripts, data, headers of that environment).
Anything else (``../../../../etc/x``, an absolute path elsewhere, a
``top_level.txt`` line naming ``/srv``) is recorded in
:attr:`InstalledDistribution.outside` and never acted on: the transaction
warns about it, or refuses with ``--strict``.
"""

from __future__ import annotations

import csv
import email.parser
import glob
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from install_atomic.engine.locking import environment_root
from install_atomic.engine.trust import inside

METADATA_SUFFIXES = (".dist-info", ".egg-info")
#: Written by install-atomic into the egg-info: the install directories used.
ROOTS_FILE = "install-atomic-roots.txt"


def canonical_name(name: str) -> str:
    """PEP 503 normalisation: ``Foo_Bar.baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_metadata_name(name: str) -> bool:
    """True for an entry name that holds distribution metadata."""
    return name.endswith(METADATA_SUFFIXES)


@dataclass(frozen=True)
class InstalledDistribution:
    """One installed distribution, as its metadata describes it."""

    name: str
    version: str
    metadata_path: str
    #: Absolute paths of every file the metadata lists, or None when it lists none.
    files: frozenset[str] | None
    #: Absolute paths this distribution claims whole (from top_level.txt), used
    #: only when ``files`` is None.
    whole: frozenset[str] = field(default_factory=frozenset)
    #: Absolute paths of namespace packages it declares (never owned whole).
    namespaces: frozenset[str] = field(default_factory=frozenset)
    #: The install directories install-atomic recorded for it (``ROOTS_FILE``):
    #: removing its files never climbs to them.
    roots: frozenset[str] = field(default_factory=frozenset)
    #: Paths the metadata names outside the install scheme, as written there: ignored.
    outside: tuple[str, ...] = ()
    #: False when ``metadata_path`` is not one of the distribution's own files (a
    #: manifest kept outside the install scheme): it is then never replaced nor removed.
    metadata_listed: bool = True

    @property
    def key(self) -> str:
        return canonical_name(self.name)

    def claimed(self) -> Iterator[str]:
        """Every path this distribution lists or claims whole, metadata included."""
        if self.metadata_listed:
            yield self.metadata_path
        if self.files is not None:
            yield from self.files
        yield from self.whole


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _headers(text: str | None) -> tuple[str | None, str | None]:
    if not text:
        return None, None
    msg = email.parser.HeaderParser().parsestr(text)
    return msg.get("Name"), msg.get("Version")


def _split_filename(entry: str) -> tuple[str, str]:
    stem = entry.rsplit(".", 1)[0]
    name, _, rest = stem.partition("-")
    version = rest.split("-py", 1)[0] if rest else ""
    return name, version


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class _Resolver:
    """Turns paths read from metadata into absolute paths inside the scheme, or None."""

    def __init__(self, scheme: Sequence[str]) -> None:
        self.scheme = [os.path.realpath(d) for d in scheme]
        self.outside: list[str] = []

    def __call__(self, base: str, written: str) -> str | None:
        path = os.path.normpath(os.path.join(base, written))
        if any(inside(path, d) for d in self.scheme):
            return path
        self.outside.append(written)
        return None


def _top_level_claims(
    root: str, names: Iterable[str], namespaces: set[str], resolve: _Resolver
) -> set[str]:
    claims: set[str] = set()
    for name in names:
        if name in namespaces or not name or name.startswith("."):
            continue
        base = os.path.normpath(os.path.join(root, name.replace("/", os.sep)))
        if base == root or not inside(base, root):  # a top-level name lives in root itself
            resolve.outside.append(name)
            continue
        claims.add(base)
        claims.add(base + ".py")
        escaped = glob.escape(base)
        for suffix in (".*.so", ".so", ".*.pyd", ".pyd"):
            claims.update(glob.glob(escaped + suffix))
    return claims


def default_scheme(root: str) -> list[str]:
    """Where metadata in *root* may name files when the caller gives no scheme: *root*
    and, inside a virtual environment, the whole environment (its bin, include, share)."""
    venv = environment_root(root)
    return [root] if venv is None else [root, venv]


def _recorded_roots(metadata_dir: str) -> set[str]:
    text = _read_text(os.path.join(metadata_dir, ROOTS_FILE))
    return {os.path.normpath(r) for r in _lines(text) if os.path.isabs(r)}


def read_distribution(
    root: str, entry: str, scheme: Sequence[str] | None = None
) -> InstalledDistribution | None:
    """Read the metadata entry *entry* (a ``.dist-info`` / ``.egg-info``) in *root*.

    *scheme* lists the directories its paths may name (default:
    :func:`default_scheme`); paths elsewhere go to ``outside``.
    """
    root = os.path.realpath(root)
    resolve = _Resolver(scheme if scheme is not None else default_scheme(root))
    path = os.path.join(root, entry)
    roots: set[str] = set()
    if entry.endswith(".dist-info"):
        name, version = _headers(_read_text(os.path.join(path, "METADATA")))
        files: set[str] | None = None
        record = _read_text(os.path.join(path, "RECORD"))
        if record is not None:
            files = set()
            for row in csv.reader(record.splitlines()):
                if row and row[0]:
                    resolved = resolve(root, row[0])
                    if resolved is not None:
                        files.add(resolved)
        top = _lines(_read_text(os.path.join(path, "top_level.txt")))
        namespaces: set[str] = set()
        roots = _recorded_roots(path)  # written by install-atomic's wheel installer
    elif entry.endswith(".egg-info"):
        if os.path.isdir(path):
            name, version = _headers(_read_text(os.path.join(path, "PKG-INFO")))
            listed = _read_text(os.path.join(path, "installed-files.txt"))
            files = None
            if listed is not None:
                files = {p for p in (resolve(path, line) for line in _lines(listed)) if p}
            top = _lines(_read_text(os.path.join(path, "top_level.txt")))
            namespaces = set(_lines(_read_text(os.path.join(path, "namespace_packages.txt"))))
            roots = _recorded_roots(path)
        else:  # a single-file egg-info written by distutils
            name, version = _headers(_read_text(path))
            files, top, namespaces = None, [], set()
    else:
        return None
    fallback_name, fallback_version = _split_filename(entry)
    ns_paths = {
        p for p in (resolve(root, n.replace(".", os.sep)) for n in namespaces) if p is not None
    }
    whole: set[str] = set()
    if files is None:
        whole = _top_level_claims(root, top, {n.replace(".", "/") for n in namespaces}, resolve)
    return InstalledDistribution(
        name=name or fallback_name,
        version=version or fallback_version,
        metadata_path=os.path.normpath(path),
        files=frozenset(files) if files is not None else None,
        whole=frozenset(whole),
        namespaces=frozenset(ns_paths),
        roots=frozenset(roots),
        outside=tuple(resolve.outside),
    )


#: The ``"format"`` of a manifest written by ``install-atomic merge``.
MANIFEST_FORMAT = "install-atomic-manifest-1"


def read_manifest(
    path: str, scheme: Sequence[str], *, name: str | None = None
) -> InstalledDistribution:
    """The files a manifest (``install-atomic merge --manifest``) lists, as a distribution.

    A manifest is JSON: ``{"format": MANIFEST_FORMAT, "name", "version", "prefix",
    "files": [...]}``; each file is relative to ``prefix`` (or absolute).  Files are
    kept only inside *scheme*, like paths read from any metadata; the manifest
    itself is one of the files when it lies inside *scheme*.  *name* overrides the
    name it records (a front end naming "others" apart from "old").  Raises
    ``OSError`` or ``ValueError`` when it cannot be read or is no manifest.
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path} is not an install-atomic manifest")
    prefix = str(data["prefix"])
    files = data["files"]
    if not os.path.isabs(prefix) or not isinstance(files, list):
        raise ValueError(f"{path} is not an install-atomic manifest (bad prefix or files)")
    resolve = _Resolver(scheme)
    listed = {p for p in (resolve(prefix, str(f)) for f in files) if p is not None}
    real = os.path.realpath(path)
    return InstalledDistribution(
        name=name or str(data.get("name") or _split_filename(os.path.basename(path))[0]),
        version=str(data.get("version") or ""),
        metadata_path=real,
        files=frozenset(listed),
        outside=tuple(resolve.outside),
        metadata_listed=any(inside(real, os.path.realpath(d)) for d in scheme),
    )


def scan(root: str, scheme: Sequence[str] | None = None) -> list[InstalledDistribution]:
    """Every distribution whose metadata lives directly in *root*, sorted by entry name;
    *scheme* as for :func:`read_distribution`."""
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        if is_metadata_name(entry) and not entry.startswith("."):
            dist = read_distribution(root, entry, scheme)
            if dist is not None:
                found.append(dist)
    return found


def installed(root: str, scheme: Sequence[str] | None = None) -> list[InstalledDistribution]:
    """:func:`scan`, plus, when *root* uses generations, the distributions of its current
    generation (their metadata only: they are replaced by building a new generation,
    never file by file)."""
    from install_atomic.engine.generations.layout import managed

    found = scan(root, scheme)
    for name, version, metadata in managed(root):
        found.append(InstalledDistribution(name=name, version=version, metadata_path=metadata,
                                           files=frozenset(), metadata_listed=False))
    return found


def _ancestors(path: str) -> Iterator[str]:
    parent = os.path.dirname(path)
    while parent and parent != path:
        yield parent
        path, parent = parent, os.path.dirname(parent)


class Ownership:
    """Answers "who else owns this path?" for one transaction.

    *project* names the distribution being installed, or several distributions
    installed in one transaction: their installed versions (there may be
    several per name: an egg-info and a pip dist-info, say) are "old",
    everything else is "others".
    """

    def __init__(
        self, dists: Iterable[InstalledDistribution], project: str | Iterable[str]
    ) -> None:
        names = [project] if isinstance(project, str) else list(project)
        keys = {canonical_name(name) for name in names}
        self.old: list[InstalledDistribution] = []
        self.others: list[InstalledDistribution] = []
        for dist in dists:
            (self.old if dist.key in keys else self.others).append(dist)
        self._other_exact: dict[str, list[InstalledDistribution]] = {}
        self._other_below: dict[str, list[InstalledDistribution]] = {}
        #: Directories (and their metadata directories) other distributions claim whole.
        self._other_whole: dict[str, list[InstalledDistribution]] = {}
        self._old_exact: set[str] = set()
        self._old_below: set[str] = set()
        self._namespaces: set[str] = set()
        for dist in self.others:
            for path in (*dist.whole, dist.metadata_path):
                self._other_whole.setdefault(path, []).append(dist)
            for path in dist.claimed():
                self._other_exact.setdefault(path, []).append(dist)
                for anc in _ancestors(path):
                    owners = self._other_below.setdefault(anc, [])
                    if not owners or owners[-1] is not dist:
                        owners.append(dist)
            self._namespaces.update(dist.namespaces)
        for dist in self.old:
            for path in dist.claimed():
                self._old_exact.add(path)
                self._old_below.update(_ancestors(path))
            self._namespaces.update(dist.namespaces)

    def other_owners(self, path: str) -> list[InstalledDistribution]:
        """Other distributions that list *path* itself or claim it whole."""
        return list(self._other_exact.get(os.path.normpath(path), ()))

    def others_keep(self, path: str) -> list[InstalledDistribution]:
        """Other distributions that need *path*: they list it, or claim it or a directory
        above it whole (a distribution known only by its ``top_level.txt`` owns
        everything in its top-level directory).  Such a path is never removed."""
        path = os.path.normpath(path)
        found = list(self._other_exact.get(path, ()))
        for anc in _ancestors(path):
            found.extend(self._other_whole.get(anc, ()))
        return found

    def others_inside_owners(self, path: str) -> list[InstalledDistribution]:
        """Other distributions that list or claim anything strictly below *path*."""
        return list(self._other_below.get(os.path.normpath(path), ()))

    def others_inside(self, path: str) -> bool:
        """True if another distribution lists or claims anything strictly below *path*."""
        return os.path.normpath(path) in self._other_below

    def old_claims(self, path: str) -> bool:
        """True if an installed version of the project lists *path* or something below it."""
        path = os.path.normpath(path)
        return path in self._old_exact or path in self._old_below

    def old_lists(self, path: str) -> bool:
        """True if an installed version of the project lists *path*, or claims it or one
        of its parent directories whole (a metadata directory, a top-level name)."""
        path = os.path.normpath(path)
        if path in self._old_exact:
            return True
        return any(anc in self._old_exact for anc in _ancestors(path))

    def is_namespace(self, path: str) -> bool:
        return os.path.normpath(path) in self._namespaces

    def may_swap_whole(self, path: str) -> bool:
        """A directory may be swapped whole only if the old version of the project
        claims it and no other distribution has anything in it or declares it a
        namespace.  A directory nobody claims is merged into, so that unknown
        contents survive."""
        return (
            self.old_claims(path)
            and not self.others_inside(path)
            and not self.other_owners(path)
            and not self.is_namespace(path)
        )

    def old_files(self) -> set[str]:
        """Every path an installed version of the project lists or claims, metadata included."""
        out: set[str] = set()
        for dist in self.old:
            out.update(dist.claimed())
        return out
