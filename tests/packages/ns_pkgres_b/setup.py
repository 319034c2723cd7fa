# Fixture template: "@VERSION@" is replaced by tests/helpers.py:make_project().
# pkg_resources-style namespace package "demopkr", shared with the sibling
# fixture ns_pkgres_a.  demopkr/__init__.py is byte-identical everywhere, so
# it has no VERSION.  Version 1.0 ships demopkr/beta/dropped.py, 2.0 drops it.
#
# Behaviour, checked on Python 3.11 with setuptools 66.1.1 and 84.2.1:
# * Both accept namespace_packages= with a SetuptoolsDeprecationWarning; on 84 it has
#   no due date (SETUPTOOLS_ENFORCE_DEPRECATION=1 does not make it an error), and
#   `setup.py build` copies demopkr/__init__.py into build/lib.
# * Wheels (pip install) leave demopkr/__init__.py out and install
#   demo_pkr_b-<version>-py3.11-nspkg.pth instead, which creates the namespace
#   module at interpreter start-up; no pkg_resources needed at runtime.
# * `setup.py install`: 66 makes an easy_install egg
#   (site-packages/demo_pkr_b-<version>-py3.11.egg + easy-install.pth); 84 makes a
#   flat install: demopkr/__init__.py AND the -nspkg.pth AND an .egg-info dir.
# * setuptools >= 82 ships no pkg_resources: executing demopkr/__init__.py (e.g.
#   importing from build/lib, or without the -nspkg.pth) raises
#   ModuleNotFoundError: No module named 'pkg_resources'.  With 66 it works.
from setuptools import setup

setup(
    name="demo-pkr-b",
    version="@VERSION@",
    description="install-atomic test fixture: pkg_resources namespace portion demopkr.beta",
    packages=["demopkr", "demopkr.beta"],
    namespace_packages=["demopkr"],
    zip_safe=False,
)
