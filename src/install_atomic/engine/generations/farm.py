"""Building a generation: a directory of symlinks into the store.

``generations/<N>/site`` links each top-level entry of each distribution to
its store copy.  A directory two distributions share (a namespace package,
``__pycache__``) is a real directory whose entries are linked in turn.  Each
distribution's ``.dist-info`` is a real directory too, linking every file but
``RECORD``, plus a ``SOURCES.txt`` listing its files: ``importlib.metadata``
(``files()`` included) and ``pip list/show/freeze/check`` read it, while
``pip uninstall`` finds no ``RECORD`` and refuses, naming the installer
(``INSTALLER`` says install-atomic), instead of deleting files through the
links into the store, which other generations share.  (uv does not look
beyond site-packages: it does not see these distributions at all.)

The generation is built under a private name (``generations/.build-*``), made
durable, then renamed to its number: it is complete or absent.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence

from install_atomic.engine import primitives, staging
from install_atomic.engine.generations.layout import (
    Generation,
    Layout,
    StoreEntry,
    canonical,
    write_json,
)

BUILD_PREFIX = ".build-"
INSTALLER = "install-atomic\n"

Warn = Callable[[str], None]


class _Farm:
    def __init__(self, layout: Layout, site: str, warn: Warn) -> None:
        self.layout = layout
        self.site = site
        self.warn = warn
        #: farm path -> (store path it links to, entry key) for links made whole
        self.linked: dict[str, tuple[str, str]] = {}
        self.merged: set[str] = set()

    def _link(self, source: str, target: str) -> None:
        os.symlink(os.path.relpath(source, os.path.dirname(target)), target)

    def place(self, source: str, target: str, key: str) -> None:
        """Link *source* (a store path) at *target*, merging directories."""
        source_is_dir = os.path.isdir(source) and not os.path.islink(source)
        if target in self.merged:
            if source_is_dir:
                for name in sorted(os.listdir(source)):
                    self.place(os.path.join(source, name), os.path.join(target, name), key)
            else:
                self.warn(f"warning: {os.path.relpath(target, self.site)} is a directory in"
                          f" this generation and a file in {key}; the file is left out")
            return
        if target in self.linked:
            other, other_key = self.linked[target]
            other_is_dir = os.path.isdir(other) and not os.path.islink(other)
            if source_is_dir and other_is_dir:
                os.unlink(target)
                del self.linked[target]
                os.mkdir(target, 0o755)
                self.merged.add(target)
                for name in sorted(os.listdir(other)):
                    self.place(os.path.join(other, name), os.path.join(target, name), other_key)
                for name in sorted(os.listdir(source)):
                    self.place(os.path.join(source, name), os.path.join(target, name), key)
                return
            if not target.endswith((".pyc", ".pyo")):
                self.warn(f"warning: {os.path.relpath(target, self.site)} is shipped by"
                          f" {other_key} and {key}; this generation uses {key}'s")
            os.unlink(target)
        self._link(source, target)
        self.linked[target] = (source, key)

    def metadata(self, entry: StoreEntry, source: str) -> None:
        """A real ``.dist-info`` directory: links to every file but RECORD, SOURCES.txt.

        An egg-info (``setup.py install_atomic``) is shown as a ``.dist-info``
        too: its ``PKG-INFO`` as ``METADATA``, without ``installed-files.txt``
        (which pip would delete through), with an ``INSTALLER``.
        """
        target = os.path.join(self.site, entry.view)
        os.mkdir(target, 0o755)
        egg = entry.metadata.endswith(".egg-info")
        for name in sorted(os.listdir(source)):
            if name in ("RECORD", "SOURCES.txt", "installed-files.txt"):
                continue
            shown = "METADATA" if egg and name == "PKG-INFO" else name
            self._link(os.path.join(source, name), os.path.join(target, shown))
        if egg and not os.path.lexists(os.path.join(target, "INSTALLER")):
            with open(os.path.join(target, "INSTALLER"), "w", encoding="utf-8") as f:
                f.write(INSTALLER)
        record = os.path.join(entry.metadata, "RECORD")
        meta_files = {os.path.join(entry.metadata, n) for n in (
            "RECORD", "installed-files.txt", "SOURCES.txt")}
        lines = [f if not f.startswith(entry.metadata + os.sep)
                 else os.path.join(entry.view, os.path.relpath(f, entry.metadata))
                 for f in entry.files if f != record and f not in meta_files]
        if egg:
            lines = [os.path.join(entry.view, "METADATA") if
                     f == os.path.join(entry.view, "PKG-INFO") else f for f in lines]
        lines += [os.path.join("..", "bin", s) for s in entry.scripts]
        with open(os.path.join(target, "SOURCES.txt"), "w", encoding="utf-8") as f:
            f.write("".join(f"{line}\n" for line in lines))
        self.merged.add(target)


def build(
    layout: Layout,
    number: int,
    parent: int | None,
    entries: Sequence[StoreEntry],
    *,
    reason: str,
    durable: bool = True,
    warn: Warn,
) -> Generation:
    """Build generation *number* from *entries* (later ones win a conflict)."""
    os.makedirs(layout.generations, 0o755, exist_ok=True)
    tmp = os.path.join(layout.generations,
                       f"{BUILD_PREFIX}{number}-{os.getpid()}-{secrets.token_hex(4)}")
    os.mkdir(tmp, 0o755)
    try:
        site = os.path.join(tmp, "site")
        bin_dir = os.path.join(tmp, "bin")
        os.mkdir(site, 0o755)
        os.mkdir(bin_dir, 0o755)
        farm = _Farm(layout, site, warn)
        scripts: dict[str, str] = {}
        for entry in entries:
            store_site = os.path.join(layout.entry_path(entry.key), "site")
            meta_top = entry.metadata.split(os.sep, 1)[0]
            tops = sorted(os.listdir(store_site)) if os.path.isdir(store_site) else []
            for name in tops:
                if name == meta_top and entry.metadata.endswith((".dist-info", ".egg-info")):
                    farm.metadata(entry, os.path.join(store_site, name))
                else:
                    farm.place(os.path.join(store_site, name), os.path.join(site, name),
                               entry.key)
            for script in entry.scripts:
                if script in scripts:
                    warn(f"warning: the script {script} is shipped by {scripts[script]} and"
                         f" {entry.key}; this generation uses {entry.key}'s")
                    os.unlink(os.path.join(bin_dir, script))
                source = os.path.join(layout.entry_path(entry.key), "bin", script)
                farm._link(source, os.path.join(bin_dir, script))
                scripts[script] = entry.key
        with open(os.path.join(tmp, "pin"), "x"):
            pass
        generation = Generation(
            number,
            parent,
            {canonical(e.name): e.key for e in entries},
            reason=reason,
            versions={e.name: e.version for e in entries},
        )
        write_json(os.path.join(tmp, "generation.json"), generation.to_json(), durable=False)
        if durable:
            primitives.fsync_tree(tmp)
        primitives.rename_noreplace(tmp, layout.generation_path(number))
        if durable:
            primitives.fsync_path(layout.generations)
    except BaseException:
        staging.remove_tree(tmp)
        raise
    return generation

