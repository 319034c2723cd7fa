"""``python -m install_atomic``: inspect and recover destinations.

``status [DESTINATION ...]``
    list in-flight or interrupted transactions; changes nothing.
``recover [DESTINATION ...]``
    roll interrupted transactions back or forward and remove leftovers.
``uninstall NAME [--target DESTINATION] [--dry-run]``
    remove an installed distribution atomically, keeping every file another
    distribution still lists (a shared namespace ``__init__.py``, say).

DESTINATION defaults to the running interpreter's site-packages.  Installs
themselves go through ``python setup.py install_atomic``.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
from collections.abc import Sequence

from install_atomic import __version__
from install_atomic.engine import recovery, staging
from install_atomic.engine.ownership import canonical_name, scan
from install_atomic.engine.scheme import scheme_dirs
from install_atomic.engine.transaction import DEFAULT_LOCK_TIMEOUT, Transaction
from install_atomic.errors import DestinationError, InstallAtomicError


def _default_destinations() -> list[str]:
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


def _prog() -> str:
    """How the user called us: ``install-atomic`` or ``python -m install_atomic``."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "install-atomic" if name.startswith("install-atomic") else "python -m install_atomic"


_DEST_HELP = (
    "a directory install-atomic installs into (default: this interpreter's site-packages,"
    " {})"
)


def main(argv: Sequence[str] | None = None) -> int:
    default = ", ".join(_default_destinations())
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="Inspect and recover install-atomic transactions, and uninstall"
        " atomically. Installs go through 'python setup.py install_atomic'.",
    )
    parser.add_argument("--version", action="version", version=f"install-atomic {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("recover", help="finish or undo interrupted installs")
    rec.add_argument("destinations", nargs="*", metavar="DESTINATION",
                     help=_DEST_HELP.format(default))
    rec.add_argument("--lock-timeout", type=float, default=DEFAULT_LOCK_TIMEOUT,
                     metavar="SECONDS",
                     help="seconds to wait for the destination lock, as for installs;"
                     f" -1 waits forever (default: {DEFAULT_LOCK_TIMEOUT:g})")
    st = sub.add_parser("status", help="list in-flight, interrupted or untrusted installs")
    st.add_argument("destinations", nargs="*", metavar="DESTINATION",
                    help=_DEST_HELP.format(default))
    un = sub.add_parser("uninstall", help="remove a distribution atomically")
    un.add_argument("name", metavar="NAME", help="the distribution's name, as pip lists it")
    un.add_argument("--target", metavar="DESTINATION",
                    help="the directory holding its metadata (default: site-packages)")
    un.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    un.add_argument("--lock-timeout", type=float, default=DEFAULT_LOCK_TIMEOUT,
                    metavar="SECONDS",
                    help="seconds to wait for the destination lock; -1 waits forever"
                    f" (default: {DEFAULT_LOCK_TIMEOUT:g})")
    args = parser.parse_args(argv)
    try:
        if args.command == "uninstall":
            target = args.target or sysconfig.get_paths()["purelib"]
            _check_directory(target)
            return _uninstall(args.name, target, args.dry_run, args.lock_timeout)
        destinations = args.destinations or _default_destinations()
        for dest in destinations:
            _check_directory(dest)
        if args.command == "status":
            return _status(destinations)
        return _recover(destinations, args.lock_timeout)
    except InstallAtomicError as exc:
        print(f"install_atomic: error: {exc}", file=sys.stderr)
        return 1


def _check_directory(path: str) -> None:
    if not os.path.lexists(path):
        raise DestinationError(
            f"{path} does not exist. Give the directory install-atomic installed into"
            " (a site-packages, say).",
            path,
        )
    if not os.path.isdir(path):
        raise DestinationError(
            f"{path} is not a directory. Give the directory install-atomic installed into"
            " (a site-packages, say), not a file in it.",
            path,
        )


def _status(destinations: list[str]) -> int:
    found = 0
    for dest in destinations:
        for item in recovery.status(dest):
            found += 1
            state = "in progress (lock held)" if item.live else "interrupted"
            print(f"{dest}: {item.project}: {state}, pid {item.pid},"
                  f" {item.done}/{item.steps} renames done ({item.journal})")
        for stage in recovery.stray_stages(dest):
            found += 1
            print(f"{dest}: leftover staging directory {stage}")
        for path, reason in recovery.untrusted(dest):
            found += 1
            print(f"{dest}: not trusted, left alone: {path}: {reason}")
    if not found:
        print("no interrupted installs")
    # Not tied to a destination: the build directories (system temp dir) of this user's
    # installers that were killed, which the next install or recover removes.
    for path in staging.dead_build_dirs():
        print(f"leftover build directory of a killed installer: {path}")
    return 0


def _uninstall(name: str, target: str, dry_run: bool, timeout: float) -> int:
    key = canonical_name(name)
    dists = [d for d in scan(target) if d.key == key]
    if not dists:
        print(f"install_atomic: error: {name} is not installed in {target}. Check the name"
              " ('pip list' shows it), or pass --target with the directory holding it.",
              file=sys.stderr)
        return 1
    with Transaction(name, target, lock_timeout=timeout, dry_run=dry_run, log=print,
                     stops=scheme_dirs(target, dists)) as txn:
        result = txn.commit()
    if not dry_run:
        print(f"uninstalled {name} from {target}: {len(result.plan.steps)} removals")
    return 0


def _recover(destinations: list[str], timeout: float) -> int:
    installs = stages = 0
    for dest in destinations:
        for item in recovery.recover(dest, timeout):
            if item.outcome == "removed abandoned staging directory":
                stages += 1
                print(f"{dest}: removed the abandoned staging directory {item.journal}")
            elif item.outcome in recovery.LEFT_ALONE:
                print(f"{dest}: {item.outcome}: {item.journal}: {item.reason}")
            else:
                installs += 1
                print(f"{dest}: {item.project}: {item.outcome}")
    for path in staging.sweep_build_dirs():
        print(f"removed the build directory of a killed installer: {path}", file=sys.stderr)
    if installs or stages:
        print(f"recovered {installs} interrupted install(s),"
              f" removed {stages} abandoned staging director{'y' if stages == 1 else 'ies'}")
    else:
        print("nothing to recover")
    return 0
