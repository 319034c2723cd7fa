"""The exceptions install-atomic raises.

One root, :class:`InstallAtomicError`.  Each subclass also inherits the builtin
that matches it, carries the path it is about, and says what to do next.
"""

from __future__ import annotations

import os
from typing import Union

StrPath = Union[str, "os.PathLike[str]"]


class InstallAtomicError(Exception):
    """Root of every error install-atomic raises on purpose."""

    def __init__(self, message: str, path: StrPath | None = None) -> None:
        super().__init__(message)
        self.path = os.fspath(path) if path is not None else None


class DestinationError(InstallAtomicError, OSError):
    """A destination directory is missing, not writable, or not usable."""


class StagingError(InstallAtomicError, OSError):
    """A staging directory could not be created or is not on the destination's filesystem."""


class LockTimeout(InstallAtomicError, TimeoutError):  # noqa: N818 - as filelock.Timeout
    """The destination's lock was held by another process for longer than the timeout."""

    def __init__(self, message: str, path: StrPath, holder: int | None = None) -> None:
        super().__init__(message, path)
        self.holder = holder


class CommitError(InstallAtomicError, OSError):
    """A filesystem call failed while the new version was being put in place.

    By the time this is raised the transaction has been rolled back: the old
    version is in place.  ``rolled_back`` is False only when the rollback itself
    failed; then the journal is kept and ``python -m install_atomic recover``
    finishes the job.
    """

    def __init__(self, message: str, path: StrPath | None = None, *, rolled_back: bool) -> None:
        super().__init__(message, path)
        self.rolled_back = rolled_back


class UnsafePathError(InstallAtomicError, ValueError):
    """A path would land outside the destination it belongs to."""


class ConflictError(InstallAtomicError, ValueError):
    """The new version ships a file that another installed distribution owns (``--strict``)."""


class VerificationError(InstallAtomicError, RuntimeError):
    """The staged version failed its import check or the user's verify command."""


class RecoveryError(InstallAtomicError, RuntimeError):
    """An interrupted transaction could not be rolled back or forward."""


class UntrustedError(InstallAtomicError, PermissionError):
    """A journal, staging directory or owner file that another user could have planted
    or changed (wrong owner, writable by others, a symlink or a FIFO): it is left alone."""
