"""``install-atomic`` (also ``python -m install_atomic``): the command line.

``install [options] SPEC ...``
    install wheels, sdists, project directories and requirements (resolved by
    pip) as one atomic transaction; see :mod:`install_atomic.frontends.wheels`.
``status [DESTINATION ...]``
    list in-flight or interrupted transactions; changes nothing.
``recover [DESTINATION ...]``
    roll interrupted transactions back or forward and remove leftovers.
``commit-pending [DESTINATION ...]`` / ``discard-pending [DESTINATION ...]``
    commit now, or drop, the installs deferred by ``install --defer`` or the
    Python API (see :mod:`install_atomic.frontends.deferred`).
``uninstall NAME ... [--target DESTINATION] [--dry-run]``
    remove installed distributions in one transaction, keeping every file
    another distribution still lists (a shared namespace ``__init__.py``, say);
    ``uninstall --manifest FILE`` removes what one ``merge`` installed.
``init --generations [ENV]``, ``flatten``, ``generations``, ``undo``, ``switch N``, ``gc``
    opt an environment into generations and manage them; see
    :mod:`install_atomic.frontends.generations`.
``merge [options] STAGED PREFIX``
    move a staged ``DESTDIR`` tree into a live prefix as one transaction; see
    :mod:`install_atomic.frontends.merge`.

DESTINATION defaults to the running interpreter's site-packages.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
from collections.abc import Sequence

from install_atomic import __version__
from install_atomic.checks import bytecode
from install_atomic.engine import recovery, staging
from install_atomic.engine.generations import layout as generations_layout
from install_atomic.engine.generations import manage as generations_manage
from install_atomic.engine.transaction import DEFAULT_LOCK_TIMEOUT
from install_atomic.errors import DestinationError, InstallAtomicError
from install_atomic.frontends import generations as generations_cli


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
        description="Install Python distributions atomically (many in one transaction),"
        " uninstall them, and inspect or recover interrupted transactions.",
    )
    parser.add_argument("--version", action="version", version=f"install-atomic {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_install(sub)
    _add_merge(sub)
    generations_cli.add_parsers(sub)
    rec = sub.add_parser("recover", help="finish or undo interrupted installs")
    rec.add_argument("destinations", nargs="*", metavar="DESTINATION",
                     help=_DEST_HELP.format(default))
    rec.add_argument("--lock-timeout", type=float, default=DEFAULT_LOCK_TIMEOUT,
                     metavar="SECONDS",
                     help="seconds to wait for the destination lock, as for installs;"
                     f" -1 waits forever (default: {DEFAULT_LOCK_TIMEOUT:g})")
    st = sub.add_parser("status", help="list in-flight, interrupted, pending or untrusted"
                        " installs")
    st.add_argument("destinations", nargs="*", metavar="DESTINATION",
                    help=_DEST_HELP.format(default))
    cp = sub.add_parser("commit-pending", help="commit the installs deferred with --defer (or"
                        " by the Python API) now")
    cp.add_argument("destinations", nargs="*", metavar="DESTINATION",
                    help=_DEST_HELP.format(default))
    cp.add_argument("--lock-timeout", type=float, default=DEFAULT_LOCK_TIMEOUT,
                    metavar="SECONDS", help="seconds to wait for the destination lock;"
                    f" -1 waits forever (default: {DEFAULT_LOCK_TIMEOUT:g})")
    dp = sub.add_parser("discard-pending", help="drop deferred installs: the installed"
                        " versions stay")
    dp.add_argument("destinations", nargs="*", metavar="DESTINATION",
                    help=_DEST_HELP.format(default))
    dp.add_argument("--id", dest="ids", action="append", default=[], metavar="ID",
                    help="drop only this pending install (its id, as 'status' shows it;"
                    " repeatable; default: all)")
    dp.add_argument("--lock-timeout", type=float, default=DEFAULT_LOCK_TIMEOUT,
                    metavar="SECONDS", help="seconds to wait for the destination lock;"
                    f" -1 waits forever (default: {DEFAULT_LOCK_TIMEOUT:g})")
    un = sub.add_parser("uninstall", help="remove distributions atomically, in one transaction")
    un.add_argument("names", nargs="*", metavar="NAME",
                    help="a distribution's name, as pip lists it")
    un.add_argument("--manifest", metavar="FILE",
                    help="remove what the merge that wrote this manifest installed"
                    " (install-atomic merge --manifest), instead of distributions by NAME")
    un.add_argument("--target", metavar="DESTINATION",
                    help="the directory holding its metadata (default: site-packages)")
    un.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    un.add_argument("--lock-timeout", type=float, default=DEFAULT_LOCK_TIMEOUT,
                    metavar="SECONDS",
                    help="seconds to wait for the destination lock; -1 waits forever"
                    f" (default: {DEFAULT_LOCK_TIMEOUT:g})")
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            return _install(args)
        if args.command == "merge":
            return _merge(args)
        if args.command in generations_cli.COMMANDS:
            return generations_cli.run(args)
        if args.command == "uninstall" and args.manifest:
            if args.names or args.target:
                parser.error("uninstall: give either NAMEs or --manifest, not both")
            return _uninstall_manifest(args)
        if args.command == "uninstall":
            if not args.names:
                parser.error("uninstall: give the NAME of a distribution, or --manifest FILE")
            target = args.target or sysconfig.get_paths()["purelib"]
            _check_directory(target)
            return _uninstall(args.names, target, args.dry_run, args.lock_timeout)
        destinations = args.destinations or _default_destinations()
        for dest in destinations:
            _check_directory(dest)
        if args.command == "status":
            return _status(destinations)
        if args.command == "commit-pending":
            return _commit_pending(destinations, args.lock_timeout)
        if args.command == "discard-pending":
            return _discard_pending(destinations, args.ids, args.lock_timeout)
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
        for pend in recovery.pending_status(dest):
            found += 1
            rec = pend.record
            state = (f"waiting for process {pend.held_by} (which deferred it) to exit"
                     if pend.held_by else "committed at the next interpreter start,"
                     " 'commit-pending' or the next install")
            print(f"{dest}: pending install of {rec.description} (id {rec.txid}): {state}")
            if rec.last_error:
                print(f"{dest}: the last attempt to commit it failed: {rec.last_error}")
        layout = generations_layout.find(dest)
        if layout is not None:
            print(f"{dest}: uses generations; generation"
                  f" {generations_layout.current_number(layout)} is current")
            if os.path.lexists(layout.journal):
                found += 1
                print(f"{dest}: an interrupted generations operation ({layout.journal}): run"
                      " 'install-atomic recover'")
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


def _uninstall(names: list[str], target: str, dry_run: bool, timeout: float) -> int:
    from install_atomic.frontends.uninstall import uninstall

    result = uninstall(names, target, dry_run=dry_run, lock_timeout=timeout)
    if not dry_run and result.generation is not None:
        print(f"uninstalled {', '.join(names)} from {target}: generation {result.generation}"
              " is current")
    elif not dry_run:
        print(f"uninstalled {', '.join(names)} from {target}: {len(result.plan.steps)}"
              " removals")
    return 0


def _commit_pending(destinations: list[str], timeout: float) -> int:
    from install_atomic.frontends.deferred import commits

    status = 0
    found = 0
    for dest in destinations:
        for result in commits.commit_all(dest, lock_timeout=timeout, log=print,
                                         warn=_to_stderr):
            found += 1
            if result.outcome == "held":
                print(f"{dest}: {result.record.description} stays pending: {result.detail}")
            elif result.outcome in ("failed", "stale"):
                status = 1
                print(f"install_atomic: error: the pending install of"
                      f" {result.record.description} into {dest} was not committed:"
                      f" {result.detail}", file=sys.stderr)
    if not found:
        print("nothing pending")
    return status


def _discard_pending(destinations: list[str], ids: list[str], timeout: float) -> int:
    from install_atomic.frontends.deferred import commits

    found = 0
    for dest in destinations:
        for result in commits.discard(dest, ids, lock_timeout=timeout):
            found += 1
            print(f"{dest}: dropped the pending install of {result.record.description}"
                  f" (id {result.record.txid})")
    if not found:
        print("nothing pending" + (f" with id {', '.join(ids)}" if ids else ""))
        return 1 if ids else 0
    return 0


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _recover(destinations: list[str], timeout: float) -> int:
    installs = stages = 0
    for dest in destinations:
        for item in recovery.recover(dest, timeout, detached=True):
            if item.outcome == "removed abandoned staging directory":
                stages += 1
                print(f"{dest}: removed the abandoned staging directory {item.journal}")
            elif item.outcome in recovery.LEFT_ALONE:
                print(f"{dest}: {item.outcome}: {item.journal}: {item.reason}")
            else:
                installs += 1
                print(f"{dest}: {item.project}: {item.outcome}")
        if generations_layout.find(dest) is not None:
            for line in generations_manage.recover(dest, lock_timeout=timeout,
                                                   warn=lambda m: print(m, file=sys.stderr)):
                installs += 1
                print(f"{dest}: {line}")
    for path in staging.sweep_build_dirs():
        print(f"removed the build directory of a killed installer: {path}", file=sys.stderr)
    if installs or stages:
        print(f"recovered {installs} interrupted install(s),"
              f" removed {stages} abandoned staging director{'y' if stages == 1 else 'ies'}")
    else:
        print("nothing to recover")
    return 0


def _add_install(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "install",
        help="install wheels, sdists, projects and requirements in one atomic transaction",
        description="Install every SPEC, and what they require (resolved by pip for the target"
        " environment), as one transaction: everything is built, staged, byte-compiled and"
        " import-checked first; then one lock, one journal and one rename per top-level entry"
        " put the whole set in place. Any failure leaves every distribution as it was.",
    )
    p.add_argument("specs", nargs="*", metavar="SPEC",
                   help="a wheel file, an sdist, a project directory (any PEP 517 backend), a"
                   " requirement ('name', 'name==1.2', 'name[extra]>=1') or a URL")
    where = p.add_argument_group("where to install (as pip)")
    where.add_argument("--python", metavar="PATH",
                       help="the target interpreter, or a virtual environment's directory"
                       " (default: the interpreter running install-atomic)")
    loc = where.add_mutually_exclusive_group()
    loc.add_argument("-t", "--target", dest="target_dir", metavar="DIR",
                     help="install into DIR (library and metadata; scripts in DIR/bin)")
    loc.add_argument("--prefix", metavar="DIR",
                     help="install under this prefix (DIR/lib/pythonX.Y/site-packages, DIR/bin)")
    loc.add_argument("--user", action="store_true", help="install into the user site-packages")
    where.add_argument("--root", metavar="DIR",
                       help="install everything relative to this directory (DESTDIR, for"
                       " packaging); code and scripts keep the paths without it")
    pipg = p.add_argument_group("resolution (passed to pip)")
    pipg.add_argument("-r", "--requirement", dest="requirements", action="append", default=[],
                      metavar="FILE", help="install from this requirements file (repeatable)")
    pipg.add_argument("-c", "--constraint", dest="constraints", action="append", default=[],
                      metavar="FILE", help="constrain versions with this file (repeatable)")
    pipg.add_argument("--no-deps", action="store_true",
                      help="install only the SPECs, not their dependencies")
    pipg.add_argument("-U", "--upgrade", action="store_true",
                      help="upgrade named distributions to the newest available version")
    pipg.add_argument("--force-reinstall", action="store_true",
                      help="reinstall even when the same version is installed")
    pipg.add_argument("--pre", action="store_true", help="include pre-release versions")
    pipg.add_argument("--no-index", action="store_true", help="ignore the package index")
    pipg.add_argument("-i", "--index-url", metavar="URL", help="base URL of the package index")
    pipg.add_argument("--extra-index-url", dest="extra_index_urls", action="append",
                      default=[], metavar="URL", help="another index (repeatable)")
    pipg.add_argument("-f", "--find-links", action="append", default=[], metavar="PATH_OR_URL",
                      help="look for wheels and sdists here (repeatable)")
    pipg.add_argument("--no-build-isolation", action="store_true",
                      help="build projects with the build dependencies already installed")
    ours = p.add_argument_group("atomic install")
    ours.add_argument("--dry-run", action="store_true",
                      help="resolve, build, stage and plan; print every planned rename;"
                      " change nothing")
    ours.add_argument("--defer", action="store_true",
                      help="build, stage, byte-compile and check now; commit at the next start"
                      " of a Python interpreter of the environment, 'commit-pending', or the"
                      " next install there")
    ours.add_argument("--no-compile", action="store_true", help="do not write bytecode")
    ours.add_argument("--pyc-mode", choices=sorted(bytecode.MODES), default=bytecode.DEFAULT_MODE,
                      help=f"bytecode invalidation mode (default: {bytecode.DEFAULT_MODE})")
    ours.add_argument("--no-verify", action="store_true",
                      help="skip the import check of the staged tree")
    ours.add_argument("--verify-deep", action="store_true",
                      help="import every module of the staged tree (test packages and"
                      " __main__ modules aside), not only the top-level ones")
    ours.add_argument("--verify-command", metavar="COMMAND",
                      help="shell command run against the staged tree before the commit;"
                      " a non-zero exit status aborts the install")
    ours.add_argument("--verify-timeout", type=float, default=600.0, metavar="SECONDS",
                      help="seconds the import check and --verify-command may each take;"
                      " -1 no limit (default: 600)")
    ours.add_argument("--lock-timeout", type=float, default=DEFAULT_LOCK_TIMEOUT,
                      metavar="SECONDS", help="seconds to wait for the environment's lock;"
                      f" -1 waits forever (default: {DEFAULT_LOCK_TIMEOUT:g})")
    ours.add_argument("--strict", action="store_true",
                      help="refuse to replace files another installed distribution owns")
    ours.add_argument("--no-fsync", action="store_true",
                      help="skip fsync of the staged files (faster, not power-loss safe)")
    ours.add_argument("--report", metavar="FILE",
                      help="write what was installed (or, with --dry-run, would be) as JSON;"
                      " '-' for standard output")
    ours.add_argument("-q", "--quiet", action="count", default=0,
                      help="print only warnings and errors")
    ours.add_argument("-v", "--verbose", action="count", default=0,
                      help="print every phase and pip's output")


def _add_merge(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "merge",
        help="move a staged DESTDIR tree into a live prefix atomically (one lock, one journal,"
        " one rename per entry)",
        description="Merge STAGED (a tree laid out like PREFIX, as 'make install DESTDIR=...'"
        " leaves it) into PREFIX as one transaction: entries PREFIX lacks arrive by one"
        " rename, directories it has are merged into, files it has are replaced by one"
        " rename; symbolic links to directories in PREFIX (lib64 -> lib) are merged through."
        " Python distributions in the tree are committed as 'install' commits them. Any"
        " failure leaves PREFIX as it was; 'recover PREFIX' finishes an interrupted merge.",
    )
    p.add_argument("staged", metavar="STAGED", help="the staged tree (DESTDIR)")
    p.add_argument("prefix", metavar="PREFIX", help="the live prefix to merge into")
    p.add_argument("--strip", metavar="P",
                   help="the tree is laid out as STAGED/P/... (make install DESTDIR=STAGED"
                   " with prefix P): merge STAGED/P")
    p.add_argument("--manifest", metavar="FILE",
                   help="write the list of files this merge installed to FILE (JSON); inside"
                   " PREFIX it is committed with the merge. The other manifests in FILE's"
                   " directory tell which package owns which file")
    p.add_argument("--replace", metavar="OLD_MANIFEST",
                   help="an exact upgrade: the files OLD_MANIFEST lists that the new tree lacks"
                   " are removed in the same transaction (and OLD_MANIFEST with them)")
    p.add_argument("--name", help="the package's name in the manifest and messages (default:"
                   " the manifest's file name, else STAGED's)")
    p.add_argument("--version", dest="pkg_version", default="", metavar="VERSION",
                   help="the package's version, recorded in the manifest")
    p.add_argument("--copy", action="store_true",
                   help="copy the staged tree, leaving STAGED untouched (default: move its"
                   " entries, one rename each, when it is on PREFIX's filesystem)")
    p.add_argument("--mode", default="umask", metavar="MODE",
                   help="'umask' (default: files 0666/0777 and directories 0777 less the"
                   " umask, always writable by their owner), 'keep' (staged modes, plus the"
                   " owner's read/write), or an octal umask such as 022")
    p.add_argument("--follow-outside-links", action="store_true",
                   help="merge through symbolic links of PREFIX that lead out of it"
                   " (refused by default)")
    p.add_argument("--strict", action="store_true",
                   help="refuse to replace a file another manifest or installed distribution"
                   " owns (default: replace it with a warning)")
    p.add_argument("--dry-run", action="store_true",
                   help="print every planned rename; change nothing (STAGED is copied)")
    p.add_argument("--lock-timeout", type=float, default=DEFAULT_LOCK_TIMEOUT,
                   metavar="SECONDS", help="seconds to wait for the prefix's lock;"
                   f" -1 waits forever (default: {DEFAULT_LOCK_TIMEOUT:g})")
    p.add_argument("--no-fsync", action="store_true",
                   help="skip fsync of the staged files (faster, not power-loss safe)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")


def _merge(args: argparse.Namespace) -> int:
    # Imported here: the other commands need none of it.
    from install_atomic.frontends import merge

    if args.lock_timeout < 0 and args.lock_timeout != -1:
        print("install_atomic: error: --lock-timeout must be >= 0 or -1 (forever)",
              file=sys.stderr)
        return 2
    opts = merge.MergeOptions(
        staged=args.staged, prefix=args.prefix, strip=args.strip, manifest=args.manifest,
        replace=args.replace, name=args.name, version=args.pkg_version, copy=args.copy,
        dry_run=args.dry_run, strict=args.strict, lock_timeout=args.lock_timeout,
        mode=args.mode, follow_outside_links=args.follow_outside_links,
        durable=not args.no_fsync, log=(lambda _m: None) if args.quiet else print,
    )
    merge.merge(opts)
    return 0


def _uninstall_manifest(args: argparse.Namespace) -> int:
    from install_atomic.frontends import merge

    merge.uninstall(args.manifest, dry_run=args.dry_run, lock_timeout=args.lock_timeout)
    return 0


def _install(args: argparse.Namespace) -> int:
    # Imported here: status, recover and uninstall need neither installer nor packaging.
    from install_atomic.frontends.wheels import install as wheel_install
    from install_atomic.frontends.wheels.resolve import PipOptions

    if not args.specs and not args.requirements:
        print("install_atomic: error: nothing to install: give a wheel, an sdist, a project"
              " directory, a requirement or -r FILE.", file=sys.stderr)
        return 2
    if args.lock_timeout < 0 and args.lock_timeout != -1:
        print("install_atomic: error: --lock-timeout must be >= 0 or -1 (forever)",
              file=sys.stderr)
        return 2
    if args.verify_timeout <= 0 and args.verify_timeout != -1:
        print("install_atomic: error: --verify-timeout must be > 0, or -1 (no limit)",
              file=sys.stderr)
        return 2
    opts = wheel_install.InstallOptions(
        specs=list(args.specs),
        pip=PipOptions(
            requirements=list(args.requirements), constraints=list(args.constraints),
            no_deps=args.no_deps, upgrade=args.upgrade, force_reinstall=args.force_reinstall,
            no_index=args.no_index, index_url=args.index_url,
            extra_index_urls=list(args.extra_index_urls), find_links=list(args.find_links),
            no_build_isolation=args.no_build_isolation, pre=args.pre, verbose=args.verbose,
        ),
        python=args.python, target_dir=args.target_dir, prefix=args.prefix, user=args.user,
        root=args.root, dry_run=args.dry_run, no_verify=args.no_verify,
        verify_deep=args.verify_deep,
        verify_command=args.verify_command, verify_timeout=args.verify_timeout,
        lock_timeout=args.lock_timeout, strict=args.strict, no_fsync=args.no_fsync,
        pyc_mode=args.pyc_mode, compile=not args.no_compile, report=args.report,
        quiet=args.quiet, verbose=args.verbose, defer=args.defer,
    )
    wheel_install.install(opts)
    return 0
