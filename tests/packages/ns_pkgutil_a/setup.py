# Fixture template: "@VERSION@" is replaced by tests/helpers.py:make_project().
# pkgutil-style namespace package "demopku", shared with the sibling fixture
# ns_pkgutil_b: demopku/__init__.py is byte-identical in both distributions
# and in every version, so it has no VERSION.  Version 1.0 ships
# demopku/alpha/dropped.py, 2.0 drops it.
from setuptools import setup

setup(
    name="demo-pku-a",
    version="@VERSION@",
    description="install-atomic test fixture: pkgutil namespace portion demopku.alpha",
    packages=["demopku", "demopku.alpha"],
    zip_safe=False,
)
