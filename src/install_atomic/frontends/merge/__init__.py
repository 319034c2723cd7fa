"""``install-atomic merge``: move a staged ``DESTDIR`` tree into a live prefix.

* :mod:`.layout` finds a prefix's library directories, its lock and the
  directories removal never climbs to;
* :mod:`.tree` fills the transaction's staging directory from the staged tree
  (one rename per entry, or a copy across filesystems), makes modes sane and
  redirects entries through the prefix's symlinks to directories (``lib64 -> lib``);
* :mod:`.manifest` writes and reads the list of files a merge installed;
* :mod:`.run` runs a merge, or an uninstall by manifest, as one transaction.
"""

from install_atomic.frontends.merge.run import MergeError, MergeOptions, merge, uninstall

__all__ = ["MergeError", "MergeOptions", "merge", "uninstall"]
