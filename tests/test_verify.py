"""The checks of the staged tree before the swap: byte-compiled with final paths, imported
in a fresh interpreter, ``--verify-command``; ``--no-verify`` skips the import check.

A refused release leaves the destination exactly as it was (digest of the whole venv) and
no ``.install-atomic*`` entry anywhere.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from helpers import REPO_ROOT, MakeVenv, Venv, clean_env, make_project, run, tree_digest
from install_atomic.checks import verify
from install_atomic.errors import VerificationError
from test_command import (
    Layout,
    check_install,
    check_pyc,
    describe,
    dist_version,
    leftovers,
    output,
    project_files,
    pyc_of,
    run_in,
    setup_py,
)
from test_orphans import Proc, descendants, kill_all, running, survivors

pytestmark = pytest.mark.slow


def python_c(venv: Venv, code: str) -> str:
    """A shell command running *code* with the venv's interpreter."""
    return f"{shlex.quote(str(venv.python))} -c {shlex.quote(code)}"


@pytest.fixture
def venv_with_pkg_1(make_venv: MakeVenv, tmp_path: Path) -> Venv:
    venv = make_venv("newest")
    setup_py(venv, make_project("pkg", tmp_path / "old", "1.0"))
    return venv


def assert_refused(
    venv: Venv, before: dict[str, str], proc: subprocess.CompletedProcess[str]
) -> str:
    """*proc* (an install) was refused by a check, with the venv left exactly *before*."""
    assert proc.returncode != 0, describe(proc)
    message = output(proc)
    assert "nothing was installed and the installed version is unchanged" in message
    assert "install_atomic: installed" not in message
    assert tree_digest(venv.root) == before
    assert leftovers(venv.root) == []
    return message


def test_pycs_exist_and_name_the_final_path(make_venv: MakeVenv, tmp_path: Path) -> None:
    """Right after the install every module has a pyc, valid for its source, whose code
    objects name the installed file (not the staging directory), and imports use it."""
    venv = make_venv("newest")
    baseline = tree_digest(venv.root)
    setup_py(venv, make_project("pkg", tmp_path, "2.0"))
    present = project_files(venv.root, baseline)
    check_install("pkg", "2.0", Layout.of_venv(venv), present)
    sources = sorted(p for p in present if p.suffix == ".py")
    assert len(sources) == 4
    for source in sources:
        check_pyc(pyc_of(source), source)
    # a traceback out of installed code names the installed file
    code = (
        "import traceback, demopkg.sub.extra as m\n"
        "try:\n    m.undefined\nexcept AttributeError:\n    pass\n"
        "print(m.__spec__.cached); print(m.__spec__.origin)"
    )
    cached, origin = run_in(venv, code).splitlines()
    extra = venv.site_packages / "demopkg" / "sub" / "extra.py"
    assert (cached, origin) == (str(pyc_of(extra)), str(extra))


def test_release_that_raises_at_import_is_refused(
    venv_with_pkg_1: Venv, tmp_path: Path
) -> None:
    venv = venv_with_pkg_1
    before = tree_digest(venv.root)
    proc = setup_py(venv, make_project("broken_import", tmp_path), check=False)
    message = assert_refused(venv, before, proc)
    assert "RuntimeError: demo-pkg 9.0 is broken on purpose" in message
    assert "importing 'demopkg' from the staged tree failed" in message
    assert "pass --no-verify to install it anyway" in message
    assert venv.import_version("demopkg") == "1.0"


def test_no_verify_installs_a_broken_release(venv_with_pkg_1: Venv, tmp_path: Path) -> None:
    venv = venv_with_pkg_1
    proc = setup_py(venv, make_project("broken_import", tmp_path), "--no-verify")
    assert "checking that" not in proc.stdout
    assert "install_atomic: installed demo-pkg 9.0" in proc.stdout
    assert leftovers(venv.root) == []
    broken = venv.run("-c", "import demopkg", check=False)
    assert "demo-pkg 9.0 is broken on purpose" in broken.stderr
    assert dist_version(venv, "demo-pkg") == "9.0"
    sub = venv.site_packages / "demopkg" / "sub" / "__init__.py"
    assert sub.read_text() == 'VERSION = "9.0"\n'
    assert not (venv.site_packages / "demopkg" / "only_v1.py").exists()


def test_failing_verify_command_is_refused(venv_with_pkg_1: Venv, tmp_path: Path) -> None:
    venv = venv_with_pkg_1
    before = tree_digest(venv.root)
    command = python_c(venv, "print('checking...'); raise SystemExit(3)")
    proc = setup_py(venv, make_project("pkg", tmp_path, "2.0"), "--verify-command", command,
                    check=False)
    message = assert_refused(venv, before, proc)
    assert f"--verify-command {command!r} failed (exit status 3)" in message
    assert "checking..." in message  # the command's own output is shown
    assert venv.import_version("demopkg") == "1.0"


def test_verify_command_sees_the_staged_version(venv_with_pkg_1: Venv, tmp_path: Path) -> None:
    """With 1.0 installed, the command imports 2.0 from the staging directory, from a
    working directory that is not the project's, and bytecode writing is off there."""
    venv = venv_with_pkg_1
    project = make_project("pkg", tmp_path, "2.0")
    code = (
        "import os, sys, demopkg, demopkg.sub.extra\n"
        "assert demopkg.VERSION == '2.0', demopkg.VERSION\n"
        "stage = os.environ['INSTALL_ATOMIC_STAGE']\n"
        "assert demopkg.__file__.startswith(stage + os.sep), demopkg.__file__\n"
        "assert '.install-atomic-' in stage, stage\n"
        f"assert os.getcwd() != {str(project)!r}\n"
        "assert sys.dont_write_bytecode\n"
        "print('verified', demopkg.VERSION)\n"
    )
    proc = setup_py(venv, project, "--verify-command", python_c(venv, code))
    assert "running" in proc.stdout and "against the staged tree" in proc.stdout
    assert venv.import_version("demopkg") == "2.0"
    assert leftovers(venv.root) == []
    # the checks left no bytecode naming the staging directory behind
    for pyc in venv.site_packages.rglob("*.pyc"):
        if "demopkg" in pyc.parts:
            source = pyc.parent.parent / (pyc.name.split(".")[0] + ".py")
            check_pyc(pyc, source)


def test_verify_command_with_plain_python(venv_with_pkg_1: Venv, tmp_path: Path) -> None:
    """``python`` in the command is the interpreter doing the install (the venv's), even
    when the venv's bin is not on PATH; the staged tree comes first on its sys.path."""
    venv = venv_with_pkg_1
    path = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    command = (
        "python -c \"import sys, demopkg; assert demopkg.VERSION == '2.0';"
        f" assert sys.prefix == {str(venv.root)!r}, sys.prefix\""
    )
    setup_py(venv, make_project("pkg", tmp_path, "2.0"), "--verify-command", command, env=path)
    assert venv.import_version("demopkg") == "2.0"
    before = tree_digest(venv.root)
    command = "python -c \"import demopkg; assert demopkg.VERSION == '2.0', demopkg.VERSION\""
    proc = setup_py(venv, make_project("pkg", tmp_path, "3.0"), "--verify-command", command,
                    env=path, check=False)
    message = assert_refused(venv, before, proc)
    assert "AssertionError: 3.0" in message
    assert "Fix the release or the command, or leave out --verify-command." in message


EXT_UNDEFINED_SYMBOL = """
extern int demoext_missing_symbol(void);

PyMODINIT_FUNC
"""


def broken_ext(tmp_path: Path, imported_by_package: bool) -> Path:
    """ext 2.0 whose extension links but cannot load: it needs an undefined symbol."""
    project = make_project("ext", tmp_path, "2.0")
    source = project / "demoext" / "_speed.c"
    text = source.read_text()
    text = text.replace("PyMODINIT_FUNC\n", EXT_UNDEFINED_SYMBOL.lstrip("\n"), 1)
    text = text.replace(
        "    PyObject *m = PyModule_Create",
        "    if (demoext_missing_symbol() != 42) {\n        return NULL;\n    }\n"
        "    PyObject *m = PyModule_Create",
    )
    assert "demoext_missing_symbol() != 42" in text
    source.write_text(text)
    if imported_by_package:
        init = project / "demoext" / "__init__.py"
        init.write_text(init.read_text() + "\nfrom demoext import _speed  # noqa\n")
    return project


@pytest.mark.parametrize(
    "imported_by_package", [True, False], ids=["imported-by-init", "submodule-only"]
)
def test_extension_that_fails_to_load_is_refused(
    imported_by_package: bool, make_venv: MakeVenv, tmp_path: Path
) -> None:
    """demoext 1.0 is installed; 2.0's ``_speed`` extension builds and links but fails to
    load (undefined symbol).  Whether or not ``demoext/__init__.py`` imports it, the
    import check must load it and refuse the release."""
    venv = make_venv("newest")
    setup_py(venv, make_project("ext", tmp_path / "old", "1.0"))
    before = tree_digest(venv.root)
    proc = setup_py(venv, broken_ext(tmp_path, imported_by_package), check=False)
    message = assert_refused(venv, before, proc)
    assert "undefined symbol: demoext_missing_symbol" in message
    assert run_in(venv, "import demoext._speed as s; print(s.version())") == "1.0"


# --------------------------------------------------------------------------- no orphans
# verify.check_imports and verify.run_command called directly, in this process or in a
# small "installer" process started here: the checks' processes must not outlive them.

WAIT = 120.0

HARNESS = r"""
import sys
from install_atomic.checks import verify
what, stage, dest = sys.argv[1], sys.argv[2], sys.argv[3]
if what == "imports":
    verify.check_imports(stage, dest, ["blocker"])
else:
    verify.run_command(sys.argv[4], stage, dest)
"""

BLOCKER = """
import os, time
with open(os.environ["IA_TEST_PIDFILE"] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(os.environ["IA_TEST_PIDFILE"] + ".tmp", os.environ["IA_TEST_PIDFILE"])
while True:
    time.sleep(3600)
"""


def _wait_for_file(path: Path, proc: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + WAIT
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the harness exited ({proc.returncode}) before {path.name}")
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)
    return int(path.read_text())


def _procs(pids: list[int]) -> list[Proc]:
    return [p for p in map(Proc.of, pids) if p is not None]


@pytest.fixture
def stage(tmp_path: Path) -> Path:
    lib = tmp_path / "site" / ".install-atomic-123-stage"
    lib.mkdir(parents=True)
    (lib / "blocker.py").write_text(BLOCKER)
    return lib


def _sleeper(token: str) -> str:
    """A shell command line: a Python process that sleeps, recognisable by *token*."""
    code = "import time\nwhile True:\n    time.sleep(3600)"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} {token}"


def _background(token: str, pidfile: Path) -> str:
    """A shell command line: start :func:`_sleeper` in the background and write its pid to
    *pidfile* (complete, or not there)."""
    tmp, final = shlex.quote(f"{pidfile}.tmp"), shlex.quote(str(pidfile))
    return f"{_sleeper(token)} >/dev/null 2>&1 & echo $! > {tmp} && mv {tmp} {final}"


def _harness(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    script = tmp_path / "harness.py"
    script.write_text(HARNESS)
    env = clean_env({"PYTHONPATH": str(REPO_ROOT / "src"),
                     "IA_TEST_PIDFILE": str(tmp_path / "child.pid")})
    # Ctrl-C must reach it even when the tests run where SIGINT is ignored (a background
    # job of a shell, 'nohup ... &'): ignored dispositions are inherited, and Python then
    # never installs its KeyboardInterrupt handler.
    return subprocess.Popen([sys.executable, str(script), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_timeout_kills_the_whole_process_group(stage: Path, tmp_path: Path) -> None:
    """A --verify-command that does not finish: when its time is up, the command and the
    processes it started are killed, and the usual message is raised."""
    pidfile = tmp_path / "grandchild.pid"
    token = f"ia-test-{uuid.uuid4().hex}"
    command = f"{_background(token, pidfile)}; wait"
    try:
        for timeout in (3.0, 20.0, 60.0):  # until the shell got to start the sleeper
            with pytest.raises(VerificationError) as info:
                verify.run_command(command, str(stage), str(tmp_path / "site"), timeout=timeout)
            if pidfile.exists():
                break
        assert f"did not finish within {timeout:g}s; nothing was installed" in str(info.value)
        assert "Fix the release or the command, or leave out --verify-command." in str(
            info.value)
        assert survivors(_procs([int(pidfile.read_text())])) == [], (
            "the command's background process survived")
    finally:
        kill_all(running(token.encode()))


def test_processes_left_by_a_finished_check_are_killed(stage: Path, tmp_path: Path) -> None:
    """A --verify-command that succeeds but leaves a background process behind: the process
    does not outlive the check."""
    pidfile = tmp_path / "grandchild.pid"
    token = f"ia-test-{uuid.uuid4().hex}"
    command = _background(token, pidfile)
    try:
        verify.run_command(command, str(stage), str(tmp_path / "site"))
        assert survivors(_procs([int(pidfile.read_text())])) == [], (
            "the command's background process survived")
    finally:
        kill_all(running(token.encode()))


def test_interrupt_kills_the_whole_process_group(stage: Path, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the installer alone: the check runs in a session of its own)
    while a --verify-command runs: KeyboardInterrupt goes on, and the command and what it
    started are gone."""
    pidfile = tmp_path / "child.pid"
    token = f"ia-test-{uuid.uuid4().hex}"
    command = f"{_background(token, pidfile)}; wait"
    procs: list[Proc] = []
    try:
        for _ in range(3):
            pidfile.unlink(missing_ok=True)
            harness = _harness(tmp_path, "command", str(stage), str(tmp_path / "site"),
                               command)
            _wait_for_file(pidfile, harness)
            procs = _procs(descendants(harness.pid))
            harness.send_signal(signal.SIGINT)
            out, _ = harness.communicate(timeout=WAIT)
            assert "KeyboardInterrupt" in out
            if "communicate" in out:  # not still inside Popen() (a very busy machine)
                break
            kill_all(procs)
        assert len(procs) >= 2, "expected the shell and its sleeper"
        left = survivors(procs)
        assert not left, "the verify command's processes survived:\n" + "\n".join(
            map(str, left))
    finally:
        kill_all(procs + running(token.encode()))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_import_check_dies_with_the_installer(stage: Path, tmp_path: Path) -> None:
    """The installer is SIGKILLed (no exception, no clean-up of its own) while the import
    check runs: the kernel kills the check too."""
    harness = _harness(tmp_path, "imports", str(stage), str(tmp_path / "site"))
    procs: list[Proc] = []
    try:
        procs = _procs([_wait_for_file(tmp_path / "child.pid", harness)])
        assert len(procs) == 1 and b"import_module" in procs[0].cmd
        harness.kill()
        harness.communicate(timeout=WAIT)
        left = survivors(procs)
        assert not left, f"the import check outlived the installer: {left[0]}"
    finally:
        harness.kill()
        harness.wait()
        kill_all(procs)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_sigkill_of_the_installer_kills_what_its_command_started(
        stage: Path, tmp_path: Path) -> None:
    """The installer is SIGKILLed while a --verify-command's shell waits for a process it
    started in the background: the kernel kills the shell (its direct child), the
    guard the rest of its process group, and the guard exits: nothing is left."""
    pidfile = tmp_path / "child.pid"
    token = f"ia-test-{uuid.uuid4().hex}"
    harness = _harness(tmp_path, "command", str(stage), str(tmp_path / "site"),
                       f"{_background(token, pidfile)}; wait")
    procs: list[Proc] = []
    try:
        _wait_for_file(pidfile, harness)
        procs = _procs(descendants(harness.pid))
        cmds = b"\n".join(p.cmd for p in procs)
        assert token.encode() in cmds and b"install-atomic guard" in cmds, cmds
        harness.kill()
        harness.communicate(timeout=WAIT)
        left = survivors(procs)
        assert not left, "processes outlived the installer:\n" + "\n".join(map(str, left))
    finally:
        harness.kill()
        harness.wait()
        kill_all(procs + running(token.encode()))


# --------------------------------------------------------------------------- what is checked


def _stage(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path]:
    stage, dest = tmp_path / "stage", tmp_path / "site"
    for rel, text in files.items():
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        (stage / rel).write_text(text)
    dest.mkdir()
    return stage, dest


def test_a_missing_dependency_is_named(tmp_path: Path) -> None:
    dep = f"absent_dep_{uuid.uuid4().hex[:8]}"
    stage, dest = _stage(tmp_path, {"needy/__init__.py": f"import {dep}\n"})
    with pytest.raises(VerificationError) as info:
        verify.check_imports(str(stage), str(dest))
    message = str(info.value)
    assert f"requires {dep}, which is not installed in {dest}" in message, message
    assert f"Install {dep} first" in message and "Fix the release" not in message


def test_a_module_missing_from_the_release_is_not_called_a_dependency(tmp_path: Path) -> None:
    stage, dest = _stage(tmp_path, {"pkg/__init__.py": "from pkg import gone\n"})
    with pytest.raises(VerificationError) as info:
        verify.check_imports(str(stage), str(dest))
    assert "Fix the release" in str(info.value) and "requires" not in str(info.value)


def test_the_standard_library_comes_before_the_destination(tmp_path: Path) -> None:
    """A stale ``statistics.py`` left in site-packages does not shadow the standard
    library's after the install, so it must not during the check either."""
    stage, dest = _stage(tmp_path, {"stats_user.py": "import statistics\nstatistics.mean([1])\n"})
    (dest / "statistics.py").write_text("raise ImportError('the stale copy was imported')\n")
    verify.check_imports(str(stage), str(dest))  # raises if the stale copy shadows
    (stage / "stats_user.py").write_text("import statistics\nassert False, statistics.__file__\n")
    with pytest.raises(VerificationError) as info:
        verify.check_imports(str(stage), str(dest))
    assert "stale copy" not in str(info.value), "the control must reach the stdlib module"


def test_a_ctypes_library_is_not_imported(tmp_path: Path) -> None:
    """A real shared library without ``PyInit_`` (built with the C compiler, loaded with
    ctypes by its package, as pycryptodome does) passes the check."""
    import shutil

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a shared library")
    stage, dest = _stage(tmp_path, {
        "cryptoish/__init__.py": (
            "import ctypes, glob, os\n"
            "lib = ctypes.CDLL(glob.glob(os.path.join(os.path.dirname(__file__),"
            " '_raw_add*.so'))[0])\n"
            "assert lib.raw_add(2, 3) == 5\n"
        ),
    })
    source = tmp_path / "raw_add.c"
    source.write_text("int raw_add(int a, int b) { return a + b; }\n")
    subprocess.run([cc, "-shared", "-fPIC", "-o",
                    str(stage / "cryptoish" / "_raw_add.abi3.so"), str(source)], check=True)
    assert verify.importable_names(str(stage)) == ["cryptoish"]
    verify.check_imports(str(stage), str(dest))


# --------------------------------------------------------------------------- --verify-timeout


@pytest.mark.parametrize("where", ["option", "setup.cfg"])
def test_verify_timeout_bounds_the_command(
    where: str, venv_with_pkg_1: Venv, tmp_path: Path
) -> None:
    """``--verify-timeout 1`` (or ``verify_timeout = 1`` in setup.cfg) stops a command that
    would run for ten minutes: refused, the message names the limit and the option."""
    venv = venv_with_pkg_1
    before = tree_digest(venv.root)
    project = make_project("pkg", tmp_path, "2.0")
    args = ["--verify-command", python_c(venv, "import time; time.sleep(600)")]
    if where == "option":
        args += ["--verify-timeout", "1"]
    else:
        (project / "setup.cfg").write_text("[install_atomic]\nverify_timeout = 1\n")
    proc = setup_py(venv, project, *args, check=False)
    message = assert_refused(venv, before, proc)
    assert "did not finish within 1s" in message
    assert "raise --verify-timeout" in message
    assert venv.import_version("demopkg") == "1.0"


def test_verify_timeout_bounds_the_import_check(venv_with_pkg_1: Venv, tmp_path: Path) -> None:
    """The same option bounds the import check: a release whose import would take ten
    minutes is refused after one second."""
    venv = venv_with_pkg_1
    before = tree_digest(venv.root)
    project = make_project("pkg", tmp_path, "2.0")
    init = project / "demopkg" / "__init__.py"
    init.write_text(init.read_text() + "\nimport time\ntime.sleep(600)\n")
    proc = setup_py(venv, project, "--verify-timeout", "1", check=False)
    message = assert_refused(venv, before, proc)
    assert "the import check of demopkg did not finish within 1s" in message
    assert venv.import_version("demopkg") == "1.0"


# --------------------------------------------------------------------------- which copy

SHADOWED = {"shadowed/__init__.py": "WHERE = 'staged'\n", "ns_part/inner.py": "WHERE = 'staged'\n"}


def _shadowing_source(tmp_path: Path) -> Path:
    """A checkout with its own copies of the staged modules, which would win if it came
    first on sys.path."""
    src = tmp_path / "checkout"
    for rel in SHADOWED:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("WHERE = 'source'\n")
    return src


def test_the_command_imports_the_staged_modules_whatever_comes_first(tmp_path: Path) -> None:
    """A command that runs Python from a checkout shadowing the staged modules (the
    checkout is then first on sys.path) still imports the staged ones, for a package and
    for a module inside a PEP 420 namespace; the run reports where they came from."""
    stage, dest = _stage(tmp_path, SHADOWED)
    src = _shadowing_source(tmp_path)
    out = tmp_path / "where.txt"
    code = (
        "import shadowed, ns_part.inner\n"
        f"open({str(out)!r}, 'w').write(shadowed.WHERE + ' ' + ns_part.inner.WHERE)\n"
    )
    logged: list[str] = []
    origins = verify.run_command(f"cd {shlex.quote(str(src))} && python -c {shlex.quote(code)}",
                                 str(stage), str(dest), log=logged.append)
    assert out.read_text() == "staged staged"
    assert origins == {
        "shadowed": str(stage / "shadowed" / "__init__.py"),
        "ns_part.inner": str(stage / "ns_part" / "inner.py"),
    }
    assert logged == [f"install_atomic: the verify command imported {name} from {where}"
                      for name, where in origins.items()]


def test_the_hook_hands_over_to_the_environments_sitecustomize(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``sitecustomize`` the environment already has (on PYTHONPATH here) still runs in
    the command's processes, after the staged modules are pinned."""
    stage, dest = _stage(tmp_path, SHADOWED)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "sitecustomize.py").write_text("import builtins\nbuiltins.MINE_RAN = True\n")
    monkeypatch.setenv("PYTHONPATH", str(mine))
    out = tmp_path / "out.txt"
    code = (
        "import builtins, sitecustomize, shadowed\n"
        f"open({str(out)!r}, 'w').write(repr((builtins.MINE_RAN, sitecustomize.__file__,"
        " shadowed.WHERE)))\n"
    )
    src = _shadowing_source(tmp_path)
    verify.run_command(f"cd {shlex.quote(str(src))} && python -c {shlex.quote(code)}",
                       str(stage), str(dest))
    assert out.read_text() == repr((True, str(mine / "sitecustomize.py"), "staged"))


def test_a_command_that_imports_nothing_of_the_project_is_noted(tmp_path: Path) -> None:
    stage, dest = _stage(tmp_path, SHADOWED)
    logged: list[str] = []
    assert verify.run_command("true", str(stage), str(dest), log=logged.append) == {}
    assert logged == ["install_atomic: note: the verify command imported none of"
                      " ns_part.inner, shadowed"]


def test_the_import_check_reports_where_it_imported_from(tmp_path: Path) -> None:
    stage, dest = _stage(tmp_path, SHADOWED)
    logged: list[str] = []
    origins = verify.check_imports(str(stage), str(dest), log=logged.append)
    assert origins == {
        "ns_part.inner": str(stage / "ns_part" / "inner.py"),
        "shadowed": str(stage / "shadowed" / "__init__.py"),
    }
    assert logged == [f"install_atomic: {name} imported from {where}"
                      for name, where in origins.items()]


SIX = "six==1.16.0"

#: In six's checkout, next to its six.py: which six do the tests import?
WHERE_TEST = """
import os
import six


def test_where():
    with open(os.environ["IA_TEST_OUT"], "w") as f:
        f.write(six.__file__)
"""


@pytest.fixture(scope="session")
def six_sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """six 1.16.0's sdist: a flat layout, ``six.py`` and ``test_six.py`` side by side."""
    base = tmp_path_factory.mktemp("six")
    run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-binary",
         ":all:", "--no-deps", "-d", str(base), SIX], timeout=600)
    found = sorted(base.glob("six-1.16.0.tar.gz"))
    assert len(found) == 1, f"pip download {SIX} gave {sorted(base.iterdir())}"
    return found[0]


@pytest.mark.parametrize("how", ["pytest", "python-c"])
def test_verify_command_run_from_six_checkout_tests_the_staged_six(
    how: str, six_sdist: Path, make_venv: MakeVenv, tmp_path: Path
) -> None:
    """The real six sdist, installed with a --verify-command run from its own checkout,
    where ``six.py`` sits: pytest puts the test file's directory first on sys.path, and
    ``python -c`` the working directory.  Either way the command imports the staged
    six.py (what will be installed), and the output says so."""
    venv = make_venv("newest")
    if how == "pytest":
        venv.pip("install", "pytest")
    with tarfile.open(six_sdist) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp_path / "src", filter="data")
        else:  # Python < 3.11.4 (an sdist downloaded from PyPI just now)
            tar.extractall(tmp_path / "src")
    src = tmp_path / "src" / "six-1.16.0"
    assert (src / "six.py").is_file() and (src / "test_six.py").is_file()
    (src / "test_where.py").write_text(WHERE_TEST)
    out = tmp_path / "six-file.txt"
    if how == "pytest":
        tests = "-p no:cacheprovider test_where.py test_six.py -k 'not test_move_items'"
        command = f"cd {shlex.quote(str(src))} && python -m pytest -q {tests}"
    else:
        code = "import os, six; open(os.environ['IA_TEST_OUT'], 'w').write(six.__file__)"
        command = f"cd {shlex.quote(str(src))} && python -c {shlex.quote(code)}"
    proc = setup_py(venv, src, "--verify-command", command, env={"IA_TEST_OUT": str(out)})
    imported = Path(out.read_text())
    assert imported.name == "six.py" and imported.parent.parent == venv.site_packages
    assert imported.parent.name.startswith(".install-atomic-"), imported
    assert f"install_atomic: the verify command imported six from {imported}\n" in proc.stdout
    assert f"install_atomic: six imported from {imported}\n" in proc.stdout  # import check
    assert run_in(venv, "import six; print(six.__file__)") == str(venv.site_packages / "six.py")
    assert leftovers(venv.root) == []


# --------------------------------------------------------------------------- --verify-deep


def test_the_deep_check_imports_every_submodule_but_tests_and_main(tmp_path: Path) -> None:
    """The default check imports the top-level package only; ``--verify-deep`` also
    imports ``deep.sub.broken`` (and fails on it), never ``deep.__main__`` (a program)
    nor the test package (test-only dependencies)."""
    stage, dest = _stage(tmp_path, {
        "deep/__init__.py": "",
        "deep/__main__.py": "raise SystemExit('__main__ must not be imported')\n",
        "deep/sub/__init__.py": "",
        "deep/sub/ok.py": "X = 1\n",
        "deep/sub/broken.py": "raise RuntimeError('the broken submodule was imported')\n",
        "deep/tests/__init__.py": "import pytest_only_dependency_xyz\n",
        "deep/tests/test_it.py": "import pytest_only_dependency_xyz\n",
    })
    assert verify.all_modules(str(stage)) == [
        "deep", "deep.sub", "deep.sub.broken", "deep.sub.ok"]
    verify.check_imports(str(stage), str(dest))  # the default: passes
    with pytest.raises(VerificationError) as info:
        verify.check_imports(str(stage), str(dest), verify.all_modules(str(stage)))
    assert "the broken submodule was imported" in str(info.value)
    assert "__main__ must not be imported" not in str(info.value)
    (stage / "deep" / "sub" / "broken.py").write_text("Y = 2\n")
    verify.check_imports(str(stage), str(dest), verify.all_modules(str(stage)))
