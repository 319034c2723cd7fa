"""``install-atomic install`` of project directories (hatchling, flit_core and setuptools
back ends, pyproject.toml only), of a real sdist, and of a project whose build fails.

The builds are isolated, as pip isolates them, with the back ends taken from the session's
wheelhouse (``--no-index --find-links``): offline and pinned.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from helpers import (
    MakeVenv,
    Venv,
    Wheelhouse,
    copy_install_project,
    dist_info,
    ia_install,
    leftovers,
    listed_files,
    pip_list,
    record_problems,
    run,
    session_wheelhouse,
    tree_digest,
    venv_files,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    return session_wheelhouse(tmp_path_factory.mktemp)


def wheel_generator(info: Path) -> str:
    """The ``Generator`` line of the WHEEL file: which back end built it."""
    found = re.search(r"^Generator: (.+)$", (info / "WHEEL").read_text(), re.M)
    assert found is not None, info
    return found.group(1)


def assert_records(venv: Venv) -> None:
    for info in venv.site_packages.glob("*.dist-info"):
        assert record_problems(info) == [], info.name
    assert venv_files(venv) == listed_files(venv.site_packages)


def test_three_backends_in_one_transaction(
    make_venv: MakeVenv, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    venv = make_venv()
    hatch = copy_install_project("hatch_demo", tmp_path)
    flit = copy_install_project("flit_demo", tmp_path)
    setuptools = copy_install_project("setuptools_demo", tmp_path)
    proc = ia_install(venv, wheelhouse, hatch, flit, setuptools)
    assert re.search(r"installed .*ia-hatch-demo 1\.0.* into ", proc.stdout), proc.stdout
    # hatch_demo requires six==1.16.0: resolved and installed with it, in the same commit
    assert pip_list(venv) == {"ia-hatch-demo": "1.0", "ia-flit-demo": "1.0",
                              "ia-setuptools-demo": "1.0", "six": "1.16.0"}
    out = venv.run("-c", "import ia_hatch_demo as h, ia_flit_demo as f, ia_setuptools_demo as s;"
                   " print(h.BACKEND, f.BACKEND, s.BACKEND); print(s.GREETING)").stdout
    assert out == "hatchling flit_core setuptools\nhello from package data\n"
    script = venv.bin / "ia-hatch-demo"
    assert script.read_text().startswith(f"#!{venv.python}\n")
    assert run([script]).stdout == "ia-hatch-demo 1.0 six 1.16.0\n"

    site = venv.site_packages
    # each was built by its own back end, the version pinned in the wheelhouse
    assert wheel_generator(dist_info(site, "ia-hatch-demo", "1.0")) == "hatchling 1.25.0"
    assert wheel_generator(dist_info(site, "ia-flit-demo", "1.0")) == "flit 3.9.0"
    assert wheel_generator(dist_info(site, "ia-setuptools-demo", "1.0")).startswith(
        "setuptools (75.6.0)")
    for name, project in [("ia-hatch-demo", hatch), ("ia-flit-demo", flit),
                          ("ia-setuptools-demo", setuptools)]:
        info = dist_info(site, name, "1.0")
        assert (info / "INSTALLER").read_text() == "install-atomic\n"
        assert (info / "REQUESTED").is_file()
        # PEP 610: the directory the user named, not the wheel built from it
        assert json.loads((info / "direct_url.json").read_text()) == {
            "url": project.resolve().as_uri(), "dir_info": {}}
    six = dist_info(site, "six", "1.16.0")
    assert not (six / "REQUESTED").exists()
    assert not (six / "direct_url.json").exists()
    assert_records(venv)


def test_no_build_isolation_uses_the_environment_backend(
    make_venv: MakeVenv, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    venv = make_venv()
    project = copy_install_project("setuptools_demo", tmp_path)
    ia_install(venv, wheelhouse, "-q", "--no-build-isolation", project)
    info = dist_info(venv.site_packages, "ia-setuptools-demo", "1.0")
    # built by the toolset's setuptools (the venv's), not by the wheelhouse's 75.6.0
    toolset_setuptools = venv.run("-c", "import setuptools; print(setuptools.__version__)"
                                  ).stdout.strip()
    assert toolset_setuptools != "75.6.0"
    assert wheel_generator(info).startswith(f"setuptools ({toolset_setuptools})")
    assert venv.import_version("ia_setuptools_demo") == "1.0"
    assert_records(venv)


def test_sdist(make_venv: MakeVenv, wheelhouse: Wheelhouse) -> None:
    venv = make_venv()
    sdist = wheelhouse.sdist("jmespath", "1.0.1")
    ia_install(venv, wheelhouse, "-q", sdist)
    assert pip_list(venv) == {"jmespath": "1.0.1"}
    info = dist_info(venv.site_packages, "jmespath", "1.0.1")
    assert (info / "REQUESTED").is_file()
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    direct = json.loads((info / "direct_url.json").read_text())
    assert direct["url"] == sdist.resolve().as_uri()
    assert direct["archive_info"]["hashes"] == {"sha256": digest}
    # setup.py's scripts=['bin/jp.py'] went through the wheel's .data/scripts
    jp = venv.bin / "jp.py"
    assert jp.read_text().startswith(f"#!{venv.python}\n")
    assert "subexpression" in run([jp, "--ast", "a.b"]).stdout
    assert_records(venv)


def test_broken_build_changes_nothing(
    make_venv: MakeVenv, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    venv = make_venv()
    ia_install(venv, wheelhouse, "-q", "six==1.16.0")
    before = tree_digest(venv.root)
    broken = copy_install_project("broken_backend", tmp_path)
    proc = ia_install(venv, wheelhouse, "six==1.17.0", broken, status=1)
    # install-atomic's message first, naming the project, then pip's output with the back
    # end's own error
    assert re.match(r"install_atomic: error: building .*" + re.escape(str(broken)),
                    proc.stderr), proc.stderr
    assert "nothing was installed and the environment is unchanged" in proc.stderr
    assert "this build fails on purpose" in proc.stderr
    assert tree_digest(venv.root) == before
    assert pip_list(venv) == {"six": "1.16.0"}
    assert leftovers(venv.root) == []


def test_reinstalling_an_edited_project_directory_installs_the_edit(
    make_venv: MakeVenv, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    venv = make_venv()
    project = copy_install_project("setuptools_demo", tmp_path)
    ia_install(venv, wheelhouse, "-q", "--no-build-isolation", project)
    module = project / "ia_setuptools_demo" / "__init__.py"
    module.write_text(module.read_text().replace('BACKEND = "setuptools"', 'BACKEND = "edited"'))
    # same version, new code: 'pip install DIR' reinstalls it, and so must we
    ia_install(venv, wheelhouse, "-q", "--no-build-isolation", project)
    assert venv.run("-c", "import ia_setuptools_demo as m; print(m.BACKEND)"
                    ).stdout.strip() == "edited"


def test_a_name_is_a_requirement_even_if_a_directory_has_that_name(
    make_venv: MakeVenv, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    venv = make_venv()
    work = tmp_path / "work"
    (work / "six").mkdir(parents=True)  # a checkout, notes...: not what 'six' names
    (work / "six" / "README").write_text("notes\n")
    proc = venv.run("-m", "install_atomic", "install", "-q", *wheelhouse.pip_args(), "six",
                    cwd=work, check=False)
    assert proc.returncode == 0, proc.stderr
    assert pip_list(venv) == {"six": "1.17.0"}  # the newest in the wheelhouse, as pip picks
