# Fixture template: "@VERSION@" is replaced by tests/helpers.py:make_project().
# Same distribution name and file layout as the "pkg" fixture, but importing
# demopkg raises RuntimeError: a release that installs fine and is broken.
from setuptools import setup

setup(
    name="demo-pkg",
    version="@VERSION@",
    description="install-atomic test fixture: demo-pkg release broken at import",
    packages=["demopkg", "demopkg.sub"],
    package_data={"demopkg": ["data/*.txt"]},
    zip_safe=False,
)
