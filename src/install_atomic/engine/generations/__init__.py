"""Generations: every process sees one set of distributions for its whole life.

An environment opts in with ``install-atomic init --generations``.  Its
site-packages directory then holds, besides whatever other tools installed
there (left alone), the directory ``install-atomic-generations``::

    install-atomic-generations/
        layout.json              where site-packages and the scripts directory are
        store/<name>-<version>-<digest>/
            site/...             one distribution's files, never changed again
                                 (bytecode caches aside)
            bin/...              its scripts
            entry.json           its files and scripts
        generations/<N>/
            site/...             symlinks into the store: the distributions of N
            bin/...              symlinks to their scripts
            generation.json      what N holds, its parent, what changed
            pin                  shared flock held by every process using N
        current -> generations/<N>
        journal.json             while a build, switch, gc or flatten runs

Every change (an install, upgrade or uninstall through any front end, an
``undo``, a ``switch``) builds or picks a generation and replaces ``current``
with one rename.  The start-up hook (:mod:`.startup`, copied into
site-packages) puts ``realpath(current)/site`` on ``sys.path`` and holds a
shared ``flock`` on that generation's ``pin`` for the life of the process,
so the process imports from one set of distributions, whatever switches
after it started.  ``gc`` removes only generations whose ``pin`` it can lock
exclusively.

Modules: :mod:`.layout` (paths, reading), :mod:`.store` (adding
distributions), :mod:`.farm` (building a generation), :mod:`.switch`
(switching, scripts, recovery, gc), :mod:`.commit` (a transaction's commit),
:mod:`.convert` (``init`` and ``flatten``), :mod:`.startup` (the hook).
"""
