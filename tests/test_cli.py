"""``python -m install_atomic status | recover | uninstall`` in real venvs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from helpers import MakeVenv, Venv, make_project, tree_digest
from install_atomic import __version__
from test_command import (
    LOCK,
    Layout,
    assert_kept,
    check_install,
    describe,
    dist_version,
    egg_info_name,
    leftovers,
    listed_files,
    pip_wheel,
    project_files,
    setup_py,
)

pytestmark = pytest.mark.slow


def cli(venv: Venv, *args: str | Path, check_status: int | None = 0
        ) -> subprocess.CompletedProcess[str]:
    proc = venv.run("-m", "install_atomic", *args, check=False)
    if check_status is not None:
        assert proc.returncode == check_status, describe(proc)
    return proc


def crash_during(venv: Venv, project: Path, hook: str) -> int:
    """Run ``setup.py install_atomic`` in *project*, killing the process (``os._exit``) at
    *hook*: ``"build"`` (while verifying the staged tree: staging directories, no journal)
    or ``"commit"`` (after the first rename of the commit: a journal).  Returns its pid."""
    if hook == "commit":
        patch = (
            "from install_atomic.engine import steps\n"
            "real = steps.apply\n"
            "def apply(step):\n"
            "    real(step)\n"
            "    os._exit(9)\n"
            "steps.apply = apply\n"
        )
    else:
        patch = (
            "from install_atomic.checks import verify\n"
            "def check_imports(*args, **kwargs):\n"
            "    os._exit(9)\n"
            "verify.check_imports = check_imports\n"
        )
    code = (
        "import os, runpy, sys\n"
        "import setuptools\n"
        f"{patch}"
        "print('pid', os.getpid(), flush=True)\n"
        "sys.argv = ['setup.py', 'install_atomic']\n"
        "runpy.run_path('setup.py', run_name='__main__')\n"
    )
    proc = venv.run("-c", code, cwd=project, check=False, env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 9, describe(proc)
    found = re.search(r"^pid (\d+)$", proc.stdout, re.M)
    assert found is not None, proc.stdout
    return int(found.group(1))


def test_version_and_nothing_to_report(make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest")
    assert cli(venv, "--version").stdout.strip() == f"install-atomic {__version__}"
    setup_py(venv, make_project("pkg", tmp_path, "1.0"))
    before = tree_digest(venv.root)
    assert cli(venv, "status").stdout.startswith("no interrupted installs\n")
    assert cli(venv, "status", venv.site_packages, venv.bin).stdout.startswith(
        "no interrupted installs\n")
    assert cli(venv, "recover").stdout == "nothing to recover\n"
    assert tree_digest(venv.root) == before


def test_uninstall_keeps_the_sibling(make_venv: MakeVenv, tmp_path: Path) -> None:
    """demo-scripts (package, scripts, data files, header) next to demo-module: a dry run
    changes nothing; the uninstall removes every file demo-scripts listed, in one
    transaction, and leaves everything else as it was."""
    venv = make_venv("newest")
    before_all = tree_digest(venv.root)
    setup_py(venv, make_project("module", tmp_path, "1.0"))
    baseline = tree_digest(venv.root)
    setup_py(venv, make_project("scripts", tmp_path, "2.0"))
    egg = venv.site_packages / egg_info_name("demo-scripts", "2.0")
    owned = listed_files(egg)
    assert owned == project_files(venv.root, baseline)
    installed = tree_digest(venv.root)

    proc = cli(venv, "uninstall", "demo-scripts", "--target", venv.site_packages, "--dry-run")
    planned = [line for line in proc.stdout.splitlines() if line.startswith("would remove ")]
    assert f"would remove {egg}  (directory, 8 files)" in planned, proc.stdout
    assert f"would remove {venv.bin / 'demo-cli'}  (file)" in planned
    assert "nothing changed" in proc.stdout
    assert tree_digest(venv.root) == installed

    proc = cli(venv, "uninstall", "demo-scripts", "--target", venv.site_packages)
    assert re.search(r"^uninstalled demo-scripts from .*: \d+ removals$", proc.stdout, re.M)
    assert [p for p in owned if p.exists()] == []
    assert leftovers(venv.root) == []
    # the sibling and everything that was there before are untouched (pip, too, leaves
    # emptied directories: tolerated; removing the venv's own directories is not)
    assert_kept(venv.root, baseline)
    assert_kept(venv.root, before_all)
    assert dist_version(venv, "demo-module") == "1.0"


def test_uninstall_keeps_a_shared_namespace(make_venv: MakeVenv, tmp_path: Path) -> None:
    """Two pkgutil-style namespace distributions share ``demopku/__init__.py``: removing
    one keeps the shared file and all of the other."""
    venv = make_venv("newest")
    setup_py(venv, make_project("ns_pkgutil_a", tmp_path, "1.0"))
    setup_py(venv, make_project("ns_pkgutil_b", tmp_path, "1.0"))
    sp = venv.site_packages
    shared = sp / "demopku" / "__init__.py"
    beta = tree_digest(sp / "demopku" / "beta")
    shared_before = shared.read_bytes()
    cli(venv, "uninstall", "demo-pku-a", "--target", sp)
    assert not (sp / "demopku" / "alpha").exists()
    assert shared.read_bytes() == shared_before
    assert tree_digest(sp / "demopku" / "beta") == beta
    assert not list(sp.glob("demo_pku_a-*"))
    assert venv.import_version("demopku.beta.core") == "1.0"
    assert leftovers(venv.root) == []


def test_uninstall_unknown_name(make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest")
    setup_py(venv, make_project("pkg", tmp_path, "1.0"))
    before = tree_digest(venv.root)
    for args in (("nope", "--target", str(venv.site_packages)), ("nope",)):
        proc = cli(venv, "uninstall", *args, check_status=1)
        assert proc.stdout == ""
        expected = f"install_atomic: error: nope is not installed in {venv.site_packages}."
        assert proc.stderr.startswith(expected), proc.stderr
        assert "'pip list' shows it" in proc.stderr
    assert tree_digest(venv.root) == before


def test_uninstall_a_pip_installed_wheel(make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest")
    (venv.root / LOCK).touch()
    before = tree_digest(venv.root)
    wheel = pip_wheel(venv, make_project("pkg", tmp_path, "1.0"), tmp_path / "wh")
    venv.pip("install", "--no-index", wheel)
    cli(venv, "uninstall", "demo-pkg")  # default target: the venv's site-packages
    assert tree_digest(venv.root) == before


@pytest.mark.parametrize("hook", ["build", "commit"])
def test_status_and_recover_after_a_crash(hook: str, make_venv: MakeVenv, tmp_path: Path
                                          ) -> None:
    """An installer killed while building leaves staging directories; one killed in the
    middle of its commit leaves a journal.  ``status`` reports them, ``recover`` rolls
    back to exactly 1.0, and the next install_atomic succeeds."""
    venv = make_venv("newest")
    baseline = tree_digest(venv.root)
    setup_py(venv, make_project("pkg", tmp_path / "a", "1.0"))
    before = tree_digest(venv.root)
    pid = crash_during(venv, make_project("pkg", tmp_path / "b", "2.0"), hook)
    assert leftovers(venv.root) != []

    status = cli(venv, "status").stdout
    sp = venv.site_packages
    if hook == "commit":
        assert re.search(
            rf"^{re.escape(str(sp))}: demo-pkg: interrupted, pid {pid}, 1/\d+ renames done"
            rf" \({re.escape(str(sp))}/\.install-atomic-{pid}-[0-9a-f]+\.journal\)$",
            status, re.M,
        ), status
    else:
        assert re.search(
            rf"^{re.escape(str(sp))}: leftover staging directory {re.escape(str(sp))}/"
            r"\.install-atomic-\S+$", status, re.M,
        ), status
    assert "no interrupted installs" not in status

    recover = cli(venv, "recover").stdout
    if hook == "commit":
        assert f"{sp}: demo-pkg: rolled back\n" in recover
        assert "recovered 1 interrupted install(s)" in recover
    assert leftovers(venv.root) == []
    assert tree_digest(venv.root) == before
    assert cli(venv, "status").stdout.startswith("no interrupted installs\n")

    setup_py(venv, make_project("pkg", tmp_path / "c", "2.0"))
    check_install("pkg", "2.0", Layout.of_venv(venv), project_files(venv.root, baseline))


def test_next_install_recovers_by_itself(make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv("newest")
    baseline = tree_digest(venv.root)
    setup_py(venv, make_project("pkg", tmp_path / "a", "1.0"))
    crash_during(venv, make_project("pkg", tmp_path / "b", "2.0"), "commit")
    proc = setup_py(venv, make_project("pkg", tmp_path / "c", "3.0"))
    assert "recovered an interrupted install of demo-pkg: rolled back" in (
        proc.stdout + proc.stderr
    )
    check_install("pkg", "3.0", Layout.of_venv(venv), project_files(venv.root, baseline))
    assert leftovers(venv.root) == []


# -- errors and help (in-process: no venv needed) ------------------------------------------


def test_status_and_recover_name_a_missing_or_non_directory_destination(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from install_atomic.frontends.cli import main

    missing, afile = tmp_path / "missing", tmp_path / "afile"
    afile.write_text("x")
    for command in ("status", "recover"):
        assert main([command, str(missing)]) == 1
        err = capsys.readouterr().err
        assert f"{missing} does not exist" in err and "Traceback" not in err
        assert main([command, str(afile)]) == 1
        err = capsys.readouterr().err
        assert f"{afile} is not a directory" in err and "File exists" not in err
    assert not missing.exists(), "status or recover created the missing destination"


def test_help_names_the_command_and_explains_every_argument(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from install_atomic.frontends.cli import main

    monkeypatch.setattr("sys.argv", ["/usr/local/bin/install-atomic", "--help"])
    monkeypatch.setenv("COLUMNS", "300")  # no line breaks inside the phrases looked for
    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out.startswith("usage: install-atomic ")
    for command in ("status", "recover", "uninstall"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "site-packages" in out, out
        if command != "status":
            assert "--lock-timeout SECONDS" in out and "default: 300" in out, out
