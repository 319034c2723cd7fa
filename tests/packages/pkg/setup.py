# Fixture template: "@VERSION@" is replaced by tests/helpers.py:make_project().
from setuptools import setup

setup(
    name="demo-pkg",
    version="@VERSION@",
    description="install-atomic test fixture: a package with a subpackage and package data",
    packages=["demopkg", "demopkg.sub"],
    package_data={"demopkg": ["data/*.txt"]},
    zip_safe=False,
)
