# Fixture template: "@VERSION@" is replaced by tests/helpers.py:make_project().
from setuptools import setup

setup(
    name="demo-module",
    version="@VERSION@",
    description="install-atomic test fixture: a single top-level module",
    py_modules=["demomod"],
)
