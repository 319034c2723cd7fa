"""Where a generations environment keeps things, and reading them back.

Everything read here is checked before use: the JSON files must pass
:func:`install_atomic.engine.trust.read_trusted` (a regular file, owned by
this user or root, writable by no one else), store keys and generation
numbers must be plain names, and paths listed in a store entry must stay
inside that entry.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from install_atomic.engine import primitives, trust
from install_atomic.errors import InstallAtomicError, UnsafePathError

#: The directory inside site-packages.
DIRNAME = "install-atomic-generations"
#: The hook's ``.pth`` and ``.start`` files in site-packages (without suffix).
HOOK_NAME = "install-atomic-generations"
#: The hook module copied into site-packages.
HOOK_MODULE = "_install_atomic_generations"
FORMAT = 1
#: Inheritance of a generation by child processes (see :mod:`.startup`).
GENERATION_VAR = "INSTALL_ATOMIC_GENERATION"
INHERIT_VAR = "INSTALL_ATOMIC_INHERIT_GENERATION"

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class GenerationsError(InstallAtomicError):
    """A generations environment cannot do what was asked."""


def canonical(name: str) -> str:
    """PEP 503 normalisation (as :func:`install_atomic.engine.ownership.canonical_name`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Layout:
    """A generations environment: its site-packages and scripts directories."""

    site: str
    scripts: str

    @property
    def root(self) -> str:
        return os.path.join(self.site, DIRNAME)

    @property
    def store(self) -> str:
        return os.path.join(self.root, "store")

    @property
    def generations(self) -> str:
        return os.path.join(self.root, "generations")

    @property
    def current(self) -> str:
        return os.path.join(self.root, "current")

    @property
    def journal(self) -> str:
        return os.path.join(self.root, "journal.json")

    @property
    def config(self) -> str:
        return os.path.join(self.root, "layout.json")

    def generation_path(self, number: int) -> str:
        return os.path.join(self.generations, str(number))

    def entry_path(self, key: str) -> str:
        check_key(key, self.store)
        return os.path.join(self.store, key)

    def script_link(self, name: str) -> str:
        """The link in the scripts directory for script *name*, and what it points to."""
        return os.path.join(self.scripts, name)

    def script_target(self, name: str) -> str:
        return os.path.relpath(os.path.join(self.current, "bin", name), self.scripts)


def check_key(key: str, where: str) -> None:
    if not _KEY.match(key) or key in (".", ".."):
        raise UnsafePathError(
            f"{where} names {key!r}, which is not a plain name; refusing. Something other"
            " than install-atomic wrote there: check who can write to it.",
            where,
        )


def read_json(path: str) -> Any:
    """Parse the trusted JSON file *path*."""
    try:
        return json.loads(trust.read_trusted(path))
    except (ValueError, UnicodeDecodeError) as exc:
        raise GenerationsError(
            f"{path} is not valid JSON ({exc}). Run 'install-atomic recover' on the"
            " environment; if it stays broken, restore it from a backup.",
            path,
        ) from exc


def write_json(path: str, data: Any, durable: bool = True) -> None:
    payload = (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()
    if durable:
        primitives.write_durably(path, payload)
        return
    tmp = path + ".tmp"
    with open(tmp, "xb") as f:
        f.write(payload)
    os.replace(tmp, path)


def find(site: str) -> Layout | None:
    """The generations layout of the site-packages directory *site*, or None."""
    real = os.path.realpath(site)
    config = os.path.join(real, DIRNAME, "layout.json")
    if not os.path.lexists(config):
        return None
    data = read_json(config)
    scripts = data.get("scripts") if isinstance(data, dict) else None
    if isinstance(data, dict) and data.get("site") != real:
        # A copied or moved environment: its scripts directory is another one's.
        raise UnsafePathError(
            f"{config} was made for {data.get('site')!r}, not for {real}; refusing (the"
            " environment was copied or moved, and the scripts directory it names is not"
            " this one's). Nothing was changed. Recreate the environment, or run"
            " 'install-atomic flatten' where it was made.",
            config,
        )
    if data.get("format") != FORMAT or not isinstance(scripts, str) or not os.path.isabs(scripts):
        raise GenerationsError(
            f"{config} is not a layout this version of install-atomic reads (format"
            f" {data.get('format')!r}). Upgrade install-atomic.",
            config,
        )
    return Layout(real, os.path.realpath(scripts))


@dataclass
class StoreEntry:
    """One distribution in the store."""

    key: str
    name: str
    version: str
    #: Its files, relative to ``site``, ``/``-separated.
    files: list[str] = field(default_factory=list)
    #: Names of its scripts (files of ``bin``).
    scripts: list[str] = field(default_factory=list)
    #: Its metadata directory, relative to ``site``.
    metadata: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "files": self.files,
                "scripts": self.scripts, "metadata": self.metadata}

    @property
    def view(self) -> str:
        """Its metadata directory as generations show it: always a ``.dist-info``
        (egg-info from ``setup.py install_atomic`` is shown as one)."""
        if self.metadata.endswith(".egg-info"):
            return f"{re.sub(r'[-_.]+', '_', self.name)}-{self.version}.dist-info"
        return self.metadata


def _relative(path: object, where: str) -> str:
    if not isinstance(path, str) or os.path.isabs(path) or not path:
        raise UnsafePathError(f"{where} lists {path!r}, which is not a relative path;"
                              " refusing", where)
    norm = os.path.normpath(path)
    if norm.startswith("..") or norm == ".":
        raise UnsafePathError(f"{where} lists {path!r}, which leaves its directory;"
                              " refusing", where)
    return norm


def read_entry(layout: Layout, key: str) -> StoreEntry:
    path = os.path.join(layout.entry_path(key), "entry.json")
    data = read_json(path)
    files = [_relative(p, path) for p in data.get("files", [])]
    scripts = [_relative(p, path) for p in data.get("scripts", [])]
    if any(os.sep in s for s in scripts):
        raise UnsafePathError(f"{path} lists a script in a subdirectory; refusing", path)
    return StoreEntry(key, str(data["name"]), str(data["version"]), files, scripts,
                      _relative(data.get("metadata") or ".", path))


def store_keys(layout: Layout) -> list[str]:
    try:
        return sorted(n for n in os.listdir(layout.store) if _KEY.match(n))
    except FileNotFoundError:
        return []


@dataclass
class Generation:
    """What one generation holds."""

    number: int
    parent: int | None
    #: canonical name -> store key
    distributions: dict[str, str]
    created: float = field(default_factory=time.time)
    #: What changed against its parent, in words ("install a 2.0 (was 1.0)").
    reason: str = ""
    #: name -> version, for listing without reading the store.
    versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "parent": self.parent, "created": self.created,
                "reason": self.reason, "distributions": self.distributions,
                "versions": self.versions}


def read_generation(layout: Layout, number: int) -> Generation:
    path = os.path.join(layout.generation_path(number), "generation.json")
    data = read_json(path)
    dists = data.get("distributions", {})
    for key in dists.values():
        check_key(str(key), path)
    parent = data.get("parent")
    return Generation(
        int(data["number"]),
        int(parent) if parent is not None else None,
        {str(k): str(v) for k, v in dists.items()},
        float(data.get("created", 0)),
        str(data.get("reason", "")),
        {str(k): str(v) for k, v in data.get("versions", {}).items()},
    )


def current_number(layout: Layout) -> int | None:
    """The number ``current`` points to, or None when there is none."""
    try:
        target = os.readlink(layout.current)
    except (FileNotFoundError, OSError):
        return None
    head, tail = os.path.split(target)
    if head != "generations" or not tail.isdigit():
        raise UnsafePathError(
            f"{layout.current} points to {target!r}, not to a generation; refusing."
            " Someone other than install-atomic made it: check who can write to"
            f" {layout.root}, then run 'install-atomic switch N' (it replaces the link).",
            layout.current,
        )
    return int(tail)


def numbers(layout: Layout) -> list[int]:
    """The complete generations, oldest first."""
    try:
        names = os.listdir(layout.generations)
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names if n.isdigit()
                  and os.path.exists(os.path.join(layout.generations, n, "generation.json")))


def current(layout: Layout) -> Generation:
    number = current_number(layout)
    if number is None:
        raise GenerationsError(
            f"{layout.root} has no current generation. Run 'install-atomic recover'.",
            layout.root,
        )
    return read_generation(layout, number)


def entries(layout: Layout, generation: Generation) -> Iterator[StoreEntry]:
    for key in sorted(generation.distributions.values()):
        yield read_entry(layout, key)


def managed(site: str) -> list[tuple[str, str, str]]:
    """(name, version, metadata path as seen in the current generation) of every
    distribution the current generation of *site* holds; [] for a plain directory."""
    layout = find(site)
    if layout is None or current_number(layout) is None:
        return []
    generation = current(layout)
    out = []
    for entry in entries(layout, generation):
        out.append((entry.name, entry.version,
                    os.path.join(layout.current, "site", entry.view)))
    return out
