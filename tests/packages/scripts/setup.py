# Fixture template: "@VERSION@" is replaced by tests/helpers.py:make_project().
# Run setup.py from this directory (as pip and setuptools expect): the data
# file list is globbed relative to it.  1.0 ships data/v1-only.txt, 2.0 ships
# data/v2-only.txt, both ship data/readme.txt.
from glob import glob

from setuptools import setup

setup(
    name="demo-scripts",
    version="@VERSION@",
    description="install-atomic test fixture: scripts, entry points, data files, headers",
    packages=["demoscripts"],
    scripts=["bin/demo-legacy-script"],
    entry_points={"console_scripts": ["demo-cli = demoscripts.cli:main"]},
    data_files=[("share/demo-scripts", sorted(glob("data/*.txt")))],
    headers=["include/demo.h"],
    zip_safe=False,
)
