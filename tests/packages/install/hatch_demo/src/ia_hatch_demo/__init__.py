"""install-atomic test project (hatchling)."""

import six

VERSION = "1.0"
BACKEND = "hatchling"


def main():
    print("ia-hatch-demo", VERSION, "six", six.__version__)
