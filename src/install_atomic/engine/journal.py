"""The journal: the plan of a transaction, on disk before its first rename.

``<primary destination>/.install-atomic-<txid>.journal`` is JSON holding the
staging directories and every step with the inode identities of its new and
old entries.  It is written to a temporary name, fsynced, renamed into place
and its directory fsynced, so after a crash it is either absent (nothing in
the destination had changed yet) or complete.  Progress needs no further
writes: recovery compares inodes to tell, for each step, which entry is where.

A journal is obeyed only if :mod:`install_atomic.engine.trust` believes it
(owned by this user or root, writable by nobody else, a regular file opened
without following a symlink) and every path it names is one a transaction
of this destination could have written (:meth:`Journal.validate`): its
primary is the directory it lies in, stages and steps lie inside its roots,
each backup is a sibling of its entry named after the transaction, each
source maps to its destination through one of its stages.
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
from install_atomic.engine.plan import PRIVATE_PREFIX, Step
from install_atomic.engine.primitives import fsync_path, write_durably
from install_atomic.errors import UntrustedError

SUFFIX = ".journal"
FORMAT = 1


@dataclass
class Journal:
    txid: str
    project: str
    primary: str
    lock_path: str
    stages: list[str]
    steps: list[Step]
    #: The transaction's destinations and install-scheme directories: every entry a
    #: step names lies inside one of them.
    roots: list[str] = field(default_factory=list)
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    created: float = field(default_factory=time.time)
    #: Set (and written) once every rename is made and its directory fsynced, before
    #: the cleanup deletes anything: from then on recovery only rolls forward, even if
    #: another process has since replaced a committed entry (a pyc rewritten).
    committed: bool = False
    path: str = ""

    @staticmethod
    def path_for(primary: str, txid: str) -> str:
        return os.path.join(primary, f"{PRIVATE_PREFIX}-{txid}{SUFFIX}")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "txid": self.txid,
            "project": self.project,
            "primary": self.primary,
            "lock_path": self.lock_path,
            "stages": self.stages,
            "roots": self.roots,
            "pid": self.pid,
            "host": self.host,
            "created": self.created,
            "committed": self.committed,
            "steps": [s.to_json() for s in self.steps],
        }

    def write(self) -> str:
        """Write durably; return the journal's path."""
        self.path = self.path_for(self.primary, self.txid)
        write_durably(self.path, json.dumps(self.to_json(), indent=1).encode())
        return self.path

    def mark_committed(self) -> None:
        """Record durably that every rename was made (see :attr:`committed`)."""
        self.committed = True
        self.write()

    def invalid(self) -> str | None:
        """Why this journal (read from :attr:`path`) must not be obeyed, or None."""
        return _invalid(self)

    def remove(self) -> None:
        """Delete the journal: the transaction is over, its directory fsynced."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return
        fsync_path(os.path.dirname(self.path))


def load(path: str) -> Journal:
    """Read the journal at *path*.

    Raises :class:`~install_atomic.errors.UntrustedError` when the file is not
    trusted or names a path no transaction of its destination could have
    written, ``ValueError`` / ``KeyError`` when it is not a journal at all.
    """
    data = json.loads(trust.read_trusted(path))
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown journal format {data.get('format')!r}")
    stages = [str(s) for s in data["stages"]]
    journal = Journal(
        txid=str(data["txid"]),
        project=str(data["project"]),
        primary=str(data["primary"]),
        lock_path=str(data["lock_path"]),
        stages=stages,
        steps=[Step.from_json(s) for s in data["steps"]],
        # Journals of 0.1.0 have no roots: their destinations are where their stages are.
        roots=[str(r) for r in data.get("roots") or [data["primary"]] + [
            os.path.dirname(s) for s in stages]],
        pid=int(data["pid"]),
        host=str(data["host"]),
        created=float(data["created"]),
        committed=bool(data.get("committed", False)),
    )
    journal.path = path
    reason = journal.invalid()
    if reason is not None:
        raise UntrustedError(trust.untrusted_message(path, reason), path)
    return journal


_TXID = re.compile(r"\d+-[0-9a-f]+")


def _normal(path: str) -> bool:
    return os.path.isabs(path) and os.path.normpath(path) == path


def _invalid_step(step: Step, journal: Journal, backup_name: re.Pattern[str]) -> str | None:
    if step.action not in ("add", "swap", "remove"):
        return f"a step has the unknown action {step.action!r}"
    dest = step.dest
    if not _normal(dest) or not any(trust.inside(dest, r) and dest != r for r in journal.roots):
        return f"the step for {dest!r} lies outside the transaction's directories"
    if step.backup and (
        os.path.dirname(step.backup) != os.path.dirname(dest)
        or not backup_name.fullmatch(os.path.basename(step.backup))
    ):
        return f"the backup {step.backup!r} of {dest} is not one of its own"
    if step.action == "remove":
        return "a removal names a source" if step.source else None
    for stage in journal.stages:
        if trust.inside(step.source, stage) and step.source != stage and (
            os.path.relpath(step.source, stage) == os.path.relpath(dest, os.path.dirname(stage))
        ):
            return None
    return f"the new entry {step.source!r} for {dest} is not in one of its stages"


def _invalid(journal: Journal) -> str | None:
    if os.path.realpath(os.path.dirname(journal.path)) != journal.primary:
        return f"it was written for {journal.primary!r}, not for the directory it is in"
    if not _TXID.fullmatch(journal.txid) or os.path.basename(journal.path) != os.path.basename(
        Journal.path_for(journal.primary, journal.txid)
    ):
        return f"its name does not match its transaction id {journal.txid!r}"
    if journal.primary not in journal.roots or not all(_normal(r) for r in journal.roots):
        return "its list of directories is malformed"
    if not _normal(journal.lock_path) or not journal.lock_path.endswith(".lock"):
        return f"its lock {journal.lock_path!r} is not a lock file"
    for stage in journal.stages:
        if not (
            _normal(stage)
            and os.path.basename(stage).startswith(PRIVATE_PREFIX + "-")
            and any(trust.inside(os.path.dirname(stage), r) for r in journal.roots)
        ):
            return f"its staging directory {stage!r} lies outside its directories"
    backup_name = re.compile(re.escape(f"{PRIVATE_PREFIX}-{journal.txid}-") + r"\d+\.bak")
    for step in journal.steps:
        reason = _invalid_step(step, journal, backup_name)
        if reason is not None:
            return reason
    return None


def find(destination: str) -> list[str]:
    """Journals left in *destination*, oldest name first."""
    try:
        names = os.listdir(destination)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(
        os.path.join(destination, n)
        for n in names
        if n.startswith(PRIVATE_PREFIX) and n.endswith(SUFFIX)
    )
