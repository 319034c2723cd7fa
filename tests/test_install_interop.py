"""What ``install-atomic install`` leaves is what pip, uv and ``importlib.metadata`` see:
``pip list/show/check/uninstall`` agree with it, upgrades and downgrades over what pip or
uv installed leave exactly the new version, and ``install-atomic uninstall a b`` removes
both in one transaction."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import (
    MakeVenv,
    Venv,
    Wheelhouse,
    describe_proc,
    dist_info,
    ia_install,
    ia_run,
    leftovers,
    listed_files,
    pip_list,
    record_problems,
    record_rows,
    run,
    session_wheelhouse,
    tree_digest,
    venv_files,
)

pytestmark = pytest.mark.slow


OLD = {"six": "1.16.0", "markupsafe": "2.1.5", "pyflakes": "3.1.0"}
NEW = {"six": "1.17.0", "markupsafe": "3.0.2", "pyflakes": "3.2.0"}


def pins(versions: dict[str, str]) -> list[str]:
    return [f"{name}=={version}" for name, version in versions.items()]


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    return session_wheelhouse(tmp_path_factory.mktemp)




def uv_run(uv: Path, venv: Venv, *args: str | Path) -> str:
    env = {"UV_CACHE_DIR": str(venv.root.parent / "uv-cache"), "UV_PYTHON_DOWNLOADS": "never",
           "UV_NO_CONFIG": "1", "VIRTUAL_ENV": None}
    proc = run([uv, "pip", *args, "--python", venv.python], env=env, cwd=venv.root)
    return proc.stdout


def assert_exactly_installed(venv: Venv, versions: dict[str, str]) -> None:
    """pip lists exactly *versions*, and the venv holds exactly what their RECORDs list:
    no file of an earlier version, no stray bytecode."""
    assert pip_list(venv) == versions
    for info in venv.site_packages.glob("*.dist-info"):
        assert record_problems(info) == [], info.name
    assert venv_files(venv) == listed_files(venv.site_packages)


def test_pip_and_importlib_metadata_agree(
    make_venv: MakeVenv, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    venv = make_venv()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("requests==2.32.3\nurllib3==2.2.3\nidna==3.10\n"
                            "charset-normalizer==3.4.0\ncertifi==2024.8.30\n")
    ia_install(venv, wheelhouse, "-q", "-r", requirements, "pyflakes==3.2.0")
    expected = {"requests": "2.32.3", "urllib3": "2.2.3", "idna": "3.10",
                "charset-normalizer": "3.4.0", "certifi": "2024.8.30", "pyflakes": "3.2.0"}
    assert pip_list(venv) == expected
    assert venv.pip("check").stdout.strip() == "No broken requirements found."

    # pip show -f: the installer, and the files RECORD lists, bytecode included
    show = venv.pip("show", "-f", "-v", "requests").stdout
    assert re.search(r"^Installer: install-atomic$", show, re.M), show
    assert re.search(r"^Version: 2\.32\.3$", show, re.M)
    assert re.search(r"^Requires: certifi, charset-normalizer, idna, urllib3$", show, re.M)
    shown = {line.strip() for line in show.split("Files:\n", 1)[1].splitlines()
             if line.startswith("  ")}
    info = dist_info(venv.site_packages, "requests", "2.32.3")
    recorded = {str(path.relative_to(venv.site_packages)) for path, _, _ in record_rows(info)}
    assert shown == recorded
    assert any(name.endswith(".pyc") for name in shown)

    # importlib.metadata, in the venv: versions, files, entry points, installer
    code = (
        "import importlib.metadata as m, json, os\n"
        "out = {}\n"
        "for d in m.distributions(path=[os.environ['SITE']]):\n"
        "    out[d.metadata['Name'].lower()] = {\n"
        "        'version': d.version,\n"
        "        'files': sorted(str(f) for f in d.files),\n"
        "        'missing': [str(f) for f in d.files if not f.locate().exists()],\n"
        "        'scripts': sorted(e.name for e in d.entry_points\n"
        "                          if e.group == 'console_scripts'),\n"
        "        'installer': d.read_text('INSTALLER'),\n"
        "    }\n"
        "print(json.dumps(out))\n"
    )
    meta = json.loads(venv.run("-c", code, env={"SITE": str(venv.site_packages)}).stdout)
    assert {name: d["version"] for name, d in meta.items()} == expected
    assert all(d["missing"] == [] and d["installer"] == "install-atomic\n"
               for d in meta.values())
    assert meta["pyflakes"]["scripts"] == ["pyflakes"]
    assert meta["requests"]["files"] == sorted(recorded)

    # pip uninstall removes every file install-atomic put there
    proc = venv.pip("uninstall", "-y", "requests", "pyflakes")
    assert "Successfully uninstalled requests-2.32.3" in proc.stdout
    del expected["requests"], expected["pyflakes"]
    assert_exactly_installed(venv, expected)
    assert not (venv.bin / "pyflakes").exists()
    assert not (venv.site_packages / "requests").exists()


def test_upgrade_and_downgrade_over_pip(make_venv: MakeVenv, wheelhouse: Wheelhouse) -> None:
    venv = make_venv()
    venv.pip("install", *wheelhouse.pip_args(), *pins(OLD))
    assert pip_list(venv) == OLD
    # pip wrote timestamp bytecode, its own INSTALLER, console script
    assert (dist_info(venv.site_packages, "six", "1.16.0") / "INSTALLER").read_text() == "pip\n"

    ia_install(venv, wheelhouse, "-q", *pins(NEW))
    assert_exactly_installed(venv, NEW)
    assert venv.run("-c", "import six, markupsafe; print(six.__version__,"
                    " markupsafe.escape('<'))").stdout.split() == ["1.17.0", "&lt;"]
    assert run([venv.bin / "pyflakes", "--version"]).stdout.startswith("3.2.0")
    assert venv.pip("check").returncode == 0

    ia_install(venv, wheelhouse, "-q", *pins(OLD))  # a downgrade: pip's resolver allows it
    assert_exactly_installed(venv, OLD)
    assert run([venv.bin / "pyflakes", "--version"]).stdout.startswith("3.1.0")

    # and pip upgrades over install-atomic's install, leaving nothing of it behind
    venv.pip("install", *wheelhouse.pip_args(), *pins(NEW))
    assert pip_list(venv) == NEW
    for info in venv.site_packages.glob("*.dist-info"):
        assert (info / "INSTALLER").read_text() == "pip\n"
    # install-atomic's RECORDs listed everything it wrote, bytecode included, so pip's
    # uninstall of the old versions left nothing behind
    assert venv_files(venv) == listed_files(venv.site_packages)


def test_uv_agrees(make_venv: MakeVenv, wheelhouse: Wheelhouse, uv: Path) -> None:
    venv = make_venv()
    uv_run(uv, venv, "install", *wheelhouse.pip_args(), *pins(OLD))
    assert pip_list(venv) == OLD
    ia_install(venv, wheelhouse, "-q", *pins(NEW))
    assert_exactly_installed(venv, NEW)
    listed = uv_run(uv, venv, "list", "--format", "json")
    assert {d["name"].lower(): d["version"] for d in json.loads(listed)} == NEW
    ia_install(venv, wheelhouse, "-q", *pins(OLD))
    assert_exactly_installed(venv, OLD)
    uv_run(uv, venv, "uninstall", *OLD)
    assert pip_list(venv) == {}
    assert venv_files(venv) == set()


def test_uninstall_two_in_one_transaction(
    make_venv: MakeVenv, wheelhouse: Wheelhouse
) -> None:
    venv = make_venv()
    ia_install(venv, wheelhouse, "-q", "six==1.16.0", "pyflakes==3.2.0", "jmespath==1.0.1")
    venv.pip("install", *wheelhouse.pip_args(), "idna==3.7")  # one installed by pip
    site = venv.site_packages
    before = tree_digest(venv.root)

    # one unknown name: nothing is removed
    proc = ia_run(venv, "uninstall", "six", "no-such-dist", status=1)
    assert "no-such-dist is not installed" in proc.stderr, describe_proc(proc)
    assert tree_digest(venv.root) == before

    # --dry-run: one plan holds the removals of both distributions
    proc = ia_run(venv, "uninstall", "--dry-run", "six", "pyflakes", "idna")
    planned = set(re.findall(r"^would remove\s+(\S+)", proc.stdout, re.M))
    assert {site / "six.py", site / "six-1.16.0.dist-info", site / "pyflakes",
            site / "pyflakes-3.2.0.dist-info", venv.bin / "pyflakes", site / "idna",
            site / "idna-3.7.dist-info"} <= {Path(p) for p in planned}, proc.stdout
    assert tree_digest(venv.root) == before

    proc = ia_run(venv, "uninstall", "six", "pyflakes", "idna")
    summary = [line for line in proc.stdout.splitlines() if line.startswith("uninstalled")]
    assert len(summary) == 1 and summary[0].startswith(
        f"uninstalled six, pyflakes, idna from {site}: "), proc.stdout
    assert_exactly_installed(venv, {"jmespath": "1.0.1"})
    assert not (site / "__pycache__").exists()  # six's bytecode went with it
    assert not (venv.bin / "pyflakes").exists()
    assert venv.pip("check").returncode == 0
    assert leftovers(venv.root) == []
