"""The journal: the plan of a transaction, on disk before its first rename.

``<primary destination>/.install-atomic-<txid>.journal`` is JSON holding the
staging directories and every step with the inode identities of its new and
old entries.  It is written to a temporary name, fsynced, renamed into place
and its directory fsynced, so after a crash it is either absent (nothing in
the destination had changed yet) or complete.  Progress needs no further
writes: recovery compares inodes to tell, for each step, which entry is where.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from install_atomic.engine.plan import PRIVATE_PREFIX, Step
from install_atomic.engine.primitives import fsync_path

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
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    created: float = field(default_factory=time.time)
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
            "pid": self.pid,
            "host": self.host,
            "created": self.created,
            "steps": [s.to_json() for s in self.steps],
        }

    def write(self) -> str:
        """Write durably; return the journal's path."""
        self.path = self.path_for(self.primary, self.txid)
        tmp = self.path + ".tmp"
        data = json.dumps(self.to_json(), indent=1).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_path(self.primary)
        return self.path

    def remove(self) -> None:
        """Delete the journal: the transaction is over, its directory fsynced."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return
        fsync_path(os.path.dirname(self.path))


def load(path: str) -> Journal:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown journal format {data.get('format')!r}")
    journal = Journal(
        txid=data["txid"],
        project=data["project"],
        primary=data["primary"],
        lock_path=data["lock_path"],
        stages=list(data["stages"]),
        steps=[Step.from_json(s) for s in data["steps"]],
        pid=int(data["pid"]),
        host=str(data["host"]),
        created=float(data["created"]),
    )
    journal.path = path
    return journal


def find(destination: str) -> list[str]:
    """Journals left in *destination*, oldest name first."""
    try:
        names = os.listdir(destination)
    except FileNotFoundError:
        return []
    return sorted(
        os.path.join(destination, n)
        for n in names
        if n.startswith(PRIVATE_PREFIX) and n.endswith(SUFFIX)
    )
