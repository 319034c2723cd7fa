"""The plan: every rename a transaction will make, computed before any is made.

For each destination root the staged tree is compared with what is there:

* an entry the destination lacks is **added** (one ``rename``, no replace);
* an entry the destination has is **swapped**: a file or a directory that the
  old version of the project owns alone is replaced by one exchange.  A file
  that another distribution lists is a conflict (a warning, or an error with
  ``--strict``) unless both are the same: identical bytes, or two namespace
  ``__init__.py`` files that declare the namespace the same way and do nothing
  else (:func:`namespace_style`), as the pkgutil-style ``backports/__init__.py``
  of backports.functools_lru_cache and backports.weakref, which differ only in
  comments and spelling;
* a directory that another distribution also uses (a namespace such as
  ``backports/``) or that nobody claims is **merged into**: the planner
  recurses and swaps the deepest entries instead;
* an entry of the old version that the new one lacks is **removed** (renamed
  to a hidden backup, deleted after the commit), climbing to the highest
  directory that holds nothing but the old version's files.

Order, which is what a concurrent reader can observe: code and data first,
then scripts, headers and data files, then the new metadata directory, then
the old metadata, then stale files of the old version.  Metadata therefore
never names a version whose code is not yet in place.
"""

from __future__ import annotations

import ast
import filecmp
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from install_atomic.engine.ownership import Ownership, is_metadata_name
from install_atomic.engine.primitives import is_real_dir, same_device
from install_atomic.errors import ConflictError, UnsafePathError

Action = Literal["add", "swap", "remove"]
PRIVATE_PREFIX = ".install-atomic"


@dataclass
class Step:
    """One rename of the plan.  Inode pairs tell recovery which side is where."""

    action: Action
    dest: str
    source: str = ""  # staged entry (add / swap)
    backup: str = ""  # where the old entry goes (swap fallback / remove)
    kind: str = "file"
    new_id: tuple[int, int] | None = None
    old_id: tuple[int, int] | None = None
    metadata: bool = False
    count: int = 1

    @property
    def aside(self) -> str:
        """A second hidden sibling, for the old entry when a swap falls back to renames."""
        return self.backup + "-old" if self.backup else ""

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action,
            "dest": self.dest,
            "source": self.source,
            "backup": self.backup,
            "kind": self.kind,
            "new_id": list(self.new_id) if self.new_id else None,
            "old_id": list(self.old_id) if self.old_id else None,
            "metadata": self.metadata,
            "count": self.count,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Step:
        def ident(value: object) -> tuple[int, int] | None:
            if isinstance(value, list) and len(value) == 2:
                return (int(value[0]), int(value[1]))
            return None

        return cls(
            action=data["action"],  # type: ignore[arg-type]
            dest=str(data["dest"]),
            source=str(data.get("source", "")),
            backup=str(data.get("backup", "")),
            kind=str(data.get("kind", "file")),
            new_id=ident(data.get("new_id")),
            old_id=ident(data.get("old_id")),
            metadata=bool(data.get("metadata", False)),
            count=int(data.get("count", 1)),  # type: ignore[call-overload]
        )

    def describe(self) -> str:
        what = f"directory, {self.count} files" if self.kind == "dir" else self.kind
        verb = {"add": "add   ", "swap": "swap  ", "remove": "remove"}[self.action]
        return f"{verb} {self.dest}  ({what})"


@dataclass
class Conflict:
    """A file the new version ships that another distribution lists."""

    path: str
    owners: list[str]


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    #: For each directory swapped whole: what it held (relative paths) when planned.
    listings: dict[str, frozenset[str]] = field(default_factory=dict)

    def describe(self) -> list[str]:
        return [step.describe() for step in self.steps]


def entry_id(path: str) -> tuple[int, int]:
    st = os.lstat(path)
    return (st.st_dev, st.st_ino)


def _kind(path: str) -> tuple[str, int]:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return "symlink", 1
    if stat.S_ISDIR(st.st_mode):
        count = sum(len(files) for _, _, files in os.walk(path))
        return "dir", count
    return "file", 1


def check_inside(path: str, root: str) -> None:
    """Refuse a path that would land outside *root* (``..``, absolute, or via a symlink)."""
    norm = os.path.normpath(os.path.abspath(path))
    root_n = os.path.normpath(os.path.abspath(root))
    existing = norm  # the deepest part that exists: a symlink there may lead out
    while not os.path.lexists(existing) and existing != root_n:
        existing = os.path.dirname(existing)
    real, real_root = os.path.realpath(existing), os.path.realpath(root_n)
    if (
        os.path.commonpath([norm, root_n]) != root_n
        or os.path.commonpath([real, real_root]) != real_root
    ):
        raise UnsafePathError(
            f"refusing to install {path}: it is outside the destination {root}. "
            "Check the project's data_files and package_dir for '..' or absolute paths.",
            path,
        )


class Planner:
    """Builds a :class:`Plan` for staged roots against an :class:`Ownership`."""

    def __init__(
        self,
        ownership: Ownership,
        backup_name: BackupNamer,
        relocate: Callable[[str, str], str] | None = None,
    ) -> None:
        self.own = ownership
        self.backup_name = backup_name
        self.relocate = relocate
        self.new_final: set[str] = set()
        self.primary = ""
        self.swapped_dirs: list[str] = []
        self.listings: dict[str, frozenset[str]] = {}

    def _walk(self, stage: str, dest: str, out: list[Step], conflicts: list[Conflict]) -> None:
        for name in sorted(os.listdir(stage)):
            if name.startswith(PRIVATE_PREFIX):
                continue
            src = os.path.join(stage, name)
            dst = os.path.join(dest, name)
            self.new_final.add(dst)
            if self.relocate is not None and os.path.isdir(dest) and not same_device(src, dest):
                # A mount point inside the destination: a rename would fail with EXDEV.
                self._mark_tree(src, dst)
                src = self.relocate(src, dest)
            if not os.path.lexists(dst):
                kind, count = _kind(src)
                self._mark_tree(src, dst)
                out.append(Step("add", dst, src, kind=kind, count=count, new_id=entry_id(src)))
                continue
            if (
                is_real_dir(src)
                and os.path.islink(dst)
                and os.path.isdir(dst)
                and (self.own.others_inside(dst) or self.own.is_namespace(dst))
            ):
                owners = sorted({d.name for d in self.own.others_inside_owners(dst)})
                raise ConflictError(
                    f"{dst} is a symbolic link to a directory that other distributions"
                    f" ({', '.join(owners) or 'a namespace'}) also use; install-atomic will"
                    " neither replace it (their files would vanish) nor write through it."
                    " Nothing was changed. Replace the link by a real directory, or"
                    " uninstall the others first.",
                    dst,
                )
            if is_real_dir(src) and is_real_dir(dst) and not self._swappable(dst):
                if self.own.other_owners(dst):
                    conflicts.append(Conflict(dst, [d.name for d in self.own.other_owners(dst)]))
                self._walk(src, dst, out, conflicts)
                continue
            kind, count = _kind(src)
            if (
                kind != "dir"
                and self.own.other_owners(dst)
                and "__pycache__" not in dst.split(os.sep)
                and not _equivalent(src, dst)
            ):
                owners = [d.name for d in self.own.other_owners(dst)]
                conflicts.append(Conflict(dst, owners))
            if kind == "dir":
                self.swapped_dirs.append(dst)
                self._mark_tree(src, dst)
                if is_real_dir(dst):
                    self.listings[dst] = _listing(dst)
            out.append(
                Step(
                    "swap",
                    dst,
                    src,
                    backup=self.backup_name(dst),
                    kind=kind,
                    count=count,
                    new_id=entry_id(src),
                    old_id=entry_id(dst),
                )
            )

    def _swappable(self, dst: str) -> bool:
        """May the existing directory *dst* be replaced whole, by one exchange?

        Only if the old version of the project owns it (see
        :meth:`Ownership.may_swap_whole`) and either it is a top-level entry of the
        library directory (a package: unlisted caches inside go with it) or every
        file below it is the old version's.  ``<prefix>/share``, say, is merged into.
        """
        if not self.own.may_swap_whole(dst) or os.path.ismount(dst):
            return False  # a mount point cannot be renamed: merge into it
        return os.path.dirname(dst) == self.primary or self._holds_only_old(dst)

    def _mark_tree(self, src: str, dst: str) -> None:
        if not is_real_dir(src):
            return
        for dirpath, dirnames, filenames in os.walk(src):
            rel = os.path.relpath(dirpath, src)
            base = os.path.normpath(os.path.join(dst, rel))
            for name in dirnames + filenames:
                self.new_final.add(os.path.join(base, name))

    def _covered(self, path: str) -> bool:
        return any(path.startswith(d + os.sep) for d in self.swapped_dirs)

    def _removal_top(self, path: str, stops: set[str]) -> str:
        top = path
        parent = os.path.dirname(top)
        while (
            parent not in stops
            and parent != os.path.dirname(parent)
            and not os.path.ismount(parent)
            and parent not in self.new_final
            and self.own.old_claims(parent)
            and not self.own.others_inside(parent)
            and not self.own.other_owners(parent)
            and not self.own.is_namespace(parent)
            and self._holds_only_old(parent)
        ):
            top, parent = parent, os.path.dirname(parent)
        return top

    def _holds_only_old(self, directory: str) -> bool:
        """True if every file below *directory* is listed (or claimed whole) by the old
        version, bytecode caches aside: only then may the directory go in one rename."""
        for dirpath, dirnames, filenames in os.walk(directory):
            if "__pycache__" in dirpath.split(os.sep):
                continue
            links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
            for name in filenames + links:
                if not self.own.old_lists(os.path.join(dirpath, name)):
                    return False
        return True

    def plan(
        self, roots: Sequence[tuple[str, str]], primary: str, extra_stops: Iterable[str] = ()
    ) -> Plan:
        """*roots* are (staging directory, destination) pairs; *primary* is the
        destination that receives the metadata directory."""
        self.primary = os.path.normpath(primary)
        code: list[Step] = []
        meta: list[Step] = []
        conflicts: list[Conflict] = []
        for stage, dest in roots:
            steps: list[Step] = []
            self._walk(stage, dest, steps, conflicts)
            for step in steps:
                in_primary = os.path.dirname(step.dest) == os.path.normpath(primary)
                if in_primary and is_metadata_name(os.path.basename(step.dest)):
                    step.metadata = True
                    meta.append(step)
                else:
                    code.append(step)
        # Never climb to a destination or anything above one.
        stops: set[str] = set()
        recorded = [r for dist in self.own.old for r in dist.roots]
        for top_dir in [d for _, d in roots] + list(extra_stops) + recorded:
            current = os.path.normpath(top_dir)
            while current not in stops:
                stops.add(current)
                current = os.path.dirname(current)
        removals: dict[str, Step] = {}
        for path in sorted(self.own.old_files()):
            if path in self.new_final or self._covered(path) or not os.path.lexists(path):
                continue
            if self.own.others_keep(path):
                continue  # never delete what another distribution lists or claims
            link = _link_above(path, stops)
            top = link if link is not None else self._removal_top(path, stops)
            if top in removals or top in self.new_final:
                continue
            kind, count = _kind(top)
            removals[top] = Step(
                "remove",
                top,
                backup=self.backup_name(top),
                kind=kind,
                count=count,
                old_id=entry_id(top),
                metadata=is_metadata_name(os.path.basename(top)),
            )
        tops = sorted(removals)
        pruned = [
            removals[t] for t in tops if not any(t.startswith(o + os.sep) for o in tops if o != t)
        ]
        old_meta = [s for s in pruned if s.metadata]
        stale = [s for s in pruned if not s.metadata]
        return Plan(code + meta + old_meta + stale, conflicts, self.listings)


class BackupNamer:
    """Hidden sibling names for entries moved aside: ``.install-atomic-<txid>-<n>``.

    A sibling is always on the same filesystem as the entry, so moving aside is
    one rename that cannot fail with EXDEV.
    """

    def __init__(self, txid: str) -> None:
        self.txid = txid
        self.n = 0

    def __call__(self, path: str) -> str:
        self.n += 1
        return os.path.join(os.path.dirname(path), f"{PRIVATE_PREFIX}-{self.txid}-{self.n}.bak")


def _link_above(path: str, stops: set[str]) -> str | None:
    """The highest symlink between the stops and *path* (exclusive), if any.

    A listed file reached through a link (a developer's checkout linked in
    place of the package) is not ours to delete: only the link goes.
    """
    found = None
    current = os.path.dirname(path)
    while current not in stops and current != os.path.dirname(current):
        if os.path.islink(current):
            found = current
        current = os.path.dirname(current)
    return found


def _listing(directory: str) -> frozenset[str]:
    """Every entry below *directory*, relative to it (bytecode caches aside)."""
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        rel = os.path.relpath(dirpath, directory)
        out.update(os.path.normpath(os.path.join(rel, n)) for n in dirnames + filenames)
    return frozenset(out)


def _identical(a: str, b: str) -> bool:
    try:
        return os.path.isfile(a) and os.path.isfile(b) and filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False



def _equivalent(a: str, b: str) -> bool:
    """May the file *b* of another distribution be replaced by *a* without a conflict?"""
    if _identical(a, b):
        return True
    if os.path.basename(a) != "__init__.py" or os.path.basename(b) != "__init__.py":
        return False
    style = namespace_style(a)
    return style is not None and style == namespace_style(b)


#: Largest ``__init__.py`` read to decide whether it only declares a namespace.
_MAX_NAMESPACE_INIT = 64 * 1024


def namespace_style(path: str) -> frozenset[str] | None:
    """How the ``__init__.py`` at *path* declares a namespace package, if that is all
    it does: ``{"pkgutil"}`` (``__path__ = extend_path(__path__, __name__)``),
    ``{"pkg_resources"}`` (``declare_namespace(__name__)``) or both (one with the
    other as a fallback).  None when it does anything else or cannot be read.

    Comments, docstrings, ``pass``, the imports of ``pkgutil`` / ``pkg_resources`` /
    their functions, and ``try``/``except`` around the declarations are allowed;
    any other statement makes the file more than a declaration."""
    if not os.path.isfile(path) or os.path.islink(path):
        return None
    try:
        with open(path, "rb") as f:
            source = f.read(_MAX_NAMESPACE_INIT + 1)
        if len(source) > _MAX_NAMESPACE_INIT:
            return None
        tree = ast.parse(source, filename=path)
    except (OSError, SyntaxError, ValueError):
        return None
    found: set[str] = set()
    if not _only_declarations(tree.body, found, top=True) or not found:
        return None
    return frozenset(found)


_NAMESPACE_MODULES = frozenset({"pkgutil", "pkg_resources"})


def _only_declarations(body: list[ast.stmt], found: set[str], *, top: bool = False) -> bool:
    for index, node in enumerate(body):
        if top and index == 0 and _is_docstring(node):
            continue
        if isinstance(node, ast.Pass):
            continue
        if isinstance(node, ast.Import):
            if any(alias.name not in _NAMESPACE_MODULES for alias in node.names):
                return False
            continue
        if isinstance(node, ast.ImportFrom):
            if node.module not in _NAMESPACE_MODULES or node.level:
                return False
            if any(a.name not in ("extend_path", "declare_namespace") for a in node.names):
                return False
            continue
        if isinstance(node, ast.Try):
            handlers = [stmt for h in node.handlers for stmt in h.body]
            if not all(
                _only_declarations(part, found)
                for part in (node.body, handlers, node.orelse, node.finalbody)
            ):
                return False
            continue
        if isinstance(node, ast.Assign) and _is_extend_path(node):
            found.add("pkgutil")
            continue
        if isinstance(node, ast.Expr) and _is_declare_namespace(node.value):
            found.add("pkg_resources")
            continue
        return False
    return True


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _called(call: ast.expr, function: str) -> bool:
    """*call* is ``function(...)``, ``pkgutil.function(...)`` or
    ``__import__("pkgutil").function(...)`` (or the same with ``pkg_resources``), with
    the arguments ``__path__, __name__`` (``extend_path``) or ``__name__``
    (``declare_namespace``)."""
    if not isinstance(call, ast.Call) or call.keywords:
        return False
    func = call.func
    named = (isinstance(func, ast.Name) and func.id == function) or (
        isinstance(func, ast.Attribute) and func.attr == function and _is_module(func.value)
    )
    wanted = ["__path__", "__name__"] if function == "extend_path" else ["__name__"]
    args = [a.id for a in call.args if isinstance(a, ast.Name)]
    return named and len(call.args) == len(wanted) and args == wanted


def _is_module(node: ast.expr) -> bool:
    """``pkgutil``, ``pkg_resources``, or ``__import__`` of one of them."""
    if isinstance(node, ast.Name):
        return node.id in _NAMESPACE_MODULES
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "__import__"
        and not node.keywords
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value in _NAMESPACE_MODULES
    )


def _is_extend_path(node: ast.Assign) -> bool:
    return (
        len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == "__path__"
        and _called(node.value, "extend_path")
    )


def _is_declare_namespace(value: ast.expr) -> bool:
    return _called(value, "declare_namespace")
