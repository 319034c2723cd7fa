"""Write one wheel into the transaction's staging directories, to the specification.

pypa/installer reads the wheel (``WHEEL``, ``.data/`` mapping, entry points,
``#!python`` shebangs) and validates ``RECORD``; :class:`StagedDestination` is
the installer "destination" that writes each file into the staging directory
of its final directory, never anywhere else, and keeps the record entries.
``RECORD`` itself is written by :meth:`StagedDestination.write_record` once
the staged tree has been byte-compiled, so that it lists every installed file,
bytecode included, with paths relative to where the metadata will be.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import posixpath
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from installer import install as installer_install
from installer.records import Hash, RecordEntry
from installer.scripts import Script
from installer.sources import WheelFile
from installer.utils import copyfileobj_with_hashing, fix_shebang, parse_metadata_file
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from install_atomic.engine.ownership import ROOTS_FILE
from install_atomic.engine.staging import PREFIX as PRIVATE_PREFIX
from install_atomic.errors import InstallAtomicError, StagingError, UnsafePathError
from install_atomic.frontends.wheels.target import Target

Logger = Callable[[str], None]
#: Written into each distribution's ``INSTALLER`` (PEP 376/627).
INSTALLER_NAME = "install-atomic"


class WheelError(InstallAtomicError):
    """A wheel is corrupt, tampered with, or not for this interpreter."""


class StagedDestination:
    """An installer destination that writes into staging directories.

    *stage_for* maps a final directory (as written, ``--root`` applied) to its
    staging directory (:meth:`Transaction.stage`).  *claimed* maps each staged
    path written so far in this transaction to the distribution that wrote it:
    two distributions shipping the same file is allowed when the contents are
    identical (a shared namespace ``__init__.py``) and warned about otherwise,
    the later one winning, as with pip.
    """

    def __init__(
        self,
        dist: str,
        target: Target,
        stage_for: Callable[[str], str],
        claimed: dict[str, str],
        warn: Logger,
    ) -> None:
        self.dist = dist
        self.target = target
        self.stage_for = stage_for
        self.claimed = claimed
        self.warn = warn
        self.records: list[tuple[str, RecordEntry]] = []
        self._stages: dict[str, str] = {}
        self.root_scheme = "purelib"
        self.record_path = ""

    # -- the installer's destination protocol --------------------------------------
    def write_file(
        self, scheme: str, path: str | os.PathLike[str], stream: BinaryIO, is_executable: bool
    ) -> RecordEntry:
        path_ = os.fspath(path)
        if scheme == "scripts":
            with fix_shebang(stream, self.target.executable) as fixed:
                return self._write(scheme, path_, fixed, is_executable)
        return self._write(scheme, path_, stream, is_executable)

    def write_script(self, name: str, module: str, attr: str, section: str) -> RecordEntry:
        script = Script(name, module, attr, section)  # type: ignore[arg-type]
        script_name, data = script.generate(self.target.executable, "posix")
        with io.BytesIO(data) as stream:
            return self._write("scripts", script_name, stream, True)

    def finalize_installation(
        self, scheme: str, record_file_path: str, records: Iterable[tuple[str, RecordEntry]]
    ) -> None:
        self.root_scheme = scheme
        self.record_path = record_file_path
        self.records = list(records)

    # -- writing -------------------------------------------------------------------
    def final_dir(self, scheme: str) -> str:
        return os.path.normpath(self.target.final(scheme, self.dist))

    def staged(self, scheme: str, path: str) -> str:
        """The staged location of *path* (a wheel path inside *scheme*)."""
        norm = posixpath.normpath(path)
        parts = norm.split("/")
        if norm.startswith("/") or ".." in parts or norm in ("", ".") or "\\" in norm:
            raise UnsafePathError(
                f"the wheel of {self.dist} names {path!r}, which would land outside"
                f" {self.final_dir(scheme)}; refusing it. Nothing was changed.",
                path,
            )
        if any(p.startswith(PRIVATE_PREFIX) for p in parts) or parts[0] == ".lock":
            raise UnsafePathError(
                f"the wheel of {self.dist} names {path!r}, a name install-atomic reserves for"
                " its staging directories, journals and lock; refusing it. Nothing was"
                " changed.",
                path,
            )
        return os.path.join(self._stage_of(scheme), *parts)

    def _stage_of(self, scheme: str) -> str:
        stage = self._stages.get(scheme)
        if stage is None:
            stage = self._stages[scheme] = self.stage_for(self.final_dir(scheme))
        return stage

    def _write(self, scheme: str, path: str, stream: BinaryIO, executable: bool) -> RecordEntry:
        staged = self.staged(scheme, path)
        os.makedirs(os.path.dirname(staged), exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        mode = 0o777 if executable else 0o666  # less the umask, as pip's files
        earlier = self.claimed.get(staged)
        if earlier is not None:
            data = stream.read()
            with open(staged, "rb") as f:
                same = f.read() == data
            if not same:
                self.warn(
                    f"warning: {self.final_path(scheme, path)} is shipped by both {earlier}"
                    f" and {self.dist}; {self.dist}'s copy is installed (as pip would)"
                )
                os.unlink(staged)
            stream = io.BytesIO(data)
            if same:
                digest = hashlib.sha256(data).digest()
                return RecordEntry(path, Hash("sha256", _b64(digest)), len(data))
        fd = os.open(staged, flags, mode)
        with os.fdopen(fd, "wb") as f:
            value, size = copyfileobj_with_hashing(stream, f, "sha256")
        self.claimed[staged] = self.dist
        return RecordEntry(path, Hash("sha256", value), size)

    def final_path(self, scheme: str, path: str) -> str:
        return os.path.join(self.final_dir(scheme), *posixpath.normpath(path).split("/"))

    # -- RECORD ---------------------------------------------------------------------
    def installed_paths(self) -> list[str]:
        """Final (written) paths of every file this wheel put in the stage."""
        return [self.final_path(scheme, rec.path) for scheme, rec in self.records]

    def write_record(self, levels: Sequence[int]) -> list[str]:
        """Write RECORD into the staged ``.dist-info``; return every final path it lists."""
        base = self.final_dir(self.root_scheme)
        rows: list[tuple[str, str, str]] = []
        finals: list[str] = []

        def add(final: str, hash_: str = "", size: str = "") -> None:
            rel = os.path.relpath(final, base).replace(os.sep, "/")
            rows.append((rel, hash_, size))
            finals.append(final)

        for scheme, rec in self.records:
            final = self.final_path(scheme, rec.path)
            add(final, str(rec.hash_) if rec.hash_ else "",
                str(rec.size) if rec.size is not None else "")
            if scheme in ("purelib", "platlib") and rec.path.endswith(".py"):
                for level in levels:
                    pyc = _pyc_name(rec.path, self.target.cache_tag, level)
                    if os.path.exists(self.staged(scheme, pyc)):
                        add(self.final_path(scheme, pyc))
        record_final = self.final_path(self.root_scheme, self.record_path)
        add(record_final)
        out = io.StringIO()
        writer = csv.writer(out, delimiter=",", quotechar='"', lineterminator="\n")
        for row in sorted(set(rows)):
            writer.writerow(row)
        staged = self.staged(self.root_scheme, self.record_path)
        with open(staged, "x", encoding="utf-8", newline="") as f:
            f.write(out.getvalue())
        return finals


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _pyc_name(path: str, tag: str, level: int) -> str:
    directory, name = posixpath.split(path)
    stem = name[: -len(".py")]
    opt = "" if level == 0 else f".opt-{level}"
    return posixpath.join(directory, "__pycache__", f"{stem}.{tag}{opt}.pyc")


def check_wheel(path: str, name: str, target: Target) -> None:
    """Refuse a wheel that is not a readable zip, whose RECORD does not list every file,
    that is not the distribution expected, or that the target interpreter cannot use
    (tags, Requires-Python).  Nothing is written.  Each file's hash and size are
    checked against the RECORD as it is unpacked (:func:`stage_wheel`), so the
    archive is read and hashed once."""
    filename = os.path.basename(path)
    try:
        dist, version, _, tags = parse_wheel_filename(filename)
    except ValueError as exc:
        raise WheelError(f"{path} is not a wheel file name: {exc}", path) from exc
    if canonicalize_name(dist) != canonicalize_name(name):
        raise WheelError(f"{path} holds {dist}, not {name}; refusing it.", path)
    if target.tags is not None and not {str(t) for t in tags} & set(target.tags):
        raise WheelError(
            f"{filename} is not for the target interpreter {target.executable} (Python"
            f" {target.version}); none of its tags ({', '.join(sorted(map(str, tags)))}) is"
            " supported there. Nothing was changed. Use a wheel built for it, or its sdist.",
            path,
        )
    try:
        with WheelFile.open(Path(path)) as source:
            source.validate_record(validate_contents=False)
            metadata = parse_metadata_file(source.read_dist_info("METADATA"))
    except Exception as exc:  # zipfile.BadZipFile, a RECORD mismatch, no METADATA
        raise WheelError(_corrupt(path, exc), path) from exc
    requires = metadata.get("Requires-Python")
    if requires:
        try:
            ok = Version(target.version) in SpecifierSet(requires)
        except InvalidSpecifier:
            ok = True
        if not ok:
            raise WheelError(
                f"{name} {version} requires Python {requires}; the target interpreter"
                f" {target.executable} is {target.version}. Nothing was changed.",
                path,
            )


def _corrupt(path: str, exc: BaseException) -> str:
    detail = str(exc).strip() or type(exc).__name__
    return (
        f"{path} is corrupt or was tampered with: {detail}. Nothing was changed; download"
        " or build the wheel again."
    )


class _VerifyingWheel(WheelFile):
    """pypa/installer's wheel source, checking each file against RECORD as installer
    unpacks it (``validate_record`` would read and hash the whole archive first).
    A mismatch stops the install while everything is still in the private staging
    directories: nothing in the environment has changed."""

    def get_contents(self) -> Iterator[Any]:
        name = os.fspath(self._zipfile.filename or "")
        record_path = f"{self.dist_info_dir}/RECORD"
        for record, stream, executable in super().get_contents():
            path, hash_, size = record
            if path == record_path:
                yield record, stream, executable
                continue
            algorithm, _, expected = str(hash_).partition("=")
            if not expected or algorithm not in hashlib.algorithms_guaranteed:
                raise WheelError(_corrupt(name, ValueError(
                    f"RECORD gives no usable hash for {path}")), name)
            data = stream.read()  # one read, hashed here and written from memory
            value = base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest())
            if value.decode("ascii").rstrip("=") != expected or (
                    size and str(len(data)) != str(size)):
                raise WheelError(_corrupt(name, ValueError(
                    f"the hash or size of {path} does not match its RECORD")), name)
            with io.BytesIO(data) as verified:
                yield record, verified, executable


def stage_wheel(
    path: str,
    dest: StagedDestination,
    *,
    requested: bool,
    direct_url: dict[str, object] | None,
    roots: Sequence[str] = (),
) -> None:
    """Unpack the wheel at *path* into *dest*'s staging directories.  *roots* (the
    scheme's directories, as code sees them) go into ``install-atomic-roots.txt``
    so that an uninstall never removes one of them."""
    extra = {"INSTALLER": f"{INSTALLER_NAME}\n".encode()}
    if roots:
        extra[ROOTS_FILE] = "".join(r + "\n" for r in roots).encode()
    if requested:
        extra["REQUESTED"] = b""
    if direct_url is not None:
        extra["direct_url.json"] = json.dumps(direct_url, sort_keys=True).encode()
    try:
        with _VerifyingWheel.open(Path(path)) as source:
            installer_install(source, dest, extra)  # type: ignore[arg-type]
    except InstallAtomicError:
        raise
    except OSError as exc:
        where = exc.filename or path
        raise StagingError(
            f"staging {os.path.basename(path)} failed: {exc.strerror} ({where}). Nothing was"
            " changed in the destination. Free space or fix permissions there, then run the"
            " install again.",
            where,
        ) from exc
    except Exception as exc:  # a wheel that lied in its RECORD, a bad .data dir
        raise WheelError(_corrupt(path, exc), path) from exc
