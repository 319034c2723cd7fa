"""Safety of the generations layout (``install-atomic init --generations``).

Everything here runs real interpreters of real virtual environments:

* pip (and uv) against distributions a generation holds: they may read them, never
  change them; what pip installs besides lands in plain site-packages;
* ``gc`` against running processes (one that keeps running, one forked whose parent
  has exited, a stream of fresh interpreters during installs, switches and gc);
* SIGKILL at every step of an install, a switch and a gc, then ``recover``;
* untrusted ``layout.json``, ``generation.json``, ``journal.json`` and ``current``;
* two installers at once.

The distribution ``lazy`` imports its submodule ``sub`` only when asked, as programs
that load parts of a package lazily do: a process pinned to a generation must still
find that generation's ``sub`` after newer generations replaced it and ``gc`` ran.
"""

from __future__ import annotations

import json
import os
import select
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import (
    MakeVenv,
    StrPath,
    Venv,
    Wheelhouse,
    canonical_name,
    clean_env,
    describe_proc,
    ia_install,
    ia_run,
    leftovers,
    make_wheel,
    run,
    tree_digest,
)
from users import other_user

pytestmark = pytest.mark.slow

DIRNAME = "install-atomic-generations"
#: pip interop: a managed distribution (two releases) and an unmanaged one.
PIP_X, PIP_X_OLD, PIP_Y = ("pyflakes", "3.2.0"), ("pyflakes", "3.1.0"), ("six", "1.17.0")
#: Seconds a helper waits for a child's line or for a process to end before failing.
PATIENCE = 120.0


# --------------------------------------------------------------------------- wheels


def script_name(version: str) -> str:
    """The script only *version* of lazy ships (besides ``lazy-tool``, in every one)."""
    return "lazy" + version.replace(".", "")


def lazy_wheel(directory: Path, version: str) -> Path:
    files = {
        "lazy/__init__.py": textwrap.dedent(f"""\
            VERSION = {version!r}
            def main():
                from lazy import sub
                assert sub.VERSION == VERSION, (sub.VERSION, VERSION)
                print(VERSION)
            """),
        "lazy/sub.py": f"VERSION = {version!r}\n",
        "lazy/other.py": f"VERSION = {version!r}\n",
    }
    scripts = f"[console_scripts]\nlazy-tool = lazy:main\n{script_name(version)} = lazy:main\n"
    return make_wheel(directory, "lazy", version, files, entry_points=scripts)


def simple_wheel(directory: Path, name: str, version: str) -> Path:
    return make_wheel(directory, name, version, {f"{name}.py": f"VERSION = {version!r}\n"})


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for wheels made on the spot (lazy 1.0/2.0/3.0 made here)."""
    directory = tmp_path_factory.mktemp("gen-wheels")
    for version in ("1.0", "2.0", "3.0"):
        lazy_wheel(directory, version)
    for name in ("alpha", "beta"):
        simple_wheel(directory, name, "1.0")
    return directory


def lazy(wheels: Path, version: str) -> Path:
    path = wheels / f"lazy-{version}-py3-none-any.whl"
    if not path.exists():
        lazy_wheel(wheels, version)
    return path


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    """Real releases from the package index: pyflakes 3.2.0 and 3.1.0, six 1.17.0 (pinned
    as in helpers.WHEEL_GROUPS; downloaded alone, the whole session wheelhouse is slow)."""
    path = tmp_path_factory.mktemp("gen-wheelhouse")
    for group in (["==".join(PIP_X), "==".join(PIP_Y)], ["==".join(PIP_X_OLD)]):
        proc = run([sys.executable, "-m", "pip", "download", "--no-deps",
                    "--only-binary=:all:", "--dest", path, *group], check=False, timeout=600)
        assert proc.returncode == 0, f"Is the package index reachable?\n{describe_proc(proc)}"
    return Wheelhouse(path, path, path)




# --------------------------------------------------------------------------- environments


@dataclass(frozen=True)
class GenEnv:
    """A venv under generations, and what the tests read of its layout."""

    venv: Venv

    @property
    def site(self) -> Path:
        return self.venv.site_packages

    @property
    def root(self) -> Path:
        return self.site / DIRNAME

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def generations(self) -> Path:
        return self.root / "generations"

    @property
    def current_link(self) -> Path:
        return self.root / "current"

    def current(self) -> int:
        target = os.readlink(self.current_link)
        head, tail = os.path.split(target)
        assert head == "generations" and tail.isdigit(), target
        return int(tail)

    def numbers(self) -> list[int]:
        return sorted(int(n) for n in os.listdir(self.generations)
                      if n.isdigit() and (self.generations / n / "generation.json").exists())

    def generation(self, number: int) -> dict[str, object]:
        data = json.loads((self.generations / str(number) / "generation.json").read_text())
        assert isinstance(data, dict)
        return data

    def versions(self, number: int) -> dict[str, str]:
        versions = self.generation(number)["versions"]
        assert isinstance(versions, dict)
        return {canonical_name(str(k)): str(v) for k, v in versions.items()}

    def store_keys(self) -> list[str]:
        return sorted(n for n in os.listdir(self.store) if not n.startswith("."))

    def cli(self, *args: StrPath, status: int | None = 0) -> subprocess.CompletedProcess[str]:
        return ia_run(self.venv, *args, status=status)

    def install(self, wheel: Path, *, status: int | None = 0
                ) -> subprocess.CompletedProcess[str]:
        return self.cli("install", "--no-index", "--no-deps", "-q", wheel, status=status)

    def recover(self) -> subprocess.CompletedProcess[str]:
        return self.cli("recover", self.site)

    def imported(self, *names: str) -> dict[str, str]:
        """A fresh interpreter imports *names* (and ``lazy.sub`` with ``lazy``): their
        VERSION and ``importlib.metadata.version``; fails on any stderr output."""
        code = textwrap.dedent("""\
            import importlib, importlib.metadata as m, json, sys
            out = {}
            for name in sys.argv[1:]:
                module = importlib.import_module(name)
                out[name] = module.VERSION
                out[name + ":meta"] = m.version(name)
                if name == "lazy":
                    out["lazy.sub"] = importlib.import_module("lazy.sub").VERSION
            print(json.dumps(out))
            """)
        proc = self.venv.run("-c", code, *names, check=False)
        assert proc.returncode == 0 and proc.stderr == "", describe_proc(proc)
        out = json.loads(proc.stdout)
        assert isinstance(out, dict)
        return {str(k): str(v) for k, v in out.items()}


def generations_env(make_venv: MakeVenv, wheels: Path) -> GenEnv:
    """A venv holding lazy 1.0, converted by ``init --generations``: generation 1."""
    venv = make_venv()
    ia_run(venv, "install", "--no-index", "--no-deps", "-q", lazy(wheels, "1.0"))
    ia_run(venv, "init", "--generations", venv.root)
    env = GenEnv(venv)
    assert env.numbers() == [1] and env.current() == 1
    assert env.versions(1) == {"lazy": "1.0"}
    return env


def lazy_version(env: GenEnv) -> str:
    """What a fresh interpreter imports of lazy; its submodule and metadata agree."""
    seen = env.imported("lazy")
    assert seen["lazy"] == seen["lazy.sub"] == seen["lazy:meta"], seen
    return seen["lazy"]


# --------------------------------------------------------------------------- digests


def tree_state(path: Path) -> dict[str, str]:
    """:func:`helpers.tree_digest` of *path* with every entry's permission bits (links
    are never followed)."""
    digest = tree_digest(path)
    out = {}
    for rel, description in digest.items():
        mode = stat.S_IMODE(os.lstat(path / rel).st_mode)
        out[rel] = f"{description} {mode:o}"
    return out


def snapshot(env: GenEnv) -> dict[str, dict[str, str]]:
    """Every store entry and every generation directory (complete or not), each as a
    :func:`tree_state`."""
    out = {}
    for parent in (env.store, env.generations):
        if not parent.is_dir():
            continue
        for name in sorted(os.listdir(parent)):
            path = parent / name
            if path.is_dir() and not path.is_symlink():
                out[f"{parent.name}/{name}"] = tree_state(path)
    return out


def changes(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> list[str]:
    """What differs between two states (of :func:`venv_state` or :func:`snapshot`)."""
    out = []
    for top in sorted(set(before) | set(after)):
        old, new = before.get(top, {}), after.get(top, {})
        for rel in sorted(set(old) | set(new)):
            if old.get(rel) != new.get(rel):
                what = "added" if rel not in old else "removed" if rel not in new else "changed"
                out.append(f"{what} {top}/{rel}")
    return out


def venv_state(env: GenEnv, *extra: Path) -> dict[str, dict[str, str]]:
    """The whole venv (but its lock file) and the directories *extra*."""
    out = {"venv": {k: v for k, v in tree_state(env.venv.root).items() if k != ".lock"}}
    for path in extra:
        out[str(path)] = tree_state(path)
    return out


# --------------------------------------------------------------------------- processes


def readline(proc: subprocess.Popen[str], what: str) -> str:
    """The next line *proc* writes on stdout (fails after PATIENCE seconds)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], PATIENCE)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        _out, err = proc.communicate()
        pytest.fail(f"{what}: no line from process {proc.pid}; stderr:\n{err}")
    return line


def wait_gone(pid: int) -> None:
    """Wait until process *pid* (not a child of ours) has exited: gone, or a zombie
    (which holds no file, hence no lock, any more)."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.05)
    pytest.fail(f"process {pid} did not exit within {PATIENCE} s")


# --------------------------------------------------------------------------- 1. pip and uv

@pytest.fixture
def pip_env(make_venv: MakeVenv, wheelhouse: Wheelhouse) -> GenEnv:
    """pyflakes 3.2.0 (a real wheel, with a console script) in generation 1."""
    venv = make_venv()
    ia_install(venv, wheelhouse, "-q", "--no-deps", "==".join(PIP_X))
    ia_run(venv, "init", "--generations", venv.root)
    env = GenEnv(venv)
    assert env.versions(env.current()) == {"pyflakes": "3.2.0"}
    return env


def managed_state(env: GenEnv) -> dict[str, dict[str, str]]:
    """The store and every generation, the scripts directory, and the rest of
    site-packages (where pip may install other distributions)."""
    out = snapshot(env)
    out["bin"] = tree_state(env.venv.bin)
    out["site"] = tree_digest(env.site, exclude=(DIRNAME,))
    return out


def assert_pyflakes_intact(env: GenEnv) -> None:
    version = env.venv.run("-c", "import pyflakes, pyflakes.api as a; print(pyflakes.__version__,"
                           " a.__name__)").stdout.split()
    assert version == ["3.2.0", "pyflakes.api"]
    proc = run([env.venv.bin / "pyflakes", "--version"])
    assert proc.stdout.startswith("3.2.0"), describe_proc(proc)


def test_pip_cannot_change_managed_distributions(
    pip_env: GenEnv, wheelhouse: Wheelhouse
) -> None:
    env = pip_env
    venv = env.venv
    before = managed_state(env)

    proc = venv.pip("uninstall", "-y", PIP_X[0], check=False)
    assert proc.returncode != 0, describe_proc(proc)
    said = proc.stdout + proc.stderr
    assert "RECORD" in said and "install-atomic" in said, describe_proc(proc)
    assert managed_state(env) == before
    assert_pyflakes_intact(env)

    proc = venv.pip("install", *wheelhouse.pip_args(), "==".join(PIP_X_OLD), check=False)
    assert proc.returncode != 0, describe_proc(proc)
    said = proc.stdout + proc.stderr
    assert "RECORD" in said and "install-atomic" in said, describe_proc(proc)
    assert managed_state(env) == before
    assert_pyflakes_intact(env)

    # an unmanaged distribution: pip installs it into plain site-packages
    venv.pip("install", *wheelhouse.pip_args(), "==".join(PIP_Y))
    after = managed_state(env)
    assert {k: v for k, v in after.items() if k != "site"} == \
        {k: v for k, v in before.items() if k != "site"}
    assert (env.site / "six.py").is_file()
    assert (env.site / "six-1.17.0.dist-info" / "RECORD").is_file()
    assert (env.site / "six-1.17.0.dist-info" / "INSTALLER").read_text() == "pip\n"
    assert not any(k.startswith("store/six") for k in after)
    assert env.versions(env.current()) == {"pyflakes": "3.2.0"}
    assert env.venv.run("-c", "import six; print(six.__version__)").stdout.strip() == "1.17.0"
    assert_pyflakes_intact(env)


def test_pip_and_importlib_metadata_read_managed_distributions(
    pip_env: GenEnv, wheelhouse: Wheelhouse
) -> None:
    env = pip_env
    venv = env.venv
    venv.pip("install", *wheelhouse.pip_args(), "==".join(PIP_Y))
    before = managed_state(env)

    listed = {canonical_name(d["name"]): d["version"]
              for d in json.loads(venv.pip("list", "--format", "json").stdout)}
    assert listed["pyflakes"] == "3.2.0" and listed["six"] == "1.17.0", listed
    frozen = venv.pip("freeze", "--all").stdout.splitlines()
    assert "pyflakes==3.2.0" in frozen and "six==1.17.0" in frozen, frozen
    shown = venv.pip("show", "-v", "pyflakes").stdout
    assert "\nVersion: 3.2.0\n" in shown, shown
    assert "\nInstaller: install-atomic\n" in shown, shown
    location = f"{env.root}/generations/{env.current()}/site"
    assert f"\nLocation: {location}\n" in shown, shown
    check = venv.pip("check")
    assert "No broken requirements found." in check.stdout, describe_proc(check)

    code = textwrap.dedent("""\
        import importlib.metadata as m, json
        files = m.files("pyflakes")
        print(json.dumps({
            "version": m.version("pyflakes"),
            "installer": m.distribution("pyflakes").read_text("INSTALLER"),
            "files": sorted(str(f) for f in files),
            "missing": sorted(str(f) for f in files if not f.locate().exists()),
            "scripts": sorted(e.name for e in m.entry_points(group="console_scripts")
                              if e.dist.name == "pyflakes"),
        }))
        """)
    meta = json.loads(venv.run("-c", code).stdout)
    assert meta["version"] == "3.2.0"
    assert meta["installer"] == "install-atomic\n"
    assert meta["scripts"] == ["pyflakes"]
    assert "pyflakes/api.py" in meta["files"] and "pyflakes/checker.py" in meta["files"]
    assert "../bin/pyflakes" in meta["files"], meta["files"]
    # every file importlib.metadata lists is there
    assert meta["missing"] == [], meta["missing"]
    assert managed_state(env) == before


def uv_pip(uv: Path, env: GenEnv, *args: StrPath) -> subprocess.CompletedProcess[str]:
    return run([uv, "pip", *args, "--python", env.venv.python],
               env={"UV_CACHE_DIR": str(env.venv.root.parent / "uv-cache"),
                    "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1", "VIRTUAL_ENV": None},
               cwd=env.venv.root, check=False)


def test_uv_pip_uninstall_does_not_see_managed_distributions(pip_env: GenEnv, uv: Path) -> None:
    """uv does not look beyond site-packages: it says the distribution is not
    installed, and changes nothing (the how-to says so)."""
    env = pip_env
    before = managed_state(env)
    proc = uv_pip(uv, env, "uninstall", PIP_X[0])
    assert managed_state(env) == before, describe_proc(proc)
    assert_pyflakes_intact(env)
    assert "not installed" in proc.stdout + proc.stderr, describe_proc(proc)


def test_uv_pip_install_of_another_version_never_changes_a_generation(
    pip_env: GenEnv, uv: Path, wheelhouse: Wheelhouse
) -> None:
    """uv installs a plain copy beside the generations (documented); the store and
    every generation stay byte for byte, and the generation still holds X."""
    env = pip_env
    before = snapshot(env)
    proc = uv_pip(uv, env, "install", *wheelhouse.pip_args(), "==".join(PIP_X_OLD))
    assert changes(before, snapshot(env)) == [], describe_proc(proc)
    generation = str(env.site / DIRNAME / "current" / "site")
    pinned = env.venv.run("-c", "import importlib.metadata as m, sys;"
                          " print(sorted(d.version for d in m.distributions(path=[sys.argv[1]])"
                          " if d.metadata['Name'] == 'pyflakes'))", generation).stdout.strip()
    assert pinned == "['3.2.0']", pinned


# --------------------------------------------------------------------------- 2. gc vs processes

HOLDER = textwrap.dedent("""\
    import json, os, sys
    import lazy
    if sys.argv[1] == "fork":
        child = os.fork()
        if child:
            print(json.dumps({"pid": child, "version": lazy.VERSION}), flush=True)
            os._exit(0)
    else:
        print(json.dumps({"pid": os.getpid(), "version": lazy.VERSION}), flush=True)
    sys.stdin.readline()
    import importlib.metadata
    from lazy import sub
    print(json.dumps({"sub": sub.VERSION, "file": sub.__file__,
                      "meta": importlib.metadata.version("lazy")}), flush=True)
    """)


@pytest.mark.parametrize("how", ["process", "fork"])
def test_gc_keeps_a_generation_while_a_process_uses_it(
    make_venv: MakeVenv, wheels: Path, tmp_path: Path, how: str
) -> None:
    env = generations_env(make_venv, wheels)
    script = tmp_path / "holder.py"
    script.write_text(HOLDER, encoding="utf-8")
    with subprocess.Popen([env.venv.python, script, how], cwd=env.venv.root,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=clean_env()) as proc:
        try:
            first = json.loads(readline(proc, "the holder's start"))
            assert first["version"] == "1.0"
            holder = int(first["pid"])
            if how == "fork":  # the parent is gone: only the forked child holds generation 1
                assert proc.wait(timeout=PATIENCE) == 0
                assert holder != proc.pid

            env.install(lazy(wheels, "2.0"))
            assert env.current() == 2
            old = snapshot(env)
            gen1 = {k: v for k, v in old.items()
                    if k == "generations/1" or k.startswith("store/lazy-1")}
            assert len(gen1) == 2, sorted(old)

            proc_gc = env.cli("gc", "--keep", "1", env.venv.root)
            assert "kept 1 still in use (1)" in proc_gc.stdout, describe_proc(proc_gc)
            assert "removed 0 generations and 0 store entries" in proc_gc.stdout
            assert env.numbers() == [1, 2]
            assert {k: v for k, v in snapshot(env).items() if k in gen1} == gen1
            listing = env.cli("generations", env.venv.root).stdout.splitlines()
            line1 = [ln for ln in listing if ln.split()[:1] == ["1"]]
            assert len(line1) == 1 and "in use" in line1[0], listing
            assert lazy_version(env) == "2.0"

            # the holder imports its lazy submodule now: generation 1's, whole
            assert proc.stdin is not None
            proc.stdin.write("\n")
            proc.stdin.flush()
            second = json.loads(readline(proc, "the holder's lazy import"))
            assert (second["sub"], second["meta"]) == ("1.0", "1.0"), second
            assert f"/{DIRNAME}/generations/1/site/lazy/sub.py" in second["file"], second
            proc.stdin.close()
            assert proc.stdout is not None and proc.stderr is not None
            assert proc.stdout.read() == ""
            assert proc.stderr.read() == ""
            assert proc.wait(timeout=PATIENCE) == 0
            wait_gone(holder)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    proc_gc = env.cli("gc", "--keep", "1", env.venv.root)
    assert "removed 1 generations and 1 store entries" in proc_gc.stdout, describe_proc(proc_gc)
    assert env.numbers() == [2]
    assert [k.split("-")[1] for k in env.store_keys()] == ["2.0"]
    assert not any(k in snapshot(env) for k in gen1)
    assert lazy_version(env) == "2.0"


CHECKER = textwrap.dedent("""\
    import importlib.metadata as m, json, sys
    import lazy
    from lazy import sub
    allowed = sys.argv[1].split(",")
    seen = [lazy.VERSION, sub.VERSION, m.version("lazy")]
    print(json.dumps(seen))
    sys.exit(0 if len(set(seen)) == 1 and seen[0] in allowed else 3)
    """)


#: Run in the venv as ``python DRIVER ENV WHEELS ROUNDS``: ROUNDS changes through
#: install-atomic's command line (in this one process, to spare an interpreter start
#: each): an install in five (lazy 2.0, 3.0, 1.0, ...), switches to a random
#: generation otherwise, a ``gc --keep 2`` every third round.  After each change a
#: fresh interpreter must import the version the new current generation holds.  One
#: JSON line per round; exits 1 at the first failure.
DRIVER = textwrap.dedent("""\
    import json, os, random, subprocess, sys
    from install_atomic.frontends.cli import main

    env, wheels, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    site = [p for p in sys.path if p.endswith("site-packages") and p.startswith(env)][0]
    gens = os.path.join(site, "install-atomic-generations", "generations")
    versions = ["1.0", "2.0", "3.0"]
    check = "import lazy, lazy.sub as s; print(lazy.VERSION, s.VERSION)"
    rng = random.Random(20240611)

    def numbers():
        return sorted(int(n) for n in os.listdir(gens) if n.isdigit())

    def holds(number):
        with open(os.path.join(gens, str(number), "generation.json")) as f:
            return json.load(f)["versions"]["lazy"]

    for i in range(rounds):
        if i % 5 == 0:
            version = versions[(i // 5 + 1) % 3]
            wheel = os.path.join(wheels, f"lazy-{version}-py3-none-any.whl")
            args = ["install", "--no-index", "--no-deps", "-q", wheel]
        else:
            number = rng.choice(numbers())
            version = holds(number)
            args = ["switch", str(number), env]
        status = main(args)
        if status == 0 and i % 3 == 2:
            status = main(["gc", "--keep", "2", env])
        seen = subprocess.run([sys.executable, "-c", check], capture_output=True,
                              text=True).stdout.split()
        print(json.dumps({"round": i, "args": args, "status": status, "want": version,
                          "seen": seen}), flush=True)
        if status != 0 or seen != [version, version]:
            sys.exit(1)
    """)
ROUNDS = 30
CHECKER = textwrap.dedent("""\
    import importlib.metadata as m, json, sys
    import lazy
    from lazy import sub
    allowed = sys.argv[1].split(",")
    seen = [lazy.VERSION, sub.VERSION, m.version("lazy")]
    print(json.dumps(seen))
    sys.exit(0 if len(set(seen)) == 1 and seen[0] in allowed else 3)
    """)


def test_interpreters_start_whole_during_installs_switches_and_gc(
    make_venv: MakeVenv, wheels: Path, tmp_path: Path
) -> None:
    env = generations_env(make_venv, wheels)
    versions = ("1.0", "2.0", "3.0")
    allowed = ",".join(versions)
    stop = threading.Event()
    started = threading.Event()
    failures: list[str] = []
    seen: dict[str, int] = {}

    def starter() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            if n % 4:
                proc = env.venv.run("-c", CHECKER, allowed, check=False)
                version = json.loads(proc.stdout)[0] if proc.stdout.startswith("[") else "?"
            else:  # the console script, through the link in bin/
                proc = run([env.venv.bin / "lazy-tool"], check=False)
                version = proc.stdout.strip()
                if version not in versions:
                    proc = subprocess.CompletedProcess(proc.args, 4, proc.stdout, proc.stderr)
            if proc.returncode != 0 or proc.stderr:
                failures.append(describe_proc(proc))
            seen[version] = seen.get(version, 0) + 1
            started.set()

    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    thread = threading.Thread(target=starter, daemon=True)
    thread.start()
    try:
        assert started.wait(PATIENCE)
        proc = env.venv.run(driver, env.venv.root, wheels, str(ROUNDS), check=False,
                            timeout=600)
    finally:
        stop.set()
        thread.join(PATIENCE)
    rounds = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and len(rounds) == ROUNDS, describe_proc(proc)
    assert sum(r["args"][0] == "install" for r in rounds) == ROUNDS // 5
    assert failures == [], f"{len(failures)} of {sum(seen.values())} starts failed:\n" + \
        "\n".join(failures[:3])
    assert sum(seen.values()) > 0
    assert problems_of(env) == []


# --------------------------------------------------------------------------- 3. kills

#: Run as ``python FAULTS ARGS...``: install-atomic's command line, SIGKILLed just
#: before the IA_KILL_AT-th change the generations engine makes (a rename, replace,
#: link, symlink, unlink, mkdir or rmdir it calls, directly or through
#: install_atomic.engine.primitives, or one remove_tree).  Changes inside a private
#: ``.build-*`` / ``.tmp-*`` directory, and unlinks of what does not exist, are not
#: counted: killing before any of them leaves the same state as killing before the
#: previous counted one.
FAULTS = textwrap.dedent("""\
    import os, signal, sys
    from install_atomic.engine import primitives, staging

    KILL_AT = int(os.environ["IA_KILL_AT"])
    LOG = os.environ.get("IA_KILL_LOG")
    ENGINE = "install_atomic.engine.generations."
    calls = 0

    def engine_on_stack(frame):
        while frame is not None:
            if frame.f_globals.get("__name__", "").startswith(ENGINE):
                return True
            frame = frame.f_back
        return False

    def private(args):
        for arg in args:
            if isinstance(arg, (str, os.PathLike)):
                parts = os.fspath(arg).split(os.sep)[:-1]
                if any(p.startswith((".build-", ".tmp-")) for p in parts):
                    return True
        return False

    def step(what, args):
        global calls
        calls += 1
        if LOG:
            with open(LOG, "a") as f:
                f.write(f"{calls} {what} {args!r}\\n")
        if calls == KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(what, fn):
        def call(*args, **kwargs):
            caller = sys._getframe(1)
            name = caller.f_globals.get("__name__", "")
            if (name.startswith(ENGINE) or name == "install_atomic.engine.primitives") \\
                    and engine_on_stack(caller) and not private(args) \\
                    and not (what == "unlink" and not os.path.lexists(args[0])):
                step(what, args)
            return fn(*args, **kwargs)
        return call

    for what in ("rename", "replace", "link", "symlink", "unlink", "mkdir", "rmdir"):
        setattr(os, what, wrap(what, getattr(os, what)))
    if primitives._renameat2 is not None:
        primitives._renameat2 = wrap("renameat2", primitives._renameat2)
    remove_tree = staging.remove_tree

    def counted_remove_tree(*args, **kwargs):
        if sys._getframe(1).f_globals.get("__name__", "").startswith(ENGINE):
            step("remove_tree", args)
        return remove_tree(*args, **kwargs)

    staging.remove_tree = counted_remove_tree
    from install_atomic.frontends.cli import main
    sys.exit(main(sys.argv[1:]))
    """)
MAX_KILLS = 60


def problems_of(env: GenEnv, before: dict[str, dict[str, str]] | None = None,
                must_stay: Sequence[str] = ()) -> list[str]:
    """What is wrong with *env* once nothing runs in it: see the checks below.  With
    *before* (a :func:`snapshot`), store entries and generations it holds that still
    exist must be unchanged, and those named in *must_stay* must exist."""
    problems: list[str] = []
    # current names a complete generation
    try:
        number = env.current()
    except (OSError, AssertionError) as exc:
        return [f"current is not a generation: {exc}"]
    gen = env.generations / str(number)
    for part in ("generation.json", "pin", "site", "bin"):
        if not os.path.lexists(gen / part):
            problems.append(f"current generation {number} has no {part}")
    # no private leftovers, no journal, nothing else
    expected = {"layout.json", "store", "generations", "current"}
    problems += [f"leftover {env.root / n}" for n in sorted(os.listdir(env.root))
                 if n not in expected]
    problems += [f"leftover {env.generations / n}" for n in sorted(os.listdir(env.generations))
                 if not n.isdigit()]
    problems += [f"leftover {env.store / n}" for n in sorted(os.listdir(env.store))
                 if n.startswith(".")]
    problems += [f"leftover {env.venv.bin / n}" for n in sorted(os.listdir(env.venv.bin))
                 if n.startswith(".")]
    problems += [f"leftover {p}" for p in leftovers(env.site)]
    # every link of every generation resolves (gc kept what they link to)
    for n in env.numbers():
        for dirpath, dirnames, filenames in os.walk(env.generations / str(n)):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                if os.path.islink(path) and not os.path.exists(path):
                    problems.append(f"dangling link {path}")
    # the scripts directory links exactly the current generation's scripts, all resolving
    ours = {}
    for name in os.listdir(env.venv.bin):
        link = env.venv.bin / name
        if not name.startswith(".") and link.is_symlink() \
                and f"{DIRNAME}/current/bin/" in os.readlink(link):
            ours[name] = link.exists()
    wanted = sorted(os.listdir(gen / "bin")) if (gen / "bin").is_dir() else []
    if sorted(ours) != wanted:
        problems.append(f"script links {sorted(ours)}, generation {number} has {wanted}")
    problems += [f"script link {n} does not resolve" for n, ok in sorted(ours.items()) if not ok]
    # store entries and generations are never changed
    if before is not None:
        now = snapshot(env)
        for key, state in before.items():
            if key in now and now[key] != state:
                problems.append(f"{key} changed")
            elif key not in now and key in must_stay:
                problems.append(f"{key} is gone")
    # a fresh interpreter imports the current generation's lazy, whole
    if not problems:
        try:
            seen = lazy_version(env)
        except AssertionError as exc:
            problems.append(f"a fresh interpreter failed: {exc}")
        else:
            if seen != env.versions(number).get("lazy"):
                problems.append(f"a fresh interpreter imports lazy {seen}, generation"
                                f" {number} holds {env.versions(number)}")
    return problems


def clear_leftovers(env: GenEnv, problems: Sequence[str]) -> None:
    """Remove the leftovers *problems* names, so that the next round starts clean."""
    for problem in problems:
        if problem.startswith("leftover "):
            path = Path(problem.split(" ", 1)[1])
            if path.is_dir() and not path.is_symlink():
                run(["rm", "-rf", path])
            elif os.path.lexists(path):
                path.unlink()


Snapshot = dict[str, dict[str, str]]


def killed_runs(
    env: GenEnv,
    tmp_path: Path,
    prepare: Callable[[int], None],
    command: Callable[[int], list[str]],
    must_stay: Callable[[Snapshot, int], list[str]],
) -> tuple[int, list[str]]:
    """For k = 1, 2, ...: ``prepare(k)``, run ``command(k)`` killed before its k-th change,
    ``recover``, check; until a run is not killed.  Return (kills, problems)."""
    script = tmp_path / "faults.py"
    script.write_text(FAULTS, encoding="utf-8")
    problems: list[str] = []
    recovered = ""
    for k in range(1, MAX_KILLS + 1):
        prepare(k)
        before = snapshot(env)
        current = env.current()
        args = command(k)
        proc = env.venv.run(script, *args, env={"IA_KILL_AT": str(k)}, check=False)
        if proc.returncode == 0:
            found = problems_of(env, before, must_stay(before, current))
            problems += [f"after the complete run {k}: {p}" for p in found]
            return k - 1, problems
        assert proc.returncode == -signal.SIGKILL, describe_proc(proc)
        recovered = env.recover().stdout
        found = problems_of(env, before, must_stay(before, current))
        problems += [f"killed at step {k} of {' '.join(map(str, args))}: {p}" for p in found]
        clear_leftovers(env, found)
    pytest.fail(f"the command was still killed after {MAX_KILLS} steps: {recovered}")


def test_kill_during_installs_then_recover(
    make_venv: MakeVenv, wheels: Path, tmp_path: Path
) -> None:
    env = generations_env(make_venv, wheels)

    def command(k: int) -> list[str]:
        # a new version each time: a new store entry, a new script to link, one to unlink
        return ["install", "--no-index", "--no-deps", "-q", str(lazy(wheels, f"2.{k}"))]

    kills, problems = killed_runs(env, tmp_path, lambda k: None, command,
                                  lambda before, current: list(before))
    assert kills >= 8, kills  # store entry, generation, journal, scripts, current, ...
    assert problems == [], "\n".join(problems)
    assert env.versions(env.current())["lazy"] == f"2.{kills + 1}"


def test_kill_during_switches_then_recover(
    make_venv: MakeVenv, wheels: Path, tmp_path: Path
) -> None:
    env = generations_env(make_venv, wheels)
    env.install(lazy(wheels, "2.0"))  # generation 2: lazy-tool and lazy20 (1 has lazy10)

    def command(k: int) -> list[str]:
        return ["switch", str(2 if env.current() == 1 else 1), str(env.venv.root)]

    kills, problems = killed_runs(env, tmp_path, lambda k: None, command,
                                  lambda before, current: list(before))
    assert kills >= 5, kills  # journal, script link (2), current (2), stale link, journal
    assert problems == [], "\n".join(problems)
    assert env.numbers() == [1, 2]


def test_kill_during_gc_then_recover(make_venv: MakeVenv, wheels: Path, tmp_path: Path) -> None:
    env = generations_env(make_venv, wheels)

    def prepare(k: int) -> None:
        if env.numbers() == [env.current()]:  # one more generation: the previous one is old
            env.install(lazy(wheels, f"3.{k}"))

    def command(k: int) -> list[str]:
        return ["gc", "--keep", "1", str(env.venv.root)]

    def must_stay(before: Snapshot, current: int) -> list[str]:
        keys = env.generation(current)["distributions"]
        assert isinstance(keys, dict)
        return [f"generations/{current}", *(f"store/{key}" for key in keys.values())]

    kills, problems = killed_runs(env, tmp_path, prepare, command, must_stay)
    assert kills >= 4, kills  # journal, generation to trash, its removal, entry, ...
    assert problems == [], "\n".join(problems)
    assert env.numbers() == [env.current()]
    assert len(env.store_keys()) == 1


# --------------------------------------------------------------------------- 4. untrusted input


@pytest.fixture
def two_generations(make_venv: MakeVenv, wheels: Path) -> GenEnv:
    """lazy 1.0 in generation 1, lazy 2.0 in generation 2 (current)."""
    env = generations_env(make_venv, wheels)
    env.install(lazy(wheels, "2.0"))
    assert env.numbers() == [1, 2] and env.current() == 2
    return env


def commands(env: GenEnv, wheels: Path, *names: str) -> Iterator[list[str]]:
    every = {
        "generations": ["generations", str(env.venv.root)],
        "install": ["install", "--no-index", "--no-deps", "-q", str(lazy(wheels, "3.0"))],
        "uninstall": ["uninstall", "--target", str(env.site), "lazy"],
        "switch": ["switch", "1", str(env.venv.root)],
        "undo": ["undo", str(env.venv.root)],
        "recover": ["recover", str(env.site)],
        "flatten": ["flatten", str(env.venv.root)],
        "gc": ["gc", "--keep", "1", str(env.venv.root)],  # last: it has the most to change
    }
    for name in names:
        yield every[name]


def assert_refused(env: GenEnv, wheels: Path, names: Sequence[str], path: Path,
                   words: Sequence[str], *extra: Path) -> None:
    """Each command refuses, naming *path* and *words*; nothing changes anywhere."""
    before = venv_state(env, *extra)
    for args in commands(env, wheels, *names):
        proc = env.cli(*args, status=None)
        assert proc.returncode != 0, describe_proc(proc)
        assert str(path) in proc.stderr, describe_proc(proc)
        for word in words:
            assert word in proc.stderr, describe_proc(proc)
        changed = changes(before, venv_state(env, *extra))
        assert changed == [], f"{args[0]} refused, but changed the environment:\n" + \
            "\n".join(changed[:12])


#: file -> the commands that read it (tried with a world-writable file; a group-writable
#: one and one owned by another user are tried with install and gc).  gc comes last:
#: it has the most to change.
UNTRUSTED = {
    "layout.json": ("install", "generations", "uninstall", "switch", "undo", "recover",
                    "flatten", "gc"),
    "generation.json": ("install", "generations", "uninstall", "undo", "flatten", "gc"),
    "journal.json": ("install", "uninstall", "switch", "undo", "recover", "flatten", "gc"),
}


@pytest.mark.parametrize("which", list(UNTRUSTED))
def test_untrusted_files_are_refused(two_generations: GenEnv, wheels: Path, which: str) -> None:
    env = two_generations
    if which == "layout.json":
        path = env.root / "layout.json"
    elif which == "generation.json":
        path = env.generations / "2" / "generation.json"
    else:  # obeyed, it would make generation 1 current
        path = env.root / "journal.json"
        path.write_text(json.dumps({"op": "switch", "pid": 1, "to": 1}))
        path.chmod(0o644)
    user = other_user()
    for how in ("world-writable", "group-writable", "other-owner"):
        names = UNTRUSTED[which] if how == "world-writable" else ("install", "gc")
        if how == "other-owner":
            os.chown(path, user.uid, user.gid)
            path.chmod(0o644)
        else:
            os.chown(path, 0, 0)
            path.chmod(0o664 if how == "group-writable" else 0o646)
        try:
            assert_refused(env, wheels, names, path, ["is not trusted"])
        except AssertionError as exc:
            raise AssertionError(f"{which} {how}: {exc}") from None
        assert env.current() == 2
    assert lazy_version(env) == "2.0"


def test_generation_naming_a_path_outside_the_store_is_refused(
    two_generations: GenEnv, wheels: Path
) -> None:
    env = two_generations
    path = env.generations / "2" / "generation.json"
    data = env.generation(2)
    data["distributions"] = {"lazy": "../../etc"}
    path.write_text(json.dumps(data))
    path.chmod(0o644)
    assert_refused(env, wheels, UNTRUSTED["generation.json"], path,
                   ["'../../etc'", "not a plain name"])
    assert env.current() == 2


def plant_current(env: GenEnv, tmp_path: Path, how: str) -> Path:
    """``current`` -> a look-alike generation outside ``generations/``; return it."""
    outside = tmp_path / "outside" / "generations" / "1"
    (outside / "site").mkdir(parents=True)
    (outside / "bin").mkdir()
    (outside / "pin").write_text("")
    (outside / "site" / "planted.py").write_text("VERSION = 'planted'\n")
    (outside / "site" / "planted.pth").write_text("import planted\n")
    (outside / "generation.json").write_text(json.dumps(env.generation(1)))
    target = str(outside) if how == "absolute" else os.path.relpath(outside, env.root)
    tmp = env.root / "planted-link"
    os.symlink(target, tmp)
    os.replace(tmp, env.current_link)
    return outside


@pytest.mark.parametrize("how", ["absolute", "relative"])
def test_current_pointing_outside_generations_is_refused(
    two_generations: GenEnv, wheels: Path, tmp_path: Path, how: str
) -> None:
    env = two_generations
    outside = plant_current(env, tmp_path, how)
    # 'switch N' alone replaces such a link (test_planted_current_is_repaired...).
    names = ("install", "generations", "uninstall", "undo", "recover", "flatten",
             "gc") if how == "absolute" else ("install", "recover", "gc")
    assert_refused(env, wheels, names,
                   env.current_link, ["not to a generation"], outside.parent.parent)
    # nor does the start-up hook put the planted directory on sys.path
    proc = env.venv.run("-c", "import sys, json; print(json.dumps(sys.path))\n"
                        "import importlib.util as u; print(u.find_spec('planted'))")
    paths, spec = proc.stdout.splitlines()
    assert not any(p.startswith(str(outside.parent.parent)) for p in json.loads(paths)), paths
    assert spec == "None", describe_proc(proc)


def test_planted_current_is_repaired_as_the_refusal_says(
    two_generations: GenEnv, tmp_path: Path
) -> None:
    """The refusal says: "then run 'install-atomic switch N' (it replaces the link)"."""
    env = two_generations
    plant_current(env, tmp_path, "absolute")
    refused = env.cli("generations", env.venv.root, status=1)
    assert "then run 'install-atomic switch N' (it replaces the link)" in refused.stderr
    proc = env.cli("switch", "2", env.venv.root, status=None)
    assert proc.returncode == 0, describe_proc(proc)
    assert "not to a generation" in proc.stderr and "removed" in proc.stderr
    assert env.current() == 2
    assert lazy_version(env) == "2.0"


# --------------------------------------------------------------------------- 5. two installers


def test_two_installers_at_once(make_venv: MakeVenv, wheels: Path) -> None:
    env = generations_env(make_venv, wheels)
    procs = [
        subprocess.Popen([env.venv.python, "-m", "install_atomic", "install", "--no-index",
                          "--no-deps", "-q", wheels / f"{name}-1.0-py3-none-any.whl"],
                         cwd=env.venv.root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=clean_env())
        for name in ("alpha", "beta")
    ]
    outputs = [proc.communicate(timeout=PATIENCE) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, f"{proc.args!r}\n{out}\n{err}"
    assert env.numbers() == [1, 2, 3]
    assert env.current() == 3
    assert env.versions(3) == {"lazy": "1.0", "alpha": "1.0", "beta": "1.0"}
    assert sorted(env.versions(2)) in (["alpha", "lazy"], ["beta", "lazy"])
    seen = env.imported("lazy", "alpha", "beta")
    assert {seen[n] for n in ("lazy", "alpha", "beta")} == {"1.0"}, seen
    assert problems_of(env) == []
