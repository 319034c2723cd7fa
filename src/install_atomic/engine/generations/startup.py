"""The start-up hook of a generations environment: pin one generation per process.

``install-atomic init --generations`` copies this file into site-packages as
``_install_atomic_generations.py`` (with its bytecode, so that
``PYTHONDONTWRITEBYTECODE`` costs nothing), next to
``install-atomic-generations.pth`` (the line ``import
_install_atomic_generations``, which ``site`` runs at every start, Python 3.9
to 3.17) and its PEP 829 twin ``install-atomic-generations.start``
(``_install_atomic_generations:run``).  It imports nothing but ``os``, ``sys``,
``fcntl`` and ``site``: install_atomic itself lives in the generations.

At start-up, :func:`run`:

1. resolves ``install-atomic-generations/current`` to ``generations/<N>``
   (or takes the generation named by ``INSTALL_ATOMIC_GENERATION``, if it
   still exists);
2. opens ``generations/<N>/pin`` and takes a shared ``flock`` on it, kept for
   the life of the process (and of any child forked from it: the lock
   belongs to the open file, which a fork shares);
3. checks that ``pin`` is still the same file (``gc`` renames a generation
   away only while holding the exclusive lock; if it did so meanwhile, the
   hook starts again at 1);
4. adds ``generations/<N>/site`` with ``site.addsitedir``: it goes on
   ``sys.path`` after site-packages, and the ``.pth`` files of the
   distributions in it run, in name order.

Child processes started with ``exec`` run their own hook.  By default they pin
``current`` as it is when they start, as they would import whatever is
installed in a plain environment.  With ``INSTALL_ATOMIC_INHERIT_GENERATION=1``
in the environment, the hook exports ``INSTALL_ATOMIC_GENERATION=<N>``, so
children (subprocesses, ``multiprocessing`` with spawn) use their parent's
generation while it lives.

``python -S`` runs no ``site`` and so no hook: it sees the standard library
only, as always; calling ``site.main()`` later runs the hook then.  An
embedded interpreter runs it if it imports ``site``.  The hook never raises:
a failure is one line on standard error, and the process starts with
site-packages alone.
"""

import os
import sys

GENERATION_VAR = "INSTALL_ATOMIC_GENERATION"
INHERIT_VAR = "INSTALL_ATOMIC_INHERIT_GENERATION"
DIRNAME = "install-atomic-generations"

#: (generation directory, pinned descriptor) once pinned.
pinned: "tuple[str, int] | None" = None


def _pin(base: str) -> "tuple[str, int] | None":
    import fcntl

    wanted = os.environ.get(GENERATION_VAR, "")
    for _ in range(1000):
        target = ""
        if wanted.isdigit():
            target = os.path.join(base, "generations", wanted)
            if not os.path.isdir(target):
                sys.stderr.write(f"install-atomic: generation {wanted} (from"
                                 f" {GENERATION_VAR}) is gone; using the current one\n")
                target = wanted = ""
        if not target:
            link = os.path.join(base, "current")
            try:
                name = os.readlink(link)
            except OSError:
                return None  # not (or no longer) a generations environment
            head, _, number = name.partition("/")
            if head != "generations" or not number.isdigit():
                raise OSError(f"{link} points to {name!r}, not to a generation")
            target = os.path.join(base, name)
        pin = os.path.join(target, "pin")
        try:
            fd = os.open(pin, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            if not os.path.exists(os.path.join(target, "generation.json")):
                continue  # removed by gc after we read current: read it again
            # Damaged (gc removes a generation whole): use it unpinned, and say so.
            sys.stderr.write(f"install-atomic: {pin} is missing: this process uses that"
                             " generation, but 'install-atomic gc' cannot see it; run"
                             " 'install-atomic recover' to repair it\n")
            return target, -1
        fcntl.flock(fd, fcntl.LOCK_SH)
        held = os.fstat(fd)
        try:
            now = os.stat(pin, follow_symlinks=False)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            return target, fd
        os.close(fd)
    raise OSError("the current generation kept changing")


def run(directory: "str | None" = None) -> None:
    """Pin a generation and put it on ``sys.path`` (once per process)."""
    global pinned
    if pinned is not None:
        return
    try:
        here = directory or os.path.dirname(os.path.abspath(__file__))
        found = _pin(os.path.join(here, DIRNAME))
        if found is None:
            return
        pinned = found
        target = found[0]
        if os.environ.get(INHERIT_VAR) == "1":
            os.environ[GENERATION_VAR] = os.path.basename(target)
        import site

        site.addsitedir(os.path.join(target, "site"))
    except Exception as exc:
        sys.stderr.write(f"install-atomic: the generations hook failed ({exc}); this process"
                         " sees site-packages only. Run 'install-atomic recover'.\n")


if __name__ == "_install_atomic_generations":  # imported by the .pth line
    run()
