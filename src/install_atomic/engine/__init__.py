"""The engine: stage, plan, lock, journal, swap, recover.

It knows nothing about setuptools or any other front end: front ends turn
their input into staged trees and call :class:`~install_atomic.engine.transaction.Transaction`.
Modules here import only each other and :mod:`install_atomic.errors`.
"""
