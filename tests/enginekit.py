"""Builders and probes for the engine-level tests (no setuptools, no venvs).

A *destination* here is a fake ``site-packages`` holding installed distributions
written directly by :func:`install_dist`: package files plus a ``.dist-info`` (``METADATA``,
``INSTALLER``, ``RECORD``) or an ``.egg-info`` (``PKG-INFO``, ``top_level.txt``,
``installed-files.txt``).  A new version is written into a transaction's staging
directories by :func:`stage_version`, with byte-identical metadata, so that the tree an
install must produce is simply "the neighbours plus the new version written directly"
(:meth:`Scenario.expected`).

:func:`digest` records every entry below a root, hidden ones included, with its content
hash and permission bits, so two digests are equal only for identical trees.

:class:`Injector` wraps every mutating ``os`` call (and ``primitives._renameat2``) that
touches a sandbox, counts them and makes a chosen one fail: the fault tests enumerate
the calls from a counting run, so a call added to the engine later is covered without
editing the tests.
"""

from __future__ import annotations

import base64
import csv
import errno
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import traceback
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Union

import pytest

from install_atomic.engine import primitives
from install_atomic.engine.transaction import CommitResult, Transaction

StrPath = Union[str, "os.PathLike[str]"]
Kind = Literal["dist-info", "egg-info"]
Digest = dict[str, str]

TESTS_DIR = Path(__file__).resolve().parent
SRC_DIR = TESTS_DIR.parent / "src"
PRIVATE = ".install-atomic"
#: The destination lock file is created by design and never deleted (see locking.py).
LOCK_NAME = ".lock"


# -- trees -------------------------------------------------------------------------------


def digest(root: StrPath, *, ignore_lock: bool = True) -> Digest:
    """``{relpath: description}`` for every entry below *root*, hidden ones included.

    Files are ``file:<sha256>:<mode>``, directories ``dir:<mode>``, symlinks
    ``link:<target>``.  With *ignore_lock*, files named ``.lock`` (the destination
    lock, which exists by design) are left out.
    """
    out: Digest = {}

    def walk(directory: str, prefix: str) -> None:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = prefix + entry.name
            st = entry.stat(follow_symlinks=False)
            mode = oct(stat.S_IMODE(st.st_mode))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "link:" + os.readlink(entry.path)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir:" + mode
                walk(entry.path, rel + "/")
            elif stat.S_ISREG(st.st_mode):
                if ignore_lock and entry.name == LOCK_NAME:
                    continue
                with open(entry.path, "rb") as f:
                    out[rel] = f"file:{hashlib.sha256(f.read()).hexdigest()}:{mode}"
            else:
                out[rel] = f"other:{oct(st.st_mode)}"

    walk(os.fspath(root), "")
    return out


def is_private(rel: str) -> bool:
    return any(part.startswith(PRIVATE) for part in rel.split("/"))


def leftovers(root: StrPath) -> list[str]:
    """Relative paths of every ``.install-atomic*`` entry below *root* (outermost only)."""
    return sorted(
        rel for rel in digest(root) if is_private(rel) and not is_private(rel.rsplit("/", 1)[0])
    )


def without_private(tree: Digest) -> Digest:
    return {rel: value for rel, value in tree.items() if not is_private(rel)}


def diff(actual: Digest, expected: Digest, limit: int = 12) -> str:
    """A short human-readable difference of two digests, for assertion messages."""
    lines = []
    for rel in sorted(set(actual) | set(expected)):
        a, e = actual.get(rel), expected.get(rel)
        if a != e:
            what = "extra" if e is None else "missing" if a is None else "differs"
            lines.append(f"  {what}: {rel}")
    more = f"\n  ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return "\n".join(lines[:limit]) + more


def write_tree(root: StrPath, entries: Mapping[str, bytes]) -> None:
    """Write *entries* (``relpath -> content``; ``..`` allowed) below *root*."""
    for rel, data in entries.items():
        path = os.path.normpath(os.path.join(os.fspath(root), rel))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


# -- distributions -------------------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    raw = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={raw}"


@dataclass
class DistSpec:
    """One version of one distribution.

    *files* maps paths relative to the destination (``../../bin/tool`` for a script two
    levels up) to contents.  *list_files* False writes no RECORD / installed-files.txt,
    so ownership falls back to ``top_level.txt``.
    """

    name: str
    version: str
    files: Mapping[str, bytes]
    kind: Kind = "dist-info"
    top_level: Sequence[str] | None = None
    namespace_packages: Sequence[str] = ()
    list_files: bool = True

    @property
    def metadata_dir(self) -> str:
        safe = self.name.replace("-", "_")
        return f"{safe}-{self.version}.{self.kind}"

    def metadata(self) -> dict[str, bytes]:
        """The metadata files, relative to the destination."""
        meta = self.metadata_dir
        header = f"Metadata-Version: 2.1\nName: {self.name}\nVersion: {self.version}\n".encode()
        top = self.top_level
        if top is None:
            top = sorted(
                {rel.split("/")[0].split(".")[0] for rel in self.files if not rel.startswith("..")}
            )
        out: dict[str, bytes] = {}
        if self.kind == "dist-info":
            out[f"{meta}/METADATA"] = header
            out[f"{meta}/INSTALLER"] = b"pip\n"
            if self.top_level is not None:
                out[f"{meta}/top_level.txt"] = "".join(f"{t}\n" for t in top).encode()
            if self.list_files:
                buf = io.StringIO()
                writer = csv.writer(buf, lineterminator="\n")
                for rel, data in sorted({**self.files, **out}.items()):
                    writer.writerow([rel, _record_hash(data), str(len(data))])
                writer.writerow([f"{meta}/RECORD", "", ""])
                out[f"{meta}/RECORD"] = buf.getvalue().encode()
        else:
            out[f"{meta}/PKG-INFO"] = header
            out[f"{meta}/top_level.txt"] = "".join(f"{t}\n" for t in top).encode()
            if self.namespace_packages:
                text = "".join(f"{n}\n" for n in self.namespace_packages)
                out[f"{meta}/namespace_packages.txt"] = text.encode()
            if self.list_files:
                # Relative to a deep fake root: relpath must not clamp "../.." at "/".
                base = "/d" * 16
                listed = sorted(
                    os.path.relpath(f"{base}/{rel}", f"{base}/{meta}")
                    for rel in {**self.files, **out}
                )
                out[f"{meta}/installed-files.txt"] = "".join(f"{p}\n" for p in listed).encode()
        return out

    def entries(self) -> dict[str, bytes]:
        """Every file of this version (package files and metadata), relative to the destination."""
        return {**self.files, **self.metadata()}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "files": {k: base64.b64encode(v).decode() for k, v in self.files.items()},
            "kind": self.kind,
            "top_level": list(self.top_level) if self.top_level is not None else None,
            "namespace_packages": list(self.namespace_packages),
            "list_files": self.list_files,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DistSpec:
        return cls(
            name=data["name"],
            version=data["version"],
            files={k: base64.b64decode(v) for k, v in data["files"].items()},
            kind=data["kind"],
            top_level=data["top_level"],
            namespace_packages=data["namespace_packages"],
            list_files=data["list_files"],
        )


def install_dist(site: StrPath, spec: DistSpec) -> Path:
    """Write *spec* straight into *site*, as an installer would have; return its metadata dir."""
    os.makedirs(site, exist_ok=True)
    write_tree(site, spec.entries())
    return Path(site) / spec.metadata_dir


def split_root(site: StrPath, rel: str) -> tuple[str, str]:
    """(destination root, path inside it) for *rel*.

    ``../../bin/x`` gives (``<prefix>/bin``, ``x``); ``pkg/x`` gives (*site*, ``pkg/x``).
    """
    parts = rel.split("/")
    ups = 0
    while parts[ups] == "..":
        ups += 1
    if ups == 0:
        return os.path.normpath(os.fspath(site)), rel
    root = os.path.normpath(os.path.join(os.fspath(site), *parts[: ups + 1]))
    return root, "/".join(parts[ups + 1 :])


def staged_entries(site: StrPath, spec: DistSpec) -> dict[str, dict[str, bytes]]:
    """*spec*'s files grouped by destination root, primary (*site*) first."""
    by_root: dict[str, dict[str, bytes]] = {}
    for rel, data in spec.entries().items():
        root, inner = split_root(site, rel)
        by_root.setdefault(root, {})[inner] = data
    primary = os.path.normpath(os.fspath(site))
    return {root: by_root[root] for root in sorted(by_root, key=lambda r: (r != primary, r))}


def stage_version(txn: Transaction, site: StrPath, spec: DistSpec) -> dict[str, str]:
    """Write *spec* into *txn*'s staging directories; return ``{destination: stage}``."""
    by_root = staged_entries(site, spec)
    stages = {root: txn.stage(root) for root in by_root}
    for root, entries in by_root.items():
        write_tree(stages[root], entries)
    return stages


# -- scenarios ------------------------------------------------------------------------------

#: A neighbour distribution: never to be touched by installs of ``demopkg``.
OTHER = DistSpec(
    "other",
    "1.0",
    {"other/__init__.py": b"OTHER = 1\n", "other/util.py": b"def util(): pass\n"},
)

DEMO_V1 = DistSpec(
    "demopkg",
    "1.0",
    {
        "demopkg/__init__.py": b"VERSION = '1.0'\n",
        "demopkg/core.py": b"def core(): return 1\n",
        "demopkg/legacy.py": b"# only in 1.0\n",
        "demopkg/sub/__init__.py": b"",
        "demopkg/sub/deep.py": b"DEEP = 1\n",
        "demopkg_helper.py": b"HELPER = 1\n",
        "../../bin/demo-tool": b"#!/bin/sh\necho 1.0\n",
    },
)

DEMO_V2 = DistSpec(
    "demopkg",
    "2.0",
    {
        "demopkg/__init__.py": b"VERSION = '2.0'\n",
        "demopkg/core.py": b"def core(): return 2\n",
        "demopkg/fresh.py": b"# new in 2.0\n",
        "demopkg/sub/__init__.py": b"",
        "demopkg/sub/deep.py": b"DEEP = 2\n",
        "demopkg_extra.py": b"EXTRA = 2\n",
        "../../bin/demo-tool": b"#!/bin/sh\necho 2.0\n",
    },
    kind="egg-info",
)


@dataclass
class Scenario:
    """A prefix (``<prefix>/lib/site-packages`` and ``<prefix>/bin``) with an old version
    of a project and neighbours installed, and the new version to install."""

    prefix: Path
    new: DistSpec
    old: Sequence[DistSpec] = ()
    neighbours: Sequence[DistSpec] = (OTHER,)
    #: Extra files written into the destination before the old version (e.g. unknown files).
    extra: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def site(self) -> Path:
        return self.prefix / "lib" / "site-packages"

    @property
    def bin(self) -> Path:
        return self.prefix / "bin"

    def build(self) -> Digest:
        """(Re)create the prefix with the old state; return its digest."""
        if self.prefix.exists():
            shutil.rmtree(self.prefix)
        self.site.mkdir(parents=True)
        self.bin.mkdir()
        write_tree(self.site, self.extra)
        for spec in (*self.neighbours, *self.old):
            install_dist(self.site, spec)
        return digest(self.prefix)

    def expected(self, scratch: Path) -> Digest:
        """Digest of the prefix as a perfect install of ``new`` over it would leave it."""
        ref = Scenario(scratch, self.new, (), (*self.neighbours, self.new), self.extra)
        ref.build()
        tree = digest(scratch)
        shutil.rmtree(scratch)
        return tree

    def transaction(self, **kwargs: Any) -> Transaction:
        kwargs.setdefault("log", lambda _m: None)
        kwargs.setdefault("warn", lambda _m: None)
        kwargs.setdefault("lock_timeout", 10.0)
        # The install scheme, as every front end gives it: lib (the primary) and scripts.
        kwargs.setdefault("stops", [str(self.bin)])
        return Transaction(self.new.name, primary=str(self.site), **kwargs)

    def commit(self, **kwargs: Any) -> CommitResult:
        """Install ``new`` with a complete transaction."""
        with self.transaction(**kwargs) as txn:
            stage_version(txn, self.site, self.new)
            return txn.commit()

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": str(self.prefix),
            "new": self.new.to_json(),
            "old": [s.to_json() for s in self.old],
            "neighbours": [s.to_json() for s in self.neighbours],
            "extra": {k: base64.b64encode(v).decode() for k, v in self.extra.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scenario:
        return cls(
            Path(data["prefix"]),
            DistSpec.from_json(data["new"]),
            [DistSpec.from_json(s) for s in data["old"]],
            [DistSpec.from_json(s) for s in data["neighbours"]],
            {k: base64.b64decode(v) for k, v in data["extra"].items()},
        )


def upgrade_scenario(prefix: Path) -> Scenario:
    """demopkg 1.0 (dist-info from pip) next to ``other``; install 2.0 (egg-info)."""
    return Scenario(prefix, DEMO_V2, [DEMO_V1])


# -- crashes ---------------------------------------------------------------------------------


def release_stages(txn: Transaction) -> None:
    """Drop the staging owner locks of *txn* as the kernel does when its process dies."""
    all_stages = getattr(txn, "_all_stages", None)
    for stage in all_stages() if all_stages is not None else txn._stages.values():
        stage.release()


def in_child(body: Callable[[], None]) -> int:
    """Run *body* in a forked child and return the child's exit code.

    The child never returns into the test: it ends with ``os._exit``, running no
    ``finally``, ``__exit__`` or ``except BaseException`` of the engine, exactly as a
    process killed at that instant.  *body* kills itself with ``os._exit(137)``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            body()
        except BaseException:
            traceback.print_exc()
            code = 70
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def exit_after_steps(k: int) -> None:
    """In a child: make ``steps.apply`` kill the process right after the *k*-th step
    (before the first one for 0)."""
    from install_atomic.engine import steps

    real = steps.apply
    made = [0]

    def apply(step: Any) -> None:
        if made[0] >= k:
            os._exit(137)
        real(step)
        made[0] += 1
        if made[0] == k:
            os._exit(137)

    steps.apply = apply  # type: ignore[assignment]


def crash_in_child(scenario: Scenario, k: int, prepare: Callable[[], None] = lambda: None) -> None:
    """Leave *scenario* as an installer killed after *k* steps of its commit leaves it
    (or killed wherever *prepare*, run in the child first, makes it ``os._exit(137)``)."""

    def body() -> None:
        if k >= 0:
            exit_after_steps(k)
        prepare()
        txn = scenario.transaction()
        stage_version(txn, scenario.site, scenario.new)
        txn.commit()

    code = in_child(body)
    if code != 137:
        raise AssertionError(f"the installer was to be killed, but it exited with {code}")


CRASH_DRIVER = textwrap.dedent(
    """
    import json, os, sys
    sys.path[:0] = [{src!r}, {tests!r}]
    from install_atomic.engine import steps
    from enginekit import Scenario, stage_version

    scenario = Scenario.from_json(json.loads(sys.argv[1]))
    k, mode = int(sys.argv[2]), sys.argv[3]
    real = steps.apply
    made = 0

    def stop():
        if mode == "pause":
            print("paused", flush=True)
            sys.stdin.read()
        os._exit(137)

    def apply(step):
        global made
        if made >= k:
            stop()
        real(step)
        made += 1
        if made == k:
            stop()

    steps.apply = apply
    txn = scenario.transaction(**(json.loads(sys.argv[4]) if len(sys.argv) > 4 else {{}}))
    stage_version(txn, str(scenario.site), scenario.new)
    txn.commit()
    print("completed", flush=True)
    """
)


def crash_driver(tmp: Path) -> Path:
    path = tmp / "crash_driver.py"
    path.write_text(CRASH_DRIVER.format(src=str(SRC_DIR), tests=str(TESTS_DIR)))
    return path


@dataclass
class ChildResult:
    pid: int
    returncode: int
    stdout: str
    stderr: str


def run_crashing_commit(scenario: Scenario, k: int, tmp: Path) -> ChildResult:
    """Run the commit in a child process that ``os._exit(137)``s right after step *k*."""
    args = [sys.executable, str(crash_driver(tmp)), json.dumps(scenario.to_json()), str(k), "exit"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    return ChildResult(proc.pid, proc.returncode, out, err)


def start_paused_commit(
    scenario: Scenario, k: int, tmp: Path, **txn_kwargs: Any
) -> subprocess.Popen[str]:
    """Start the commit in a child process that stops after step *k* and waits on stdin;
    returns once it has paused (it still holds the destination lock).  *txn_kwargs*
    (JSON values) go to :meth:`Scenario.transaction`."""
    args = [sys.executable, str(crash_driver(tmp)), json.dumps(scenario.to_json()), str(k), "pause",
            json.dumps(txn_kwargs)]
    proc = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "paused":
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"the paused commit did not pause: {line!r}\n{err}")
    return proc


# -- fault injection -------------------------------------------------------------------------

_WRITE_FLAGS = os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_RDWR
#: ``os`` functions that change the filesystem, by argument kind.
PATH_CALLS = (
    "rename", "replace", "link", "symlink", "unlink", "remove", "rmdir", "mkdir", "chmod",
    "truncate", "utime",
)  # fmt: skip
FD_CALLS = ("fsync", "fdatasync", "write", "ftruncate", "fchmod")


@dataclass(frozen=True)
class Call:
    """One mutating call seen by an :class:`Injector`."""

    index: int
    func: str
    paths: tuple[str, ...]
    flags: int = 0

    def __str__(self) -> str:
        shown = ", ".join(repr(p) for p in self.paths)
        extra = f", flags={self.flags}" if self.func == "_renameat2" else ""
        return f"#{self.index} {self.func}({shown}{extra})"


class Injector:
    """Counts the mutating filesystem calls touching *root*; makes the calls numbered
    *fail_at* (one index or several) raise.

    *err* is the errno, or a function of the :class:`Call` returning one.  With *sticky*,
    every later call of the same function on the same first path fails as well (a
    persistent fault: a bad block, a permission).  Use :meth:`paused` around the test's
    own writes.
    """

    def __init__(
        self,
        root: StrPath,
        fail_at: int | Iterable[int] | None = None,
        err: int | Callable[[Call], int] = errno.EIO,
        *,
        sticky: bool = False,
    ) -> None:
        self.root = os.path.normpath(os.path.abspath(os.fspath(root)))
        if fail_at is None:
            self.fail_at: frozenset[int] = frozenset()
        elif isinstance(fail_at, int):
            self.fail_at = frozenset({fail_at})
        else:
            self.fail_at = frozenset(fail_at)
        self.err = err
        self.sticky = sticky
        self.calls: list[Call] = []
        self.fired: list[Call] = []
        self._fds: dict[int, str] = {}
        self._active = False

    # -- bookkeeping
    def _inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root + os.sep)

    def _resolve(self, path: Any, dir_fd: int | None = None) -> str | None:
        if isinstance(path, int):
            return self._fds.get(path)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        path = os.fspath(path)
        if not os.path.isabs(path):
            if dir_fd is not None:
                base = self._fds.get(dir_fd)
                if base is None:
                    return None
                path = os.path.join(base, path)
            else:
                path = os.path.abspath(path)
        return os.path.normpath(path)

    def _check(self, func: str, paths: Sequence[str | None], flags: int = 0) -> None:
        """Record the call; raise the injected fault if it is the chosen one."""
        if not self._active:
            return
        known = tuple(p for p in paths if p is not None)
        if not known or not any(self._inside(p) for p in known):
            return
        call = Call(len(self.calls), func, known, flags)
        self.calls.append(call)
        fail = call.index in self.fail_at
        if self.sticky and not fail:
            fail = any(f.func == func and f.paths[0] == known[0] for f in self.fired)
        if fail:
            self.fired.append(call)
            code = self.err(call) if callable(self.err) else self.err
            second = known[1] if len(known) > 1 else None
            raise OSError(code, os.strerror(code), known[0], None, second)

    # -- wrappers
    def _wrap_path_call(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        two = name in ("rename", "replace", "link", "symlink")

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if two:
                src = self._resolve(args[0], kwargs.get("src_dir_fd"))
                dst = self._resolve(args[1], kwargs.get("dst_dir_fd"))
                if name == "symlink":
                    src = None  # the link's target is text, not a path being changed
                self._check(name, [dst, src] if name in ("link", "symlink") else [src, dst])
            else:
                self._check(name, [self._resolve(args[0], kwargs.get("dir_fd"))])
            return real(*args, **kwargs)

        return wrapper

    def _wrap_fd_call(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(fd: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(fd, int):
                self._check(name, [self._fds.get(fd)])
            elif hasattr(fd, "fileno"):
                self._check(name, [self._fds.get(fd.fileno())])
            return real(fd, *args, **kwargs)

        return wrapper

    def _wrap_open(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            resolved = self._resolve(path, kwargs.get("dir_fd"))
            if flags & _WRITE_FLAGS:
                self._check("open", [resolved], flags)
            fd: int = real(path, flags, *args, **kwargs)
            if resolved is not None and self._inside(resolved):
                self._fds[fd] = resolved
            return fd

        return wrapper

    def _wrap_close(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(fd: int) -> None:
            self._fds.pop(fd, None)
            real(fd)

        return wrapper

    def _wrap_renameat2(self, real: Callable[[str, str, int], None]) -> Callable[..., None]:
        def wrapper(old: str, new: str, flags: int) -> None:
            self._check("_renameat2", [self._resolve(old), self._resolve(new)], flags)
            real(old, new, flags)

        return wrapper

    @contextmanager
    def installed(self) -> Iterator[Injector]:
        """Patch the calls for the duration of the block (counting and faulting active)."""
        with pytest.MonkeyPatch.context() as mp:
            for name in PATH_CALLS:
                mp.setattr(os, name, self._wrap_path_call(name, getattr(os, name)))
            for name in FD_CALLS:
                if hasattr(os, name):
                    mp.setattr(os, name, self._wrap_fd_call(name, getattr(os, name)))
            mp.setattr(os, "open", self._wrap_open(os.open))
            mp.setattr(os, "close", self._wrap_close(os.close))
            if primitives._renameat2 is not None:
                mp.setattr(primitives, "_renameat2", self._wrap_renameat2(primitives._renameat2))
            self._active = True
            try:
                yield self
            finally:
                self._active = False

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Neither count nor fault calls made in this block (the test's own writes)."""
        was, self._active = self._active, False
        try:
            yield
        finally:
            self._active = was
