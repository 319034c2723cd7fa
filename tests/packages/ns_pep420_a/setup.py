# Fixture template: "@VERSION@" is replaced by tests/helpers.py:make_project().
# PEP 420 implicit namespace package "demons" (no __init__.py), shared with
# the sibling fixture ns_pep420_b.  Version 1.0 ships demons/alpha/dropped.py,
# 2.0 drops it.
from setuptools import find_namespace_packages, setup

setup(
    name="demo-ns-a",
    version="@VERSION@",
    description="install-atomic test fixture: PEP 420 namespace portion demons.alpha",
    packages=find_namespace_packages(include=["demons.*"]),
    zip_safe=False,
)
