"""Deferred commits: ``install --defer``, the Python API in a process that has the old
version loaded, the start-up hook, ``commit-pending`` and ``discard-pending``.

Every test runs real interpreters of a real virtual environment; the package
``lazy`` imports its submodule ``sub`` only when ``lazy.later()`` is called, as
a program that loads part of a package lazily does.
"""

from __future__ import annotations

import fcntl
import json
import os
import pkgutil
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from helpers import Venv, describe_proc, ia_run, leftovers, make_project, make_wheel, run
from install_atomic.frontends.deferred import hook

pytestmark = pytest.mark.slow

HOOK_FILES = [hook.HOOK + ".pth", hook.HOOK + ".start"]


def lazy_wheel(directory: Path, version: str, *, extra: int = 0) -> Path:
    files = {
        "lazy/__init__.py": textwrap.dedent(f"""\
            VERSION = {version!r}
            def later():
                from lazy import sub
                return sub.VERSION
            """),
        "lazy/sub.py": f"VERSION = {version!r}\n",
    }
    for n in range(extra):  # more top-level entries, so that a commit has several renames
        files[f"lazy_extra{n}/__init__.py"] = f"VERSION = {version!r}\n"
    return make_wheel(directory, "lazy", version, files)


def install_now(venv: Venv, wheel: Path) -> None:
    ia_run(venv, "install", "--no-index", "--no-deps", "-q", wheel)


def defer_lazy(venv: Venv, tmp_path: Path) -> None:
    """lazy 1.0 installed, lazy 2.0 deferred with ``install --defer`` (nothing holds it)."""
    install_now(venv, lazy_wheel(tmp_path / "w1", "1.0"))
    ia_run(venv, "install", "--no-index", "--no-deps", "--defer", "-q",
           lazy_wheel(tmp_path / "w2", "2.0"))


def versions(venv: Venv, *, args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Start an interpreter (running the hook, if any) and report what it imports."""
    code = "import lazy; print(lazy.VERSION, lazy.later())"
    return venv.run(*args, "-c", code, check=False)


def pending_ids(venv: Venv) -> list[str]:
    return sorted(p.name for p in venv.site_packages.glob(".install-atomic-*.pending"))


def hook_present(venv: Venv) -> list[str]:
    return [name for name in HOOK_FILES if (venv.site_packages / name).exists()]


# A long-running program: imports lazy 1.0, upgrades it through the API, then imports
# the lazy submodule; it waits for a line on stdin before it exits.
PROGRAM = textwrap.dedent("""\
    import json, sys, warnings
    import lazy
    import install_atomic
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = install_atomic.install(sys.argv[1], no_index=True, no_deps=True)
    print(json.dumps({
        "deferred": result.deferred, "pending_id": result.pending_id,
        "loaded": result.loaded_modules, "restart": result.restart_needed,
        "changes": [[c.name, list(c.old_versions), c.new_version]
                    for c in result.distributions],
        "renames": len(result.renames),
        "later": lazy.later(), "version": lazy.VERSION,
        "warnings": [(w.category.__name__, str(w.message)) for w in caught],
    }), flush=True)
    sys.stdin.readline()
""")


def start_program(venv: Venv, tmp_path: Path, wheel: Path) -> tuple[subprocess.Popen[str], dict]:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM, encoding="utf-8")
    proc = subprocess.Popen([venv.python, script, wheel], cwd=venv.root, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        _out, err = proc.communicate()
        pytest.fail(f"the program failed: {err}")
    return proc, json.loads(line)


def stop_program(proc: subprocess.Popen[str]) -> None:
    _out, err = proc.communicate("\n", timeout=120)
    assert proc.returncode == 0, err


def test_api_defers_while_the_old_version_is_loaded(
        make_venv, tmp_path: Path) -> None:
    venv = make_venv()
    install_now(venv, lazy_wheel(tmp_path / "w1", "1.0"))
    proc, seen = start_program(venv, tmp_path, lazy_wheel(tmp_path / "w2", "2.0"))
    try:
        # The program keeps 1.0 whole: its lazy import gets 1.0's submodule.
        assert seen["deferred"] and seen["restart"], seen
        assert seen["loaded"] == ["lazy"] and seen["renames"] == 0, seen
        assert seen["changes"] == [["lazy", ["1.0"], "2.0"]], seen
        assert (seen["version"], seen["later"]) == ("1.0", "1.0"), seen
        [(category, message)] = seen["warnings"]
        assert category == "PendingInstallWarning" and "restart" in message, message
        # While it runs, other interpreters start with 1.0: the commit waits for it.
        proc2 = versions(venv)
        assert proc2.stdout.split() == ["1.0", "1.0"] and not proc2.stderr, describe_proc(proc2)
        assert hook_present(venv) == HOOK_FILES
        status = ia_run(venv, "status", venv.site_packages)
        assert f"pending install of lazy 1.0 -> 2.0 (id {seen['pending_id']})" in status.stdout
        assert f"waiting for process {proc.pid}" in status.stdout, status.stdout
    finally:
        stop_program(proc)
    # The first interpreter started after it exits commits, then imports 2.0.
    after = versions(venv)
    assert after.stdout.split() == ["2.0", "2.0"] and not after.stderr, describe_proc(after)
    assert hook_present(venv) == [] and pending_ids(venv) == []
    assert leftovers(venv.site_packages) == []
    assert "nothing pending" in ia_run(venv, "commit-pending", venv.site_packages).stdout


FORKER = textwrap.dedent("""\
    import os, sys, warnings
    import lazy
    import install_atomic
    warnings.simplefilter("ignore")
    assert install_atomic.install(sys.argv[1], no_index=True, no_deps=True).deferred
    if os.fork() == 0:  # the child shares the parent's modules: it holds the install too
        sys.stdin.readline()
        os._exit(0)
    print("forked", flush=True)  # and the parent exits
""")


def test_a_forked_child_holds_the_pending_install_too(make_venv, tmp_path: Path) -> None:
    venv = make_venv()
    install_now(venv, lazy_wheel(tmp_path / "w1", "1.0"))
    script = tmp_path / "forker.py"
    script.write_text(FORKER, encoding="utf-8")
    proc = subprocess.Popen([venv.python, script, lazy_wheel(tmp_path / "w2", "2.0")],
                            cwd=venv.root, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline() == "forked\n"
    assert proc.wait(timeout=300) == 0  # the parent is gone, its child lives on
    held = versions(venv)
    assert held.stdout.split() == ["1.0", "1.0"] and not held.stderr, describe_proc(held)
    proc.stdin.write("\n")
    proc.stdin.close()
    assert proc.stdout.read() == ""  # end of file: the child has exited
    proc.stdout.close()
    assert versions(venv).stdout.split() == ["2.0", "2.0"]
    assert pending_ids(venv) == [] and hook_present(venv) == []


def test_api_commits_at_once_when_nothing_old_is_loaded(make_venv, tmp_path: Path) -> None:
    venv = make_venv()
    install_now(venv, lazy_wheel(tmp_path / "w1", "1.0"))
    code = textwrap.dedent("""\
        import sys, install_atomic
        r = install_atomic.install(sys.argv[1], no_index=True, no_deps=True)
        print(r.deferred, r.restart_needed, len(r.renames) > 0)
        """)
    proc = venv.run("-c", code, lazy_wheel(tmp_path / "w2", "2.0"))
    assert proc.stdout.split() == ["False", "False", "True"], describe_proc(proc)
    assert versions(venv).stdout.split() == ["2.0", "2.0"]
    assert hook_present(venv) == [] and pending_ids(venv) == []


def test_api_errors_are_exceptions_never_exit(make_venv, tmp_path: Path) -> None:
    venv = make_venv()
    code = textwrap.dedent("""\
        import sys, install_atomic
        from install_atomic.errors import InstallAtomicError
        try:
            install_atomic.install(sys.argv[1], no_index=True, no_deps=True)
        except InstallAtomicError as exc:
            print("InstallAtomicError", exc.path)
        try:
            install_atomic.install()
        except ValueError:
            print("ValueError")
        try:
            install_atomic.uninstall("not-installed-anywhere")
        except InstallAtomicError:
            print("InstallAtomicError")
        """)
    missing = tmp_path / "missing-1.0-py3-none-any.whl"
    proc = venv.run("-c", code, missing)
    assert proc.stdout.splitlines() == [f"InstallAtomicError {missing}", "ValueError",
                                        "InstallAtomicError"], describe_proc(proc)


def test_cli_defer_is_committed_by_the_next_start(make_venv, tmp_path: Path) -> None:
    venv = make_venv()
    install_now(venv, lazy_wheel(tmp_path / "w1", "1.0"))
    before = (venv.site_packages / "lazy" / "__init__.py").read_text()
    proc = ia_run(venv, "install", "--no-index", "--no-deps", "--defer",
                  lazy_wheel(tmp_path / "w2", "2.0", extra=3))
    assert "deferred the install of lazy 1.0 -> 2.0" in proc.stdout, describe_proc(proc)
    # Nothing changed yet but the pending record and the hook.
    assert (venv.site_packages / "lazy" / "__init__.py").read_text() == before
    assert not (venv.site_packages / "lazy_extra0").exists()
    assert len(pending_ids(venv)) == 1 and hook_present(venv) == HOOK_FILES
    # The .start twin names an entry point that resolves (Python 3.15+ calls it).
    entry = (venv.site_packages / HOOK_FILES[1]).read_text().strip()
    assert pkgutil.resolve_name(entry) is hook.run
    after = versions(venv)
    assert after.stdout.split() == ["2.0", "2.0"] and not after.stderr, describe_proc(after)
    assert (venv.site_packages / "lazy_extra2" / "__init__.py").exists()
    assert hook_present(venv) == [] and pending_ids(venv) == []
    assert leftovers(venv.site_packages) == []


def test_python_dash_s_runs_no_hook(make_venv, tmp_path: Path) -> None:
    venv = make_venv()
    defer_lazy(venv, tmp_path)
    # -S: no site, no hook; the install stays pending (the module is found by path).
    code = f"import sys; sys.path.insert(0, {str(venv.site_packages)!r}); import lazy;" \
           " print(lazy.VERSION)"
    assert venv.run("-S", "-c", code).stdout.strip() == "1.0"
    assert len(pending_ids(venv)) == 1 and hook_present(venv) == HOOK_FILES
    # install-atomic's own start leaves it to the command: status shows it.
    status = ia_run(venv, "status", venv.site_packages)
    assert "pending install of lazy 1.0 -> 2.0" in status.stdout, describe_proc(status)
    # So does a start with INSTALL_ATOMIC_COMMIT_AT_START=0.
    off = venv.run("-c", "import lazy; print(lazy.VERSION)",
                   env={"INSTALL_ATOMIC_COMMIT_AT_START": "0"})
    assert off.stdout.strip() == "1.0" and len(pending_ids(venv)) == 1
    done = ia_run(venv, "commit-pending", venv.site_packages)
    assert "committed the pending install of lazy 1.0 -> 2.0" in done.stdout, describe_proc(done)
    assert hook_present(venv) == [] and pending_ids(venv) == []
    assert venv.run("-S", "-c", code).stdout.strip() == "2.0"


def test_discard_pending_of_the_running_environment(make_venv, tmp_path: Path) -> None:
    venv = make_venv()
    defer_lazy(venv, tmp_path)
    done = ia_run(venv, "discard-pending", venv.site_packages)
    assert "dropped the pending install of lazy 1.0 -> 2.0" in done.stdout, describe_proc(done)
    assert hook_present(venv) == [] and pending_ids(venv) == []
    assert versions(venv).stdout.split() == ["1.0", "1.0"]
    assert leftovers(venv.site_packages) == []


def defer_into(venv: Venv, target: Path, wheel: Path) -> str:
    """``install --target TARGET --defer WHEEL`` (no interpreter start processes TARGET,
    so only commit-pending, discard-pending or the next install act on it); the id."""
    proc = ia_run(venv, "install", "--no-index", "--no-deps", "--defer", "--target", target,
                  wheel)
    assert f"'install-atomic commit-pending {target}'" in proc.stdout, describe_proc(proc)
    [record] = target.glob(".install-atomic-*.pending")
    assert not [p for p in HOOK_FILES if (target / p).exists()]
    return record.name[len(".install-atomic-"):-len(".pending")]


def target_version(venv: Venv, target: Path) -> list[str]:
    code = f"import sys; sys.path.insert(0, {str(target)!r}); import lazy;" \
           " print(lazy.VERSION, lazy.later())"
    return venv.run("-c", code).stdout.split()


def test_commit_pending(make_venv, tmp_path: Path) -> None:
    venv, target = make_venv(), tmp_path / "target"
    ia_run(venv, "install", "--no-index", "--no-deps", "-q", "--target", target,
           lazy_wheel(tmp_path / "w1", "1.0"))
    txid = defer_into(venv, target, lazy_wheel(tmp_path / "w2", "2.0"))
    status = ia_run(venv, "status", target).stdout
    assert f"pending install of lazy 1.0 -> 2.0 (id {txid}): committed at" in status, status
    assert target_version(venv, target) == ["1.0", "1.0"]
    done = ia_run(venv, "commit-pending", target)
    assert "committed the pending install of lazy 1.0 -> 2.0" in done.stdout, describe_proc(done)
    assert target_version(venv, target) == ["2.0", "2.0"]
    assert list(target.glob(".install-atomic-*")) == [] and leftovers(target) == []
    assert "nothing pending" in ia_run(venv, "commit-pending", target).stdout


def test_discard_pending_keeps_the_installed_version(make_venv, tmp_path: Path) -> None:
    venv, target = make_venv(), tmp_path / "target"
    ia_run(venv, "install", "--no-index", "--no-deps", "-q", "--target", target,
           lazy_wheel(tmp_path / "w1", "1.0"))
    txid = defer_into(venv, target, lazy_wheel(tmp_path / "w2", "2.0"))
    assert ia_run(venv, "discard-pending", "--id", "1-00", target,
                  status=1).stdout.startswith("nothing pending")
    done = ia_run(venv, "discard-pending", "--id", txid, target)
    assert f"dropped the pending install of lazy 1.0 -> 2.0 (id {txid})" in done.stdout
    assert leftovers(target) == []
    assert target_version(venv, target) == ["1.0", "1.0"]


def test_the_next_install_commits_what_is_pending_first(make_venv, tmp_path: Path) -> None:
    venv, target = make_venv(), tmp_path / "target"
    ia_run(venv, "install", "--no-index", "--no-deps", "-q", "--target", target,
           lazy_wheel(tmp_path / "w1", "1.0"))
    defer_into(venv, target, lazy_wheel(tmp_path / "w2", "2.0"))
    other = make_wheel(tmp_path / "wo", "other", "1.0", {"other.py": "X = 1\n"})
    proc = ia_run(venv, "install", "--no-index", "--no-deps", "--target", target, other)
    assert "committed the pending install of lazy 1.0 -> 2.0" in proc.stdout, describe_proc(proc)
    assert leftovers(target) == [] and (target / "other.py").is_file()
    assert target_version(venv, target) == ["2.0", "2.0"]


def test_a_later_install_supersedes_an_older_pending_one(make_venv, tmp_path: Path) -> None:
    """lazy 2.0 deferred by a live program, then lazy 3.0 installed now from outside:
    when the program exits, 2.0 must not come back over 3.0."""
    venv = make_venv()
    install_now(venv, lazy_wheel(tmp_path / "w1", "1.0"))
    proc, seen = start_program(venv, tmp_path, lazy_wheel(tmp_path / "w2", "2.0"))
    try:
        assert seen["deferred"], seen
        done = ia_run(venv, "install", "--no-index", "--no-deps",
                      lazy_wheel(tmp_path / "w3", "3.0"))
        assert "dropped the pending install of lazy 1.0 -> 2.0" in done.stderr, describe_proc(
            done)
    finally:
        stop_program(proc)
    assert versions(venv).stdout.split() == ["3.0", "3.0"]
    assert pending_ids(venv) == [] and leftovers(venv.site_packages) == []


def test_a_start_never_waits_for_a_held_lock(make_venv, tmp_path: Path) -> None:
    venv = make_venv()
    defer_lazy(venv, tmp_path)
    lock = venv.root / ".lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # If the hook waited for the lock, this start would hang until the timeout.
        held = versions(venv)
        assert held.stdout.split() == ["1.0", "1.0"] and not held.stderr, describe_proc(held)
        assert len(pending_ids(venv)) == 1
    finally:
        os.close(fd)
    assert versions(venv).stdout.split() == ["2.0", "2.0"]


def test_a_failing_commit_at_start_warns_in_one_line_and_the_program_runs(
        make_venv, tmp_path: Path) -> None:
    venv = make_venv()
    defer_lazy(venv, tmp_path)
    [record] = venv.site_packages.glob(".install-atomic-*.pending")
    stage = Path(json.loads(record.read_text())["stages"][str(venv.site_packages.resolve())])
    (stage / ".install-atomic-owner").unlink()  # a stage no deferral left: not adopted
    started = versions(venv)
    assert started.returncode == 0 and started.stdout.split() == ["1.0", "1.0"]
    lines = started.stderr.splitlines()
    assert len(lines) == 1 and "was not committed" in lines[0], started.stderr
    status = ia_run(venv, "status", venv.site_packages)
    assert "the last attempt to commit it failed" in status.stdout, status.stdout


def test_twenty_interpreters_start_at_once(make_venv, tmp_path: Path) -> None:
    venv = make_venv()
    install_now(venv, lazy_wheel(tmp_path / "w1", "1.0", extra=5))
    ia_run(venv, "install", "--no-index", "--no-deps", "--defer", "-q",
           lazy_wheel(tmp_path / "w2", "2.0", extra=5))
    code = ("import lazy, lazy_extra0, lazy_extra4; print(lazy.VERSION, lazy.later(),"
            " lazy_extra0.VERSION, lazy_extra4.VERSION)")
    procs = [subprocess.Popen([venv.python, "-c", code], cwd=venv.root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(20)]
    seen = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and not err, err
        seen.append(tuple(out.split()))
    # One of them committed; the others waited for that commit (it holds the hook file's
    # flock), so every one of them, the committing one too, sees the new version whole.
    assert seen == [("2.0",) * 4] * 20, seen
    assert versions(venv).stdout.split() == ["2.0", "2.0"]
    assert hook_present(venv) == [] and pending_ids(venv) == []
    assert leftovers(venv.site_packages) == []


KILLER = textwrap.dedent("""\
    import os, signal, sys
    sys.path.append(sys.argv[2])  # the toolset holding install_atomic (no site yet)
    from install_atomic.engine import steps
    real, n = steps.apply, [0]
    def apply(step):
        if n[0] == int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)
        n[0] += 1
        real(step)
    steps.apply = apply
    import site
    site.main()  # processes the .pth files: the hook commits, and is killed at rename K
""")


@pytest.mark.parametrize("kill_at", [0, 2, 5])
def test_sigkill_during_a_commit_at_start_then_another_start(
        make_venv, tmp_path: Path, kill_at: int) -> None:
    venv = make_venv()
    install_now(venv, lazy_wheel(tmp_path / "w1", "1.0", extra=4))
    ia_run(venv, "install", "--no-index", "--no-deps", "--defer", "-q",
           lazy_wheel(tmp_path / "w2", "2.0", extra=4))
    killed = venv.run("-S", "-c", KILLER, str(kill_at), venv.tools, check=False)
    assert killed.returncode == -signal.SIGKILL, describe_proc(killed)
    assert list(venv.site_packages.glob(".install-atomic-*.journal")), "not killed in a commit"
    # The next start recovers: one version, whole.
    code = ("import importlib, lazy; print(lazy.VERSION, lazy.later(), *(importlib.import_module("
            "f'lazy_extra{n}').VERSION for n in range(4)))")
    again = venv.run("-c", code, check=False)
    assert again.returncode == 0, describe_proc(again)
    assert len(set(again.stdout.split())) == 1, again.stdout
    assert pending_ids(venv) == [] and hook_present(venv) == []
    assert leftovers(venv.site_packages) == []
    listed = run([venv.python, "-m", "pip", "list", "--path", venv.site_packages,
                  "--format", "json"]).stdout
    assert {d["name"]: d["version"] for d in json.loads(listed)}["lazy"] == \
        again.stdout.split()[0]


def find_python(version: str) -> str | None:
    """An interpreter of *version* (X.Y): on PATH, or one pyenv knows; None if none."""
    candidates = []
    found = shutil.which(f"python{version}")
    if found:
        candidates.append(found)
    if shutil.which("pyenv"):
        bare = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True)
        for name in bare.stdout.split():
            if name == version or name.startswith(version + "."):
                prefix = subprocess.run(["pyenv", "prefix", name], capture_output=True,
                                        text=True).stdout.strip()
                candidates.append(os.path.join(prefix, "bin", f"python{version}"))
    for candidate in candidates:
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.executable)"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            return probe.stdout.strip()
    return None


@pytest.mark.parametrize("version", ["3.9", "3.10", "3.12", "3.13"])
def test_the_hook_commits_on_other_pythons(version: str, toolsets, tmp_path: Path) -> None:
    """install-atomic installed (with the dependencies pip picks for that Python) into a
    venv of another Python; a deferred install there is committed by its next start."""
    python = find_python(version)
    if python is None:
        pytest.skip(f"no Python {version} on this machine")
    wheel = next((toolsets["newest"].path.parent / "wheelhouse").glob("install_atomic-*.whl"))
    root = tmp_path / f"venv{version}"
    run([python, "-m", "venv", root], timeout=300)
    py = root / "bin" / "python"
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel], timeout=600)
    ia = [py, "-m", "install_atomic", "install", "--no-index", "--no-deps", "-q"]
    run([*ia, lazy_wheel(tmp_path / "w1", "1.0")], timeout=600)
    run([*ia, "--defer", lazy_wheel(tmp_path / "w2", "2.0")], timeout=600)
    site = Path(run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    env={"INSTALL_ATOMIC_COMMIT_AT_START": "0"}).stdout.strip())
    assert [p for p in HOOK_FILES if (site / p).exists()] == HOOK_FILES
    started = run([py, "-c", "import lazy; print(lazy.VERSION, lazy.later())"], cwd=root)
    assert started.stdout.split() == ["2.0", "2.0"] and not started.stderr, started.stderr
    assert not [p for p in HOOK_FILES if (site / p).exists()]
    assert leftovers(site) == []


def test_setup_py_install_atomic_commits_what_is_pending_first(
        make_venv, tmp_path: Path) -> None:
    venv = make_venv()
    defer_lazy(venv, tmp_path)
    project = make_project("module", tmp_path / "projects")
    # No commit at the interpreter's start: the command itself must do it.
    proc = venv.setup_py(project, "install_atomic",
                         env={"INSTALL_ATOMIC_COMMIT_AT_START": "0"})
    assert "committed the pending install of lazy 1.0 -> 2.0" in proc.stdout, describe_proc(proc)
    assert pending_ids(venv) == [] and hook_present(venv) == []
    assert versions(venv).stdout.split() == ["2.0", "2.0"]


def test_a_hook_file_left_half_written_does_not_block_the_next_deferral(
        make_venv, tmp_path: Path) -> None:
    """A deferral killed while writing the hook leaves ``install-atomic-pending.pth.tmp``;
    the next deferral replaces it."""
    venv = make_venv()
    install_now(venv, lazy_wheel(tmp_path / "w1", "1.0"))
    (venv.site_packages / (HOOK_FILES[0] + ".tmp")).write_text("import sys; half")
    ia_run(venv, "install", "--no-index", "--no-deps", "--defer", "-q",
           lazy_wheel(tmp_path / "w2", "2.0"))
    assert hook_present(venv) == HOOK_FILES
    assert not (venv.site_packages / (HOOK_FILES[0] + ".tmp")).exists()
    assert versions(venv).stdout.split() == ["2.0", "2.0"]


def test_api_uninstall(make_venv, tmp_path: Path) -> None:
    venv = make_venv()
    install_now(venv, lazy_wheel(tmp_path / "w1", "1.0"))
    code = textwrap.dedent("""\
        import install_atomic
        r = install_atomic.uninstall("lazy")
        print(r.names, sorted({x.action for x in r.renames}), r.dry_run)
        """)
    proc = venv.run("-c", code)
    assert proc.stdout.strip() == "('lazy',) ['remove'] False", describe_proc(proc)
    assert versions(venv).returncode != 0 and leftovers(venv.site_packages) == []


def test_the_installers_own_children_commit_nothing(make_venv, tmp_path: Path) -> None:
    """An install from a program that has lazy 1.0 loaded, while lazy 2.0 is pending (not
    held): the interpreters the install starts (the import check) must not commit lazy
    2.0 under the program."""
    venv = make_venv()
    defer_lazy(venv, tmp_path)
    other = make_wheel(tmp_path / "wo", "other", "1.0", {"other.py": "X = 1\n"})
    code = textwrap.dedent("""\
        import os, sys
        del os.environ["INSTALL_ATOMIC_COMMIT_AT_START"]  # only this start was told
        import lazy, install_atomic
        r = install_atomic.install(sys.argv[1], no_index=True, no_deps=True)
        print(r.deferred, lazy.VERSION, lazy.later())
        """)
    proc = venv.run("-c", code, other, env={"INSTALL_ATOMIC_COMMIT_AT_START": "0"})
    assert proc.stdout.split() == ["False", "1.0", "1.0"], describe_proc(proc)
    assert len(pending_ids(venv)) == 1, "a child of the install committed lazy 2.0"
    assert versions(venv).stdout.split() == ["2.0", "2.0"]


def test_the_hook_and_the_children_name_the_same_variable() -> None:
    from install_atomic import children

    assert hook.DISABLE == children.COMMIT_AT_START
    assert children.child_env({"A": "1"}) == {"A": "1", hook.DISABLE: "0"}


def test_a_pending_record_naming_paths_outside_its_directories_is_refused(
        tmp_path: Path) -> None:
    from install_atomic.engine import pending
    from install_atomic.errors import UntrustedError

    site = tmp_path / "site"
    site.mkdir()
    primary = str(site.resolve())
    stage = os.path.join(primary, ".install-atomic-1-abc")
    good = pending.Record("1-ab", ["lazy"], primary, {primary: stage}, metadata_dir=primary)
    path = good.write()
    assert pending.load(path).stages == {primary: stage}
    for field, value in [("metadata_dir", str(tmp_path / "elsewhere")),
                         ("stages", {primary: str(tmp_path / ".install-atomic-1-abc")}),
                         ("primary", str(tmp_path))]:
        data = json.loads(Path(path).read_text())
        data[field] = value
        Path(path).write_text(json.dumps(data))
        with pytest.raises(UntrustedError):
            pending.load(path)
