# Fixture template: "@VERSION@" is replaced by tests/helpers.py:make_project().
# pkg_resources-style namespace package "demopkr", shared with the sibling
# fixture ns_pkgres_a.  demopkr/__init__.py is byte-identical everywhere, so
# it has no VERSION.  Version 1.0 ships demopkr/beta/dropped.py, 2.0 drops it.
#
# NAMESPACE_NOTE
from setuptools import setup

setup(
    name="demo-pkr-b",
    version="@VERSION@",
    description="install-atomic test fixture: pkg_resources namespace portion demopkr.beta",
    packages=["demopkr", "demopkr.beta"],
    namespace_packages=["demopkr"],
    zip_safe=False,
)
