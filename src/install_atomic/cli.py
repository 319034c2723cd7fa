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
import sys
import sysconfig
from collections.abc import Sequence

from install_atomic import __version__
from install_atomic.engine import recovery, staging
from install_atomic.engine.locking import environment_root
from install_atomic.engine.ownership import canonical_name, scan
from install_atomic.engine.transaction import Transaction
from install_atomic.errors import InstallAtomicError


def _default_destinations() -> list[str]:
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m install_atomic",
        description="Inspect and recover install-atomic transactions.",
    )
    parser.add_argument("--version", action="version", version=f"install-atomic {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("recover", help="finish or undo interrupted installs")
    rec.add_argument("destinations", nargs="*", metavar="DESTINATION")
    rec.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS",
                     help="seconds to wait for the destination lock (default: 60)")
    st = sub.add_parser("status", help="list in-flight or interrupted installs")
    st.add_argument("destinations", nargs="*", metavar="DESTINATION")
    un = sub.add_parser("uninstall", help="remove a distribution atomically")
    un.add_argument("name", metavar="NAME")
    un.add_argument("--target", metavar="DESTINATION",
                    help="the directory holding its metadata (default: site-packages)")
    un.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    un.add_argument("--lock-timeout", type=float, default=300.0, metavar="SECONDS")
    args = parser.parse_args(argv)
    try:
        if args.command == "uninstall":
            return _uninstall(args.name, args.target or sysconfig.get_paths()["purelib"],
                              args.dry_run, args.lock_timeout)
        destinations = args.destinations or _default_destinations()
        if args.command == "status":
            return _status(destinations)
        return _recover(destinations, args.lock_timeout)
    except InstallAtomicError as exc:
        print(f"install_atomic: error: {exc}", file=sys.stderr)
        return 1


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
    if not found:
        print("no interrupted installs")
    return 0


def _scheme_dirs(target: str) -> list[str]:
    """The install-scheme directories of the environment holding *target*: removal
    never climbs to them (a venv's ``include/`` stays, as pip leaves it)."""
    venv = environment_root(target)
    if venv is None:
        return sorted(set(sysconfig.get_paths().values()))
    base = {"base": venv, "platbase": venv, "installed_base": venv, "installed_platbase": venv}
    return sorted(set(sysconfig.get_paths(vars=base).values()))


def _uninstall(name: str, target: str, dry_run: bool, timeout: float) -> int:
    key = canonical_name(name)
    if not any(d.key == key for d in scan(target)):
        print(f"install_atomic: error: {name} is not installed in {target}. Check the name"
              " ('pip list' shows it), or pass --target with the directory holding it.",
              file=sys.stderr)
        return 1
    with Transaction(name, target, lock_timeout=timeout, dry_run=dry_run, log=print,
                     stops=_scheme_dirs(target)) as txn:
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
