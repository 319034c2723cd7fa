"""Generations: ``init --generations``, installs that switch whole sets, ``undo``,
``switch``, ``gc``, ``flatten``, the start-up hook, scripts and metadata.

Every test runs real interpreters of a real virtual environment.  The
package ``lazy`` imports its submodule ``sub`` only when ``lazy.later()`` is
called; version 2.0 drops ``lazy/old.py`` and adds ``lazy/new.py``, so a
process that mixed two versions fails or reports two versions.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import TOOLS_PTH, Venv, describe_proc, ia_run, make_wheel, run
from install_atomic.engine.generations import layout as lay

pytestmark = pytest.mark.slow


def lazy_wheel(directory: Path, version: str) -> Path:
    extra = "old" if version.startswith("1") else "new"
    files = {
        "lazy/__init__.py": textwrap.dedent(f"""\
            VERSION = {version!r}
            def later():
                from lazy import sub, {extra}
                return sub.VERSION + "/" + {extra}.VERSION
            """),
        "lazy/sub.py": f"VERSION = {version!r}\n",
        f"lazy/{extra}.py": f"VERSION = {version!r}\n",
        "lazy_tool.py": f"def main():\n    print('lazy-tool', {version!r})\n",
    }
    scripts = "[console_scripts]\nlazy-tool = lazy_tool:main\n"
    if not version.startswith("1"):
        scripts += "lazy-new = lazy_tool:main\n"
    return make_wheel(directory, "lazy", version, files, entry_points=scripts)


def small_wheel(directory: Path, name: str, version: str, **kw: object) -> Path:
    module = name.replace("-", "_")
    files = {f"{module}/__init__.py": f"VERSION = {version!r}\n"}
    return make_wheel(directory, name, version, files, **kw)  # type: ignore[arg-type]


def install(venv: Venv, *wheels: Path, status: int = 0) -> subprocess.CompletedProcess[str]:
    return ia_run(venv, "install", "--no-index", "--no-deps", *wheels, status=status)


def init(venv: Venv) -> subprocess.CompletedProcess[str]:
    return ia_run(venv, "init", "--generations", venv.root)


def layout_of(venv: Venv) -> lay.Layout:
    found = lay.find(str(venv.site_packages))
    assert found is not None, f"{venv.site_packages} has no generations layout"
    return found


def current(venv: Venv) -> int:
    number = lay.current_number(layout_of(venv))
    assert number is not None
    return number


def imported(venv: Venv, code: str = "import lazy; print(lazy.VERSION, lazy.later())",
             *args: str, env: dict[str, str | None] | None = None) -> str:
    proc = venv.run(*args, "-c", code, env=env)
    return proc.stdout.strip()


@contextlib.contextmanager
def program(venv: Venv, code: str,
            env: dict[str, str | None] | None = None) -> Iterator[subprocess.Popen[str]]:
    """A running interpreter of *venv* executing *code*, pipes open; killed on the way out."""
    merged = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    proc = subprocess.Popen([venv.python, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=venv.root, env=merged)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def resume(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Send the line *proc* waits for; return its whole output."""
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    return proc.communicate(timeout=120)


@pytest.fixture
def gen_venv(make_venv, tmp_path: Path) -> Venv:
    """A venv with lazy 1.0 installed (plainly), then put under generations."""
    venv = make_venv()
    install(venv, lazy_wheel(tmp_path / "w1", "1.0"))
    init(venv)
    return venv


def test_init_moves_the_distributions_into_generation_1(make_venv, tmp_path: Path) -> None:
    venv = make_venv()
    install(venv, lazy_wheel(tmp_path / "w1", "1.0"))
    before = imported(venv)
    proc = init(venv)
    assert "generation 1 is current: 1 distributions in the store" in proc.stdout
    site = venv.site_packages
    # Only the hook and the layout are left of it in site-packages.
    assert not (site / "lazy").exists() and not (site / "lazy-1.0.dist-info").exists()
    assert {p.name for p in site.iterdir()} >= {
        "install-atomic-generations", "install-atomic-generations.pth",
        "install-atomic-generations.start", "_install_atomic_generations.py"}
    # The hook's bytecode is there: PYTHONDONTWRITEBYTECODE costs nothing.
    assert list((site / "__pycache__").glob("_install_atomic_generations.*.pyc"))
    assert imported(venv) == before == "1.0 1.0/1.0"
    module = imported(venv, "import lazy; print(lazy.__file__)")
    assert "/install-atomic-generations/generations/1/site/lazy/" in module
    # The script is a link that follows current.
    tool = venv.bin / "lazy-tool"
    assert tool.is_symlink()
    assert os.readlink(tool).endswith("install-atomic-generations/current/bin/lazy-tool")
    assert run([tool]).stdout.strip() == "lazy-tool 1.0"
    listing = ia_run(venv, "generations", venv.root).stdout
    assert "init: 1 distributions" in listing and listing.lstrip().startswith("*")
    # The listing process's own pin does not count: nothing else runs.
    assert "[current]" in listing and "in use" not in listing


def test_an_upgrade_builds_a_generation_and_a_running_process_keeps_its_own(
    gen_venv: Venv, tmp_path: Path
) -> None:
    venv = gen_venv
    # A process that imported lazy 1.0 and imports its submodules only later.
    code = textwrap.dedent("""\
        import sys, lazy
        print(lazy.VERSION, flush=True)
        sys.stdin.readline()
        print(lazy.later(), flush=True)
        """)
    with program(venv, code) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "1.0"
        out = install(venv, lazy_wheel(tmp_path / "w2", "2.0"))
        assert "generation 2 is current" in out.stderr + out.stdout
        assert current(venv) == 2
        # lazy 2.0 dropped lazy/old.py: per-entry swaps would break this process.
        stdout, stderr = resume(proc)
    assert proc.returncode == 0, stderr
    assert stdout.strip() == "1.0/1.0"
    assert imported(venv) == "2.0 2.0/2.0"
    assert run([venv.bin / "lazy-tool"]).stdout.strip() == "lazy-tool 2.0"
    assert run([venv.bin / "lazy-new"]).stdout.strip() == "lazy-tool 2.0"


def test_undo_after_an_upgrade_of_five_distributions_restores_the_exact_set(
    make_venv, tmp_path: Path
) -> None:
    venv = make_venv()
    names = ["gen-a", "gen-b", "gen-c", "gen-d", "gen-e"]
    install(venv, *[small_wheel(tmp_path / "w1", n, "1.0") for n in names],
            small_wheel(tmp_path / "w1", "gen-keep", "1.0"))
    init(venv)
    freeze = ["-m", "pip", "list", "--format", "freeze"]
    before = venv.run(*freeze).stdout
    gen_before = current(venv)
    site_before = sorted(os.listdir(layout_of(venv).current + "/site"))
    install(venv, *[small_wheel(tmp_path / "w2", n, "2.0") for n in names])
    after = venv.run(*freeze).stdout
    assert after != before and after.count("==2.0") == 5
    proc = ia_run(venv, "undo", venv.root)
    assert f"generation {gen_before} is current" in proc.stdout
    assert venv.run(*freeze).stdout == before
    assert sorted(os.listdir(layout_of(venv).current + "/site")) == site_before
    code = "import gen_a, gen_b, gen_c, gen_d, gen_e, gen_keep as k; print(gen_a.VERSION," \
           " gen_e.VERSION, k.VERSION)"
    assert imported(venv, code) == "1.0 1.0 1.0"
    # switch goes forward again.
    ia_run(venv, "switch", str(gen_before + 1), venv.root)
    assert imported(venv, code) == "2.0 2.0 1.0"


def test_scripts_follow_switches(gen_venv: Venv, tmp_path: Path) -> None:
    venv = gen_venv
    install(venv, lazy_wheel(tmp_path / "w2", "2.0"))
    assert run([venv.bin / "lazy-new"]).stdout.strip() == "lazy-tool 2.0"
    ia_run(venv, "switch", "1", venv.root)
    assert run([venv.bin / "lazy-tool"]).stdout.strip() == "lazy-tool 1.0"
    # The script only generation 2 has is gone, not left dangling.
    assert not os.path.lexists(venv.bin / "lazy-new")
    ia_run(venv, "switch", "2", venv.root)
    assert run([venv.bin / "lazy-new"]).stdout.strip() == "lazy-tool 2.0"


def test_a_foreign_script_is_never_replaced(make_venv, tmp_path: Path) -> None:
    venv = make_venv()
    init(venv)
    (venv.bin / "lazy-tool").write_text("#!/bin/sh\necho mine\n")
    (venv.bin / "lazy-tool").chmod(0o755)
    proc = install(venv, lazy_wheel(tmp_path / "w1", "1.0"))
    assert "is not install-atomic's" in proc.stderr
    assert run([venv.bin / "lazy-tool"]).stdout.strip() == "mine"
    assert imported(venv) == "1.0 1.0/1.0"


def test_uninstall_and_metadata(gen_venv: Venv, tmp_path: Path) -> None:
    venv = gen_venv
    code = textwrap.dedent("""\
        import importlib.metadata as m
        files = m.files("lazy")
        print(m.version("lazy"), len(files), all(f.locate().exists() for f in files))
        print(sorted(str(f) for f in files if f.name == "sub.py"))
        """)
    out = imported(venv, code).splitlines()
    assert out[0].startswith("1.0 ") and out[0].endswith(" True"), out
    assert out[1] == "['lazy/sub.py']"
    listed = venv.pip("list", "--format", "json").stdout
    assert {"name": "lazy", "version": "1.0"} in json.loads(listed)
    venv.pip("check")
    shown = venv.pip("show", "lazy").stdout
    assert "Version: 1.0" in shown
    proc = ia_run(venv, "uninstall", "--target", venv.site_packages, "lazy")
    assert "generation 2 is current" in proc.stdout
    gone = venv.run("-c", "import lazy", check=False)
    assert gone.returncode != 0 and "No module named 'lazy'" in gone.stderr
    assert not os.path.lexists(venv.bin / "lazy-tool")
    ia_run(venv, "undo", venv.root)
    assert imported(venv) == "1.0 1.0/1.0"


def test_dry_run_changes_nothing(gen_venv: Venv, tmp_path: Path) -> None:
    venv = gen_venv
    proc = ia_run(venv, "install", "--no-index", "--no-deps", "--dry-run",
                  lazy_wheel(tmp_path / "w2", "2.0"))
    assert "would build a generation: install lazy 2.0 (was 1.0)" in proc.stdout + proc.stderr
    assert current(venv) == 1 and lay.numbers(layout_of(venv)) == [1]
    assert imported(venv) == "1.0 1.0/1.0"


def test_data_files_are_refused_and_nothing_changes(gen_venv: Venv, tmp_path: Path) -> None:
    venv = gen_venv
    wheel = make_wheel(tmp_path / "wd", "withdata", "1.0", {
        "withdata/__init__.py": "VERSION = '1.0'\n",
        "withdata-1.0.data/data/share/withdata/table.txt": "x\n",
    })
    proc = install(venv, wheel, status=1)
    assert "a generations environment manages only those two" in proc.stderr
    assert "Nothing was changed" in proc.stderr
    assert current(venv) == 1
    assert not (venv.root / "share" / "withdata").exists()


def test_pth_files_of_managed_distributions_run(make_venv, tmp_path: Path) -> None:
    venv = make_venv()
    init(venv)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "from_pth.py").write_text("VALUE = 'seen'\n")
    wheel = make_wheel(tmp_path / "wp", "withpth", "1.0", {
        "withpth.pth": f"{extra}\n",
        "withpth_mod.py": "VALUE = 1\n",
    })
    install(venv, wheel)
    assert imported(venv, "import from_pth; print(from_pth.VALUE)") == "seen"


def test_children_inherit_the_generation_only_when_asked(gen_venv: Venv, tmp_path: Path) -> None:
    venv = gen_venv
    code = textwrap.dedent("""\
        import subprocess, sys, lazy
        print(lazy.VERSION, flush=True)
        sys.stdin.readline()
        child = subprocess.run([sys.executable, "-c", "import lazy; print(lazy.VERSION)"],
                               capture_output=True, text=True, check=True)
        print(child.stdout.strip(), flush=True)
        """)

    def child_version(env: dict[str, str | None]) -> str:
        with program(venv, code, env) as proc:
            assert proc.stdout is not None
            first = proc.stdout.readline().strip()
            ia_run(venv, "switch", "2" if first == "1.0" else "1", venv.root)
            out, _ = resume(proc)
        return f"{first}->{out.strip()}"

    install(venv, lazy_wheel(tmp_path / "w2", "2.0"))  # generation 2
    ia_run(venv, "switch", "1", venv.root)
    assert child_version({"INSTALL_ATOMIC_INHERIT_GENERATION": None}) == "1.0->2.0"
    ia_run(venv, "switch", "1", venv.root)
    assert child_version({"INSTALL_ATOMIC_INHERIT_GENERATION": "1"}) == "1.0->1.0"
    # A generation named explicitly.
    assert imported(venv, "import lazy; print(lazy.VERSION)",
                    env={"INSTALL_ATOMIC_GENERATION": "2"}) == "2.0"


def test_python_dash_s_sees_no_generation(gen_venv: Venv) -> None:
    venv = gen_venv
    proc = venv.run("-S", "-c", "import lazy", check=False)
    assert proc.returncode != 0 and "No module named 'lazy'" in proc.stderr
    late = "import site; site.main(); import lazy; print(lazy.VERSION)"
    assert imported(venv, late, "-S") == "1.0"


def test_gc_keeps_current_and_the_newest(gen_venv: Venv, tmp_path: Path) -> None:
    venv = gen_venv
    for n in range(2, 6):
        install(venv, lazy_wheel(tmp_path / f"w{n}", f"{n}.0"))
    layout = layout_of(venv)
    assert lay.numbers(layout) == [1, 2, 3, 4, 5]
    ia_run(venv, "switch", "2", venv.root)
    proc = ia_run(venv, "gc", "--keep", "2", venv.root)
    assert "removed 2 generations" in proc.stdout, describe_proc(proc)
    assert lay.numbers(layout) == [2, 4, 5]
    keys = set(lay.store_keys(layout))
    assert len(keys) == 3 and all(k.startswith("lazy-") for k in keys)
    assert imported(venv, "import lazy; print(lazy.VERSION)") == "2.0"
    assert ia_run(venv, "gc", "--keep", "0", venv.root, status=2).returncode == 2


def test_flatten_returns_to_a_plain_environment(gen_venv: Venv, tmp_path: Path) -> None:
    venv = gen_venv
    install(venv, lazy_wheel(tmp_path / "w2", "2.0"))
    ia_run(venv, "flatten", venv.root)
    site = venv.site_packages
    assert not (site / "install-atomic-generations").exists()
    assert not (site / "install-atomic-generations.pth").exists()
    assert not (site / "_install_atomic_generations.py").exists()
    assert (site / "lazy" / "new.py").is_file() and not (site / "lazy" / "new.py").is_symlink()
    assert (site / "lazy-2.0.dist-info" / "RECORD").is_file()
    assert imported(venv) == "2.0 2.0/2.0"
    assert run([venv.bin / "lazy-tool"]).stdout.strip() == "lazy-tool 2.0"
    assert not (venv.bin / "lazy-tool").is_symlink()
    # Plain again: a plain install renames entries, and pip may uninstall.
    install(venv, lazy_wheel(tmp_path / "w3", "3.0"))
    assert imported(venv, "import lazy; print(lazy.VERSION)") == "3.0"
    venv.pip("uninstall", "-y", "lazy")
    assert not (site / "lazy").exists()


def test_init_twice_and_commands_on_a_plain_environment_are_refused(
    make_venv, tmp_path: Path
) -> None:
    venv = make_venv()
    proc = ia_run(venv, "undo", venv.root, status=1)
    assert "does not use generations" in proc.stderr and "init --generations" in proc.stderr
    init(venv)
    proc = ia_run(venv, "init", "--generations", venv.root, status=1)
    assert "already uses generations" in proc.stderr
    proc = ia_run(venv, "switch", "7", venv.root, status=1)
    assert "generation 7 does not exist" in proc.stderr
    proc = ia_run(venv, "undo", venv.root, status=1)
    assert "nothing to undo" in proc.stderr


def test_the_api_commits_at_once_and_the_caller_keeps_its_generation(
    gen_venv: Venv, tmp_path: Path
) -> None:
    """In a generations environment nothing needs deferring: the calling program
    stays on its generation, lazily loaded submodules included."""
    venv = gen_venv
    code = textwrap.dedent("""\
        import json, sys, warnings
        import lazy
        import install_atomic
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = install_atomic.install(sys.argv[1], no_index=True, no_deps=True)
        print(json.dumps({"deferred": result.deferred, "generation": result.generation,
                          "restart": result.restart_needed, "later": lazy.later(),
                          "warnings": [str(w.message) for w in caught]}))
        """)
    proc = venv.run("-c", code, lazy_wheel(tmp_path / "w2", "2.0"))
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {"deferred": False, "generation": 2, "restart": True,
                    "later": "1.0/1.0", "warnings": []}, seen
    assert imported(venv) == "2.0 2.0/2.0"
    assert not list(venv.site_packages.glob(".install-atomic-*"))


def test_setup_py_install_atomic_builds_a_generation(make_venv, tmp_path: Path) -> None:
    """The setuptools front end's egg-info is stored like a wheel's dist-info and shown
    in the generation as a RECORD-less .dist-info: pip sees it and refuses to remove it."""
    from helpers import make_project

    venv = make_venv()
    init(venv)
    project = make_project("module", tmp_path / "proj")
    proc = venv.setup_py(project, "install_atomic", check=False)
    assert proc.returncode == 0, describe_proc(proc)
    assert current(venv) == 2
    assert imported(venv, "import demomod; print(demomod.VERSION)") == "1.0"
    site = Path(layout_of(venv).current) / "site"
    [view] = site.glob("*.dist-info")
    assert (view / "METADATA").is_symlink() and not (view / "installed-files.txt").exists()
    code = ("import importlib.metadata as m; f = m.files('demo-module');"
            " print(m.version('demo-module'), sorted(str(p) for p in f if p.suffix == '.py'),"
            " all(p.locate().exists() for p in f))")
    assert imported(venv, code) == "1.0 ['demomod.py'] True"
    refused = venv.pip("uninstall", "-y", "demo-module", check=False)
    assert refused.returncode != 0 and "install-atomic" in refused.stderr + refused.stdout
    assert imported(venv, "import demomod; print(demomod.VERSION)") == "1.0"
    ia_run(venv, "undo", venv.root)
    assert venv.run("-c", "import demomod", check=False).returncode != 0


def test_defer_commits_at_once_in_a_generations_environment(
    gen_venv: Venv, tmp_path: Path
) -> None:
    venv = gen_venv
    proc = ia_run(venv, "install", "--no-index", "--no-deps", "--defer",
                  lazy_wheel(tmp_path / "w2", "2.0"))
    assert "uses generations: the install is committed now" in proc.stderr
    assert current(venv) == 2 and imported(venv) == "2.0 2.0/2.0"
    assert not list(venv.site_packages.glob(".install-atomic-*"))
    assert not (venv.site_packages / "install-atomic-pending.pth").exists()


def test_a_lost_pin_file_is_survived_and_repaired(gen_venv: Venv) -> None:
    venv = gen_venv
    pin = Path(layout_of(venv).generation_path(1)) / "pin"
    pin.unlink()
    proc = venv.run("-c", "import lazy; print(lazy.VERSION)")
    assert proc.stdout.strip() == "1.0"
    assert f"{pin} is missing" in proc.stderr and "install-atomic recover" in proc.stderr
    out = ia_run(venv, "recover", venv.site_packages)
    assert f"made the missing {pin}" in out.stdout
    proc = venv.run("-c", "import lazy; print(lazy.VERSION)")
    assert proc.stdout.strip() == "1.0" and not proc.stderr


def test_install_atomic_itself_lives_in_a_generation(make_venv, tmp_path: Path) -> None:
    """install-atomic installed into the environment moves into the store like any
    distribution, and its command (a link through current) manages the generations
    it runs from, flatten included."""
    venv = make_venv()
    # The toolset (pip, install-atomic's dependencies, and its own install-atomic)
    # goes on sys.path after the generation, so that the environment's copy wins.
    (venv.site_packages / TOOLS_PTH).rename(venv.site_packages / "zz-test-tools.pth")
    [wheel] = (venv.tools.parent / "wheelhouse").glob("install_atomic-*.whl")
    install(venv, wheel, lazy_wheel(tmp_path / "w1", "1.0"))
    init(venv)
    tool = venv.bin / "install-atomic"
    assert tool.is_symlink()
    where = imported(venv, "import install_atomic; print(install_atomic.__file__)")
    assert "/install-atomic-generations/generations/1/site/install_atomic/" in where
    out = run([tool, "install", "--no-index", "--no-deps", "-q",
               lazy_wheel(tmp_path / "w2", "2.0")])
    assert imported(venv) == "2.0 2.0/2.0", describe_proc(out)
    assert "generation 1 is current" in run([tool, "undo", venv.root]).stdout
    flat = run([tool, "flatten", venv.root])
    # The flattening process ran from generation 1: that one waits for gc.
    assert "still used by running processes" in flat.stderr, describe_proc(flat)
    assert not (venv.site_packages / "install-atomic-generations.pth").exists()
    assert imported(venv) == "1.0 1.0/1.0"
    assert not tool.is_symlink()
    gc = run([tool, "gc", venv.root])
    assert "removed 1 generations" in gc.stdout, describe_proc(gc)
    assert not (venv.site_packages / "install-atomic-generations").exists()
    where = imported(venv, "import install_atomic; print(install_atomic.__file__)")
    assert where == str(venv.site_packages / "install_atomic" / "__init__.py")


def test_a_copied_environment_is_refused(gen_venv: Venv, tmp_path: Path) -> None:
    """layout.json names the site-packages it was made for: a copy of the environment
    (whose scripts directory would be the original's) is refused, nothing changed."""
    venv = gen_venv
    config = Path(layout_of(venv).config)
    data = json.loads(config.read_text())
    data["site"] = str(tmp_path / "elsewhere" / "site-packages")
    config.write_text(json.dumps(data))
    before = sorted(os.listdir(venv.bin))
    for args in (("generations", venv.root),
                 ("install", "--no-index", "--no-deps", lazy_wheel(tmp_path / "w2", "2.0"))):
        proc = ia_run(venv, *args, status=1)
        assert f"{config} was made for" in proc.stderr and "copied or moved" in proc.stderr
    assert sorted(os.listdir(venv.bin)) == before
    assert lay.current_number(lay.Layout(str(venv.site_packages), "")) == 1
