# Fixture template: "@VERSION@" is replaced by tests/helpers.py:make_project().
# The C extension does not compile (on purpose): a project that fails to build.
from setuptools import Extension, setup

setup(
    name="demo-broken",
    version="@VERSION@",
    description="install-atomic test fixture: a C extension that fails to compile",
    packages=["demobroken"],
    ext_modules=[Extension("demobroken._broken", sources=["demobroken/_broken.c"])],
    zip_safe=False,
)
