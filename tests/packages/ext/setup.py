# Fixture template: "@VERSION@" is replaced by tests/helpers.py:make_project().
from setuptools import Extension, setup

setup(
    name="demo-ext",
    version="@VERSION@",
    description="install-atomic test fixture: a package with a C extension",
    packages=["demoext"],
    ext_modules=[Extension("demoext._speed", sources=["demoext/_speed.c"])],
    zip_safe=False,
)
