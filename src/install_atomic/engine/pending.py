"""Pending transactions: staged, checked, and waiting for their commit.

A deferred install (``install-atomic install --defer``, or the Python API in
a process that has the old version loaded) does all its work but the commit:
its staging directories stay inside their destinations, and a record,
``<primary>/.install-atomic-<txid>.pending``, names them.  A later process
commits it (:meth:`install_atomic.engine.transaction.Transaction.resume`):
under the lock, against the destination as it is then, with its own journal.

The record is JSON written durably (:func:`~install_atomic.engine.primitives.write_durably`).
It is obeyed only if :mod:`install_atomic.engine.trust` believes it (this
user's or root's, writable by nobody else) and every path in it is one a
transaction of its directory could have written (:meth:`Record.invalid`).
The lock is never read from it: a committer takes the lock of the
destination, as every install does.

Who may commit it: its staging directories keep their owner files
(:mod:`install_atomic.engine.staging`).  The process that deferred the
install may keep them locked for its whole life (the Python API does, so that
nothing it loaded changes under it); no one can commit the record until that
process, and every child that inherited the descriptors, has exited.

While a record lists a staging directory, recovery never removes it.  A
record whose staging directories are gone (a commit that was rolled back, a
stage removed by hand) is stale: recovery removes it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from install_atomic.engine import trust
from install_atomic.engine.plan import PRIVATE_PREFIX
from install_atomic.engine.primitives import fsync_path, write_durably
from install_atomic.errors import UntrustedError

SUFFIX = ".pending"
FORMAT = 1


@dataclass
class Change:
    """One distribution of a pending transaction: its new version and the old ones."""

    name: str
    new: str
    old: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.old and self.old != [self.new]:
            return f"{self.name} {'/'.join(self.old)} -> {self.new}"
        return f"{self.name} {self.new}"


@dataclass
class Record:
    txid: str
    projects: list[str]
    primary: str
    #: destination -> its staging directory, primary included.
    stages: dict[str, str]
    #: The install scheme's directories (removal never climbs above them).
    stops: list[str] = field(default_factory=list)
    metadata_dir: str = ""
    strict: bool = False
    durable: bool = True
    changes: list[Change] = field(default_factory=list)
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    created: float = field(default_factory=time.time)
    #: Why the last attempt to commit it failed ("" if none was made or it was only
    #: skipped because the lock or a staging directory was busy).
    last_error: str = ""
    path: str = ""

    @staticmethod
    def path_for(primary: str, txid: str) -> str:
        return os.path.join(primary, f"{PRIVATE_PREFIX}-{txid}{SUFFIX}")

    @property
    def description(self) -> str:
        return ", ".join(c.describe() for c in self.changes) or ", ".join(self.projects)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "txid": self.txid,
            "projects": self.projects,
            "primary": self.primary,
            "stages": self.stages,
            "stops": self.stops,
            "metadata_dir": self.metadata_dir or self.primary,
            "strict": self.strict,
            "durable": self.durable,
            "changes": [{"name": c.name, "new": c.new, "old": c.old} for c in self.changes],
            "pid": self.pid,
            "host": self.host,
            "created": self.created,
            "last_error": self.last_error,
        }

    def write(self) -> str:
        """Write (or rewrite) the record durably; return its path."""
        self.path = self.path_for(self.primary, self.txid)
        write_durably(self.path, json.dumps(self.to_json(), indent=1).encode())
        return self.path

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return
        fsync_path(os.path.dirname(self.path))

    def stale(self) -> bool:
        """True when a staging directory it names is gone: it can never be committed."""
        return not all(os.path.isdir(s) and not os.path.islink(s) for s in self.stages.values())

    def invalid(self) -> str | None:
        """Why this record (read from :attr:`path`) must not be obeyed, or None."""
        if os.path.realpath(os.path.dirname(self.path)) != self.primary:
            return f"it was written for {self.primary!r}, not for the directory it is in"
        if not _TXID.fullmatch(self.txid) or os.path.basename(self.path) != os.path.basename(
            self.path_for(self.primary, self.txid)
        ):
            return f"its name does not match its transaction id {self.txid!r}"
        if not self.projects or self.primary not in self.stages:
            return "it names no distribution or no staging directory in its own directory"
        roots = [self.primary, *self.stops]
        if not all(_normal(r) for r in [*roots, self.metadata_dir]):
            return "its list of directories is malformed"
        if not any(trust.inside(self.metadata_dir, r) for r in roots):
            return f"its metadata directory {self.metadata_dir!r} lies outside its directories"
        for dest, stage in self.stages.items():
            if not (
                _normal(dest)
                and _normal(stage)
                and any(trust.inside(dest, r) for r in roots)
                and os.path.dirname(stage) == dest
                and os.path.basename(stage).startswith(PRIVATE_PREFIX + "-")
            ):
                return f"its staging directory {stage!r} is not one of {dest!r}"
        return None


_TXID = re.compile(r"\d+-[0-9a-f]+")


def _normal(path: str) -> bool:
    return os.path.isabs(path) and os.path.normpath(path) == path


def load(path: str) -> Record:
    """Read the record at *path*.

    Raises :class:`~install_atomic.errors.UntrustedError` when the file is not
    trusted or names a path no transaction of its directory could have written,
    and ``ValueError`` / ``KeyError`` / ``TypeError`` when it is no record.
    """
    data = json.loads(trust.read_trusted(path))
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown pending-install format")
    record = Record(
        txid=str(data["txid"]),
        projects=[str(p) for p in data["projects"]],
        primary=str(data["primary"]),
        stages={str(k): str(v) for k, v in dict(data["stages"]).items()},
        stops=[str(s) for s in data["stops"]],
        metadata_dir=str(data["metadata_dir"]),
        strict=bool(data["strict"]),
        durable=bool(data["durable"]),
        changes=[Change(str(c["name"]), str(c["new"]), [str(o) for o in c["old"]])
                 for c in data["changes"]],
        pid=int(data["pid"]),
        host=str(data["host"]),
        created=float(data["created"]),
        last_error=str(data.get("last_error", "")),
    )
    record.path = path
    reason = record.invalid()
    if reason is not None:
        raise UntrustedError(trust.untrusted_message(path, reason), path)
    return record


def find(destination: str) -> list[str]:
    """Pending records in *destination*."""
    try:
        names = os.listdir(destination)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    return [
        os.path.join(destination, n)
        for n in names
        if n.startswith(PRIVATE_PREFIX) and n.endswith(SUFFIX)
    ]


def load_all(destination: str) -> tuple[list[Record], list[tuple[str, str]]]:
    """The trusted records in *destination*, oldest first, and the paths of the others
    with the reason each is left alone."""
    records: list[Record] = []
    refused: list[tuple[str, str]] = []
    for path in find(destination):
        try:
            records.append(load(path))
        except UntrustedError as exc:
            refused.append((path, str(exc)))
        except FileNotFoundError:
            continue  # committed meanwhile
        except (OSError, ValueError, KeyError, TypeError) as exc:
            refused.append((path, f"{path} cannot be read as a pending install: {exc}"))
    records.sort(key=lambda r: (r.created, r.txid))
    return records, refused


def listed_stages(destination: str) -> set[str]:
    """Every staging directory a pending record in *destination* names (records that
    cannot be judged protect nothing: they are never obeyed either)."""
    records, _ = load_all(destination)
    return {stage for r in records for stage in r.stages.values()}
