"""``--report FILE``: what an install did (or, with ``--dry-run``, would do), as JSON.

The document (``"version": "1"``)::

    {
      "version": "1",
      "install_atomic_version": "0.2.0",
      "dry_run": false,
      "environment": {"python": ..., "purelib": ..., "scripts": ..., ...},
      "distributions": [
        {"name": "idna", "old_version": ["3.6"], "new_version": "3.7",
         "requested": true, "wheel": "idna-3.7-py3-none-any.whl",
         "direct_url": null}
      ],
      "added": [...], "swapped": [...], "removed": [...],
      "pending": null
    }

``added``, ``swapped`` and ``removed`` list the commit's renames: each has the
``path`` (as written), its ``kind`` (file, dir, link), the number of files it
holds (``count``) and the ``distributions`` it belongs to (new for added and
swapped entries, old for removed ones).  ``-`` as FILE writes to standard
output.  With nothing to install every list is empty.  A deferred install
(``--defer``) has no renames yet: ``pending`` is then its id, as ``status``
shows it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from install_atomic import __version__
from install_atomic.frontends.wheels.target import Target

if TYPE_CHECKING:
    from install_atomic.frontends.wheels.install import Outcome

ACTIONS = {"add": "added", "swap": "swapped", "remove": "removed"}


def _owners(path: str, files: dict[str, str]) -> list[str]:
    prefix = path + os.sep
    return sorted({d for f, d in files.items() if f == path or f.startswith(prefix)})


def build(out: Outcome, tgt: Target, *, dry_run: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": "1",
        "install_atomic_version": __version__,
        "dry_run": dry_run,
        "environment": {"python": tgt.executable, "python_version": tgt.version,
                        **{k: tgt.final(k) for k in ("purelib", "platlib", "scripts", "data")}},
        "distributions": [
            {
                "name": item.name,
                "old_version": out.old_versions.get(item.key, []),
                "new_version": item.version,
                "requested": item.requested,
                "wheel": os.path.basename(item.wheel) if item.wheel else None,
                "direct_url": item.direct_url,
            }
            for item in out.items
        ],
        "added": [], "swapped": [], "removed": [],
        "pending": out.pending.txid if out.pending is not None else None,
    }
    if out.result is not None:
        for step in out.result.plan.steps:
            files = out.old_files if step.action == "remove" else out.new_files
            doc[ACTIONS[step.action]].append({
                "path": step.dest, "kind": step.kind, "count": step.count,
                "distributions": _owners(step.dest, files),
            })
    return doc


def write(path: str, out: Outcome, tgt: Target, *, dry_run: bool) -> None:
    text = json.dumps(build(out, tgt, dry_run=dry_run), indent=2, sort_keys=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
