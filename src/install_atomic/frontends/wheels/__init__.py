"""``install-atomic install``: wheels, sdists, projects and requirements, many
distributions committed as one transaction.

* :mod:`.target` asks the target interpreter where each kind of file goes;
* :mod:`.resolve` has pip resolve, fetch and build everything into wheels;
* :mod:`.unpack` writes one wheel into the transaction's staging directories
  (pypa/installer) and its ``RECORD`` once the bytecode exists;
* :mod:`.install` runs the whole transaction;
* :mod:`.report` writes ``--report``.
"""
