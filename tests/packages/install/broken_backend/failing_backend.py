"""A PEP 517 backend that fails on purpose (install-atomic tests)."""

import os

NAME = "ia_broken_demo"
VERSION = "1.0"


def _metadata():
    return f"Metadata-Version: 2.1\nName: ia-broken-demo\nVersion: {VERSION}\n"


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist_info = f"{NAME}-{VERSION}.dist-info"
    os.makedirs(os.path.join(metadata_directory, dist_info))
    with open(os.path.join(metadata_directory, dist_info, "METADATA"), "w") as f:
        f.write(_metadata())
    return dist_info


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("ia-broken-demo: this build fails on purpose (install-atomic test)")
