"""Front ends: each turns one kind of input into staged trees and commits them
through the engine.

* :mod:`~install_atomic.frontends.setuptools_command`: ``python setup.py
  install_atomic`` and ``cmdclass``;
* :mod:`~install_atomic.frontends.wheels`: wheels, sdists, projects and
  requirements, many distributions in one transaction (``install-atomic install``);
* :mod:`~install_atomic.frontends.cli`: the command line, which dispatches to the
  wheel installer and to the engine's recovery.

They import the engine and the checks; the engine imports none of them.
"""
