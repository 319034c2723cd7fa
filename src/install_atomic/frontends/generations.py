"""The generations commands: ``init --generations``, ``flatten``, ``generations``,
``undo``, ``switch N``, ``gc``.

Each takes an environment directory (a virtual environment, or any prefix
with ``bin/python``; default: the running interpreter's).  Its site-packages
and scripts directory are asked of its own interpreter, as ``install
--python`` does.  The work is the engine's
(:mod:`install_atomic.engine.generations`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from install_atomic.engine.generations import convert, manage
from install_atomic.engine.transaction import DEFAULT_LOCK_TIMEOUT
from install_atomic.errors import DestinationError

COMMANDS = ("init", "flatten", "generations", "undo", "switch", "gc")
DEFAULT_KEEP = 5


def _env_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("environment", nargs="?", metavar="ENV",
                   help="the environment's directory (default: this interpreter's,"
                   f" {sys.prefix})")
    p.add_argument("--lock-timeout", type=float, default=DEFAULT_LOCK_TIMEOUT,
                   metavar="SECONDS", help="seconds to wait for the environment's lock;"
                   f" -1 waits forever (default: {DEFAULT_LOCK_TIMEOUT:g})")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("init", help="put an environment under generations (--generations)")
    p.add_argument("--generations", action="store_true", required=True,
                   help="move the environment's distributions into the store and make"
                   " generation 1: from then on every install switches the whole set at once")
    p.add_argument("--no-fsync", action="store_true", help="skip the fsync calls")
    _env_arg(p)
    p = sub.add_parser("flatten", help="turn a generations environment back into a plain one")
    _env_arg(p)
    p = sub.add_parser("generations", help="list the generations of an environment")
    _env_arg(p)
    p = sub.add_parser("undo", help="switch back to the generation the current one was built"
                       " from")
    _env_arg(p)
    p = sub.add_parser("switch", help="make generation N current")
    p.add_argument("number", type=int, metavar="N", help="the generation ('generations' lists"
                   " them)")
    _env_arg(p)
    p = sub.add_parser("gc", help="remove old generations no running process uses, and the"
                       " store entries only they used")
    p.add_argument("--keep", type=int, default=DEFAULT_KEEP, metavar="K",
                   help=f"keep the newest K generations (default: {DEFAULT_KEEP}); current"
                   " and those in use are always kept")
    _env_arg(p)


def _paths(environment: str | None) -> tuple[str, str, str]:
    """(site-packages, scripts directory, python) of *environment*."""
    from install_atomic.frontends.wheels import target

    env = os.path.abspath(environment or sys.prefix)
    python = os.path.join(env, "bin", "python")
    if not os.path.exists(python):
        raise DestinationError(
            f"{env} has no bin/python: give the directory of a virtual environment (or"
            " of a prefix with its own interpreter).",
            env,
        )
    tgt = target.probe(python)
    return tgt.paths["purelib"], tgt.paths["scripts"], python


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    site, scripts, python = _paths(args.environment)
    timeout = args.lock_timeout
    if args.command == "init":
        out = convert.init(site, scripts, python=python, lock_timeout=timeout,
                           durable=not args.no_fsync, log=print, warn=_warn)
        for name, why in sorted(out.plain.items()):
            print(f"left plain: {name}: {why}")
        print(f"generation {out.generation} is current: {len(out.managed)} distributions in"
              f" the store; {len(out.plain)} left plain")
        return 0
    if args.command == "flatten":
        convert.flatten(site, lock_timeout=timeout, log=print, warn=_warn)
        return 0
    if args.command == "switch":
        before, after = manage.switch_to(site, args.number, lock_timeout=timeout, warn=_warn)
        print(f"generation {after} is current (was {before})")
        return 0
    if args.command == "undo":
        before, after = manage.undo(site, lock_timeout=timeout, warn=_warn)
        print(f"generation {after} is current (was {before})")
        return 0
    if args.command == "gc":
        if args.keep < 1:
            print("install_atomic: error: --keep must be 1 or more", file=sys.stderr)
            return 2
        collected = manage.gc(site, args.keep, lock_timeout=timeout, warn=_warn)
        busy = collected.in_use
        used = f"; kept {len(busy)} still in use ({', '.join(map(str, busy))})" if busy else ""
        print(f"removed {len(collected.removed)} generations and {len(collected.entries)}"
              f" store entries{used}")
        return 0
    current, generations, in_use = manage.history(site)
    for gen in generations:
        mark = "*" if gen.number == current else " "
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(gen.created))
        tags = []
        if gen.number == current:
            tags.append("current")
        if in_use.get(gen.number):
            tags.append("in use")
        tag = f" [{', '.join(tags)}]" if tags else ""
        print(f"{mark} {gen.number:>4}  {when}  {len(gen.distributions):>4} distributions"
              f"{tag}  {gen.reason}")
    return 0
