"""What runs against a staged tree before the swap: byte-compilation and verification.

These import only :mod:`install_atomic.errors` and the standard library.
"""
