"""Deferred commits: installs staged and checked now, committed later.

* :mod:`.commits` commits or drops the pending installs of a destination
  (``install-atomic commit-pending`` / ``discard-pending``, and the next
  install into it);
* :mod:`.hook` is the start-up hook: while an install is pending in a
  site-packages directory, the next interpreter started there commits it.
"""
