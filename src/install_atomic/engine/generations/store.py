"""Adding distributions to the store.

A store entry is made in a private ``store/.tmp-*`` directory, made durable,
then renamed to its key ``<name>-<version>-<digest>``, where the digest is
the SHA-256 of its ``RECORD`` and its file list: an entry is complete or
absent, and its files never change again (interpreters may add bytecode to
its ``__pycache__`` directories for modules installed without it, as in any
site-packages).  The same distribution added twice (the
same wheel installed again) is stored once.

Files are hard links to the staged files (the staging directory is in the
same site-packages), so adding costs one ``link`` per file and no copy; the
staged tree stays whole until the commit is done, so that a deferred
install killed here can still be committed later.
"""

from __future__ import annotations

import csv
import email.parser
import errno
import hashlib
import io
import os
import secrets
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from install_atomic.engine import primitives, staging
from install_atomic.engine.generations.layout import (
    GenerationsError,
    Layout,
    StoreEntry,
    canonical,
    read_entry,
    write_json,
)
from install_atomic.engine.plan import PRIVATE_PREFIX

TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"


@dataclass
class Found:
    """One distribution found in a tree: its files, to be stored."""

    name: str
    version: str
    metadata: str
    record: bytes
    #: (absolute source path, path relative to site)
    files: list[tuple[str, str]] = field(default_factory=list)
    #: (absolute source path, script name)
    scripts: list[tuple[str, str]] = field(default_factory=list)


def _headers(path: str) -> tuple[str, str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        msg = email.parser.HeaderParser().parsestr(f.read())
    return msg.get("Name") or "", msg.get("Version") or ""


def record_paths(record: bytes) -> list[str]:
    """The paths a RECORD lists, as written."""
    rows = csv.reader(io.StringIO(record.decode("utf-8", errors="replace")))
    return [row[0] for row in rows if row and row[0]]


def _walk_files(root: str) -> list[str]:
    """Files and symlinks under *root*, relative, private entries skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        top = dirpath == root
        keep = []
        for d in dirnames:
            if top and d.startswith(PRIVATE_PREFIX):
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                filenames.append(d)
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            if top and name.startswith(PRIVATE_PREFIX):
                continue
            found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return found


def _claim(found: Found, written: Iterable[str], site: str, scripts: str, record_path: str,
           owner: dict[str, Found], script_owner: dict[str, Found]) -> None:
    """Record which distribution owns each path its metadata lists (relative to site)."""
    for path in written:
        final = os.path.normpath(os.path.join(site, path))
        if final.startswith(site + os.sep):
            owner[os.path.relpath(final, site)] = found
        elif os.path.dirname(final) == scripts:
            script_owner[os.path.basename(final)] = found
        else:
            raise GenerationsError(
                f"{record_path} lists {path!r}, outside site-packages ({site}) and the"
                f" scripts directory ({scripts}); a generations environment manages only"
                " those two. Nothing was changed. Install it into a plain environment, or"
                " run 'install-atomic flatten' first.",
                record_path,
            )


def split(
    site_tree: str,
    site: str,
    scripts_tree: str | None,
    scripts: str,
    others: Iterable[tuple[str, str]] = (),
) -> list[Found]:
    """The distributions staged in *site_tree* (to become *site*) and their scripts
    in *scripts_tree* (to become *scripts*).

    Each file goes to the distribution whose ``RECORD`` (or, for the egg-info
    of ``setup.py install_atomic``, ``installed-files.txt``) lists it; a file
    none lists (bytecode) to the distribution owning its source, else to the
    one listing the most files of its directory.  *others* are (staged tree,
    destination) pairs of other directories (data, headers): generations
    manage only site-packages and scripts, so a non-empty one is refused,
    before anything changes.
    """
    for tree, dest in others:
        if _walk_files(tree):
            raise GenerationsError(
                f"the install writes files into {dest}, outside site-packages and the"
                " scripts directory; a generations environment manages only those two."
                " Nothing was changed. Install it into a plain environment, or run"
                " 'install-atomic flatten' first.",
                dest,
            )
    dists: list[Found] = []
    owner: dict[str, Found] = {}
    script_owner: dict[str, Found] = {}
    for name in sorted(os.listdir(site_tree)):
        path = os.path.join(site_tree, name)
        if not name.endswith((".dist-info", ".egg-info")) or not os.path.isdir(path):
            continue
        egg = name.endswith(".egg-info")
        # setup.py install_atomic's egg-info lists its files in installed-files.txt
        # (relative to the egg-info directory); a wheel's dist-info in RECORD.
        record_path = os.path.join(path, "installed-files.txt" if egg else "RECORD")
        try:
            with open(record_path, "rb") as f:
                record = f.read()
        except OSError as exc:
            raise GenerationsError(f"{record_path} cannot be read ({exc.strerror}). Nothing"
                                   " was changed.", record_path) from exc
        if egg:
            dname, version = _headers(os.path.join(path, "PKG-INFO"))
            listed = [line.strip() for line in record.decode("utf-8", "replace").splitlines()
                      if line.strip()]
            listed = [os.path.relpath(os.path.join(site, name, line), site) for line in listed]
            found = Found(dname or name.split("-")[0], version, name, record)
            dists.append(found)
            _claim(found, listed, site, scripts, record_path, owner, script_owner)
            continue
        dname, version = _headers(os.path.join(path, "METADATA"))
        found = Found(dname or name.split("-")[0], version, name, record)
        dists.append(found)
        _claim(found, record_paths(record), site, scripts, record_path, owner, script_owner)
    if not dists:
        return []
    by_dir: dict[str, dict[int, int]] = {}
    for rel, found in owner.items():
        parent = os.path.dirname(rel)
        while True:
            counts = by_dir.setdefault(parent, {})
            counts[id(found)] = counts.get(id(found), 0) + 1
            if not parent:
                break
            parent = os.path.dirname(parent)
    by_id = {id(d): d for d in dists}
    for rel in _walk_files(site_tree):
        found_by = owner.get(rel)
        if found_by is None:
            parent = os.path.dirname(rel)
            if os.path.basename(parent) == "__pycache__":
                parent = os.path.dirname(parent)
                source = os.path.join(parent, os.path.basename(rel).split(".", 1)[0] + ".py")
                found_by = owner.get(source)
        if found_by is None:
            counts = by_dir.get(parent) or by_dir.get("", {})
            found_by = by_id[max(counts, key=counts.__getitem__)] if counts else dists[0]
        found_by.files.append((os.path.join(site_tree, rel), rel))
    if scripts_tree is not None and os.path.isdir(scripts_tree):
        for rel in _walk_files(scripts_tree):
            if os.sep in rel:
                raise GenerationsError(
                    f"the install writes {rel} into a subdirectory of {scripts}; a"
                    " generations environment links only plain scripts. Nothing was"
                    " changed.",
                    os.path.join(scripts, rel),
                )
            found_by = script_owner.get(rel, dists[0])
            found_by.scripts.append((os.path.join(scripts_tree, rel), rel))
    return dists


def _link_or_copy(src: str, dst: str, copy: bool) -> None:
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return
    if not copy:
        try:
            os.link(src, dst, follow_symlinks=False)
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                raise
    shutil.copy2(src, dst, follow_symlinks=False)


def add(layout: Layout, found: Found, *, durable: bool = True, copy: bool = False) -> StoreEntry:
    """Put *found* into the store (or find it there); return its entry."""
    files = sorted(found.files, key=lambda item: item[1])
    scripts = sorted(found.scripts, key=lambda item: item[1])
    digest = hashlib.sha256(found.record)
    for _, rel in files:
        digest.update(b"\0f" + os.fsencode(rel))
    for _, name in scripts:
        digest.update(b"\0s" + os.fsencode(name))
    key = f"{canonical(found.name)}-{found.version or 'unknown'}-{digest.hexdigest()[:12]}"
    key = "".join(c if c.isalnum() or c in "._+-" else "_" for c in key)
    final = layout.entry_path(key)
    if os.path.isdir(final):
        return read_entry(layout, key)
    os.makedirs(layout.store, 0o755, exist_ok=True)
    tmp = os.path.join(layout.store, f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")
    os.mkdir(tmp, 0o755)
    try:
        made: set[str] = set()
        for src, rel in files:
            dst = os.path.join(tmp, "site", rel)
            parent = os.path.dirname(dst)
            if parent not in made:
                os.makedirs(parent, 0o755, exist_ok=True)
                made.add(parent)
            _link_or_copy(src, dst, copy)
        if scripts:
            os.mkdir(os.path.join(tmp, "bin"), 0o755)
            for src, name in scripts:
                _link_or_copy(src, os.path.join(tmp, "bin", name), copy)
        entry = StoreEntry(key, found.name, found.version, [rel for _, rel in files],
                           [name for _, name in scripts], found.metadata)
        write_json(os.path.join(tmp, "entry.json"), entry.to_json(), durable=False)
        if durable:
            primitives.fsync_tree(tmp)
        try:
            primitives.rename_noreplace(tmp, final)
        except FileExistsError:
            staging.remove_tree(tmp)
            return read_entry(layout, key)
    except BaseException:
        staging.remove_tree(tmp)
        raise
    return entry


def add_all(layout: Layout, dists: Sequence[Found], *, durable: bool = True,
            copy: bool = False) -> list[StoreEntry]:
    entries = [add(layout, found, durable=durable, copy=copy) for found in dists]
    if durable and entries:
        primitives.fsync_path(layout.store)
    return entries
