"""Symlinks and permission bits through an atomic install.

* setuptools' build copies dereference symlinks, so symlinks inside a package are checked
  through the engine (:class:`install_atomic.engine.transaction.Transaction`), staged by hand:
  they must land as symlinks, with their targets, also through the relocated copy made for
  a filesystem mounted inside the destination.
* A destination entry that is a symlink to a directory outside the destination (a
  developer's checkout) is replaced as a link: the checkout is never written to.
* Installed modes follow the installer's umask exactly as ``setup.py install`` does; the
  staging directory's own mode (0755) never leaks.
* A read-only old version (files 0444, directories 0555) does not block its replacement or
  removal, also for a user who is not root (root without CAP_DAC_OVERRIDE, via setpriv).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import MakeVenv, Venv, leftovers, make_project, run, tree_digest
from install_atomic.engine.transaction import Transaction

PY = f"py{sys.version_info[0]}.{sys.version_info[1]}"

# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Link:
    """A symlink to stage: ``os.symlink(target, path)``."""

    target: str


Entries = Mapping[str, "bytes | Link"]




def egg_info_name(name: str, version: str) -> str:
    return f"{name.replace('-', '_')}-{version}.egg-info"


def engine_install(site: Path, name: str, version: str, entries: Entries) -> list[str]:
    """Install *entries* (paths relative to *site*) as distribution *name* through a
    Transaction, with an egg-info listing them; return the warnings."""
    warnings: list[str] = []
    with Transaction(
        name, str(site), durable=False, log=lambda _: None, warn=warnings.append
    ) as txn:
        stage = Path(txn.stage(str(site)))
        for rel, content in entries.items():
            path = stage / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Link):
                os.symlink(content.target, path)
            else:
                path.write_bytes(content)
        egg = egg_info_name(name, version)
        (stage / egg).mkdir()
        (stage / egg / "PKG-INFO").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        listed = [os.path.relpath(site / rel, site / egg) for rel in entries]
        listed += ["PKG-INFO", "installed-files.txt"]
        (stage / egg / "installed-files.txt").write_text(
            "".join(f"{line}\n" for line in sorted(listed)), encoding="utf-8"
        )
        txn.commit()
    return warnings


def engine_uninstall(site: Path, name: str) -> None:
    """What ``python -m install_atomic uninstall`` does: a transaction with nothing staged."""
    with Transaction(name, str(site), durable=False, log=lambda _: None) as txn:
        txn.commit()


def expected_tree(site_before: dict[str, str], entries: Entries) -> dict[str, str]:
    """tree_digest() of *site* after installing *entries* (egg-info aside)."""
    tree = dict(site_before)
    for rel, content in entries.items():
        parts = Path(rel).parts
        for i in range(1, len(parts)):
            tree["/".join(parts[:i])] = "dir"
        if isinstance(content, Link):
            tree[rel] = "link:" + content.target
        else:
            tree[rel] = hashlib.sha256(content).hexdigest()
    return dict(sorted(tree.items()))


def without_metadata(tree: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tree.items() if ".egg-info" not in k.split("/")[0]}


@pytest.fixture
def tmpfs() -> Iterator[Callable[[Path], None]]:
    """``tmpfs(path)`` mounts a fresh tmpfs at *path* (created if needed), unmounted at
    teardown; skips the test when mounting is not possible here."""
    mounted: list[Path] = []

    def mount(path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs at {path}: {proc.stderr.strip() or proc.returncode}")
        mounted.append(path)

    yield mount
    for path in reversed(mounted):
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)


# --------------------------------------------------------------------------- symlinks staged


V1: dict[str, bytes | Link] = {
    "demolinks/__init__.py": b"VERSION = '1.0'\n",
    "demolinks/impl_v1.py": b"WHICH = 'impl 1'\n",
    "demolinks/impl.py": Link("impl_v1.py"),  # a file link, relative
    "demolinks/data/table.txt": b"table 1\n",
    "demolinks/tables": Link("data"),  # a directory link
    "demolinks/dangling": Link("does-not-exist"),
    "demolinks/absolute": Link("/nonexistent/install-atomic-test/target"),
    "demolinks/outside": Link("../../outside/file.txt"),  # leaves the destination
    "demolinks/was_file.txt": b"a regular file in 1.0\n",
    "demolinks/was_link.txt": Link("data/table.txt"),
}
V2: dict[str, bytes | Link] = {
    "demolinks/__init__.py": b"VERSION = '2.0'\n",
    "demolinks/impl_v2.py": b"WHICH = 'impl 2'\n",
    "demolinks/impl.py": Link("impl_v2.py"),  # retargeted
    "demolinks/data/table.txt": b"table 2\n",
    "demolinks/tables": Link("data"),
    "demolinks/dangling": Link("still-does-not-exist"),
    "demolinks/was_file.txt": Link("data/table.txt"),  # a file becomes a link
    "demolinks/was_link.txt": b"a regular file in 2.0\n",  # a link becomes a file
}


def test_staged_symlinks_stay_symlinks(tmp_path: Path) -> None:
    """Links land as links with their targets, through install, upgrade, downgrade and
    uninstall; nothing a link points to is followed or touched."""
    site = tmp_path / "site"
    site.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "file.txt").write_bytes(b"outside the destination\n")
    outside = tree_digest(tmp_path / "outside")
    empty = tree_digest(site, exclude=(".lock",))
    for version, entries in (("1.0", V1), ("2.0", V2), ("1.0", V1)):
        assert engine_install(site, "demo-links", version, entries) == []
        tree = tree_digest(site, exclude=(".lock",))
        assert without_metadata(tree) == expected_tree(empty, entries), version
        assert sorted(p.name for p in site.glob("*.egg-info")) == [
            egg_info_name("demo-links", version)
        ]
        assert leftovers(site) == []
    assert (site / "demolinks" / "impl.py").read_bytes() == b"WHICH = 'impl 1'\n"
    assert (site / "demolinks" / "tables" / "table.txt").read_bytes() == b"table 1\n"
    assert (site / "demolinks" / "outside").read_bytes() == b"outside the destination\n"
    engine_uninstall(site, "demo-links")
    assert tree_digest(site, exclude=(".lock",)) == empty
    assert tree_digest(tmp_path / "outside") == outside


def under(prefix: str, entries: Entries) -> dict[str, bytes | Link]:
    return {f"{prefix}/{rel}": content for rel, content in entries.items()}


def test_symlinks_survive_relocation(tmp_path: Path, tmpfs: Callable[[Path], None]) -> None:
    """``site/shared`` is a filesystem of its own (a mount point inside the destination),
    a namespace another distribution also uses: demo-links' entries below it are staged
    again on that filesystem (Transaction._relocate), and links stay links."""
    site = tmp_path / "site"
    tmpfs(site / "shared")
    mount_dev = os.lstat(site / "shared").st_dev
    assert mount_dev != os.lstat(site).st_dev
    other = {"shared/other/__init__.py": b"OTHER = 1\n"}
    engine_install(site, "demo-other", "1.0", other)
    base = tree_digest(site, exclude=(".lock", "*.egg-info"))
    for version, entries in (("1.0", V1), ("2.0", V2), ("1.0", V1)):
        engine_install(site, "demo-links", version, under("shared", entries))
        tree = tree_digest(site, exclude=(".lock", "*.egg-info"))
        assert tree == expected_tree(base, under("shared", entries)), version
        assert os.lstat(site / "shared").st_dev == mount_dev  # still the mount point
        assert os.lstat(site / "shared" / "demolinks").st_dev == mount_dev
        assert leftovers(site) == []
    engine_uninstall(site, "demo-links")
    assert tree_digest(site, exclude=(".lock", "*.egg-info")) == base


@pytest.mark.slow
def test_symlinks_in_a_setuptools_project(make_venv: MakeVenv, tmp_path: Path) -> None:
    """Through ``setup.py install_atomic``: setuptools' build copies follow symlinks (checked
    with 66.1.1 and 84.2.1: a link to a module arrives as a regular file with the target's
    content), which is why the tests above stage links through the engine.  Either way the
    installed entry must read as its target did, and upgrading keeps it consistent."""
    venv = make_venv("newest")
    site = venv.site_packages
    for version in ("1.0", "2.0"):
        project = make_project("pkg", tmp_path / "src", version)
        module = "only_v1.py" if version == "1.0" else "only_v2.py"
        (project / "demopkg" / "alias.py").symlink_to(module)
        (project / "demopkg" / "data" / "alias.txt").symlink_to("table.txt")
        install(venv, project)
        alias = site / "demopkg" / "alias.py"
        if alias.is_symlink():
            assert os.readlink(alias) == module
        assert alias.read_bytes() == (project / "demopkg" / module).read_bytes()
        table = (project / "demopkg" / "data" / "table.txt").read_bytes()
        assert (site / "demopkg" / "data" / "alias.txt").read_bytes() == table
        assert venv.import_version("demopkg.alias") == version
    assert leftovers(venv.root) == []


# --------------------------------------------------------------------------- a linked checkout


def checkout_of(tmp_path: Path, version: str) -> Path:
    """A developer's checkout of demo-pkg outside the destination, with an extra file."""
    project = make_project("pkg", tmp_path / "checkout-src", version)
    checkout = tmp_path / "checkout" / f"pkg-{version}"
    shutil.copytree(project, checkout)
    (checkout / "demopkg" / "dev_notes.py").write_text("NOTES = 'keep me'\n")
    return checkout / "demopkg"


def install(venv: Venv, project: Path, *args: str, check: bool = True) -> str:
    proc = venv.setup_py(project, "install_atomic", *args, check=check)
    return proc.stdout + proc.stderr


def assert_real_pkg(venv: Venv, version: str) -> None:
    pkg = venv.site_packages / "demopkg"
    assert not pkg.is_symlink() and pkg.is_dir()
    assert venv.import_version("demopkg") == version
    location = venv.run("-c", "import demopkg; print(demopkg.__file__)").stdout.strip()
    assert Path(location) == pkg / "__init__.py"
    assert not (pkg / "dev_notes.py").exists()


@pytest.mark.slow
def test_symlinked_checkout_is_replaced_as_a_link(make_venv: MakeVenv, tmp_path: Path) -> None:
    """``site/demopkg -> checkout/demopkg``: installing demo-pkg replaces the link by the real
    directory; the checkout stays exactly as it was, whether or not an installed version
    of demo-pkg lists files "inside" the link."""
    venv = make_venv("newest")
    site = venv.site_packages
    checkout = checkout_of(tmp_path, "2.0")
    checkout_before = tree_digest(checkout.parent)
    v1 = make_project("pkg", tmp_path / "src", "1.0")
    v2 = make_project("pkg", tmp_path / "src", "2.0")

    # Nobody's link: the first install swaps it for the package.
    (site / "demopkg").symlink_to(checkout, target_is_directory=True)
    assert venv.import_version("demopkg") == "2.0"  # the checkout is what imports
    install(venv, v1)
    assert_real_pkg(venv, "1.0")
    assert tree_digest(checkout.parent) == checkout_before

    # The developer links their checkout over the installed 1.0, then upgrades: 1.0's
    # listed files resolve into the checkout through the link; none may be touched there.
    shutil.rmtree(site / "demopkg")
    (site / "demopkg").symlink_to(checkout, target_is_directory=True)
    install(venv, v2)
    assert_real_pkg(venv, "2.0")
    assert tree_digest(checkout.parent) == checkout_before
    assert leftovers(venv.root) == []


@pytest.mark.slow
def test_uninstall_through_symlinked_checkout_keeps_checkout(
    make_venv: MakeVenv, tmp_path: Path
) -> None:
    """demo-pkg 1.0 installed, then ``site/demopkg`` replaced by a link to a checkout that
    holds the same files and one more: uninstalling demo-pkg may remove the link, never a
    file in the checkout (it lies outside the destination)."""
    venv = make_venv("newest")
    site = venv.site_packages
    checkout = checkout_of(tmp_path, "1.0")
    checkout_before = tree_digest(checkout.parent)
    install(venv, make_project("pkg", tmp_path / "src", "1.0"))
    shutil.rmtree(site / "demopkg")
    (site / "demopkg").symlink_to(checkout, target_is_directory=True)
    venv.run("-m", "install_atomic", "uninstall", "demo-pkg", "--target", site)
    assert tree_digest(checkout.parent) == checkout_before, "files deleted through the link"
    assert not list(site.glob("demo_pkg-*"))
    assert leftovers(venv.root) == []


@pytest.mark.slow
def test_symlinked_namespace_portion(make_venv: MakeVenv, tmp_path: Path) -> None:
    """``site/demons/alpha`` links to a checkout while demo-ns-b shares ``demons``: an
    upgrade replaces the link, the checkout and the sibling stay as they were."""
    venv = make_venv("newest")
    site = venv.site_packages
    a1 = make_project("ns_pep420_a", tmp_path / "src", "1.0")
    a2 = make_project("ns_pep420_a", tmp_path / "src", "2.0")
    install(venv, a1)
    install(venv, make_project("ns_pep420_b", tmp_path / "src", "1.0"))
    beta = tree_digest(site / "demons" / "beta")
    checkout = tmp_path / "checkout" / "alpha"
    shutil.copytree(a1 / "demons" / "alpha", checkout)
    (checkout / "dev_notes.py").write_text("NOTES = 'keep me'\n")
    before = tree_digest(checkout)
    shutil.rmtree(site / "demons" / "alpha")
    (site / "demons" / "alpha").symlink_to(checkout, target_is_directory=True)
    install(venv, a2)
    assert not (site / "demons" / "alpha").is_symlink()
    assert tree_digest(site / "demons" / "alpha", exclude=("__pycache__",)) == tree_digest(
        a2 / "demons" / "alpha"
    )
    assert tree_digest(checkout) == before
    assert tree_digest(site / "demons" / "beta") == beta
    assert venv.import_version("demons.alpha.core") == "2.0"
    assert venv.import_version("demons.beta.core") == "1.0"


@pytest.mark.slow
def test_symlinked_shared_namespace_keeps_sibling(make_venv: MakeVenv, tmp_path: Path) -> None:
    """``site/demons`` (PEP 420, shared by demo-ns-a and demo-ns-b) is a symlink to a
    directory elsewhere that holds both portions.  Upgrading demo-ns-a is refused before
    anything changes (engine/plan.py): replacing the link would make demo-ns-b's files
    vanish, writing through it would change a directory outside the destination.  The
    error names the link and the distribution sharing it; the venv and the directory the
    link points to are exactly as they were, and demo-ns-b still imports."""
    venv = make_venv("newest")
    site = venv.site_packages
    install(venv, make_project("ns_pep420_a", tmp_path / "src", "1.0"))
    install(venv, make_project("ns_pep420_b", tmp_path / "src", "1.0"))
    elsewhere = tmp_path / "elsewhere" / "demons"
    elsewhere.parent.mkdir()
    shutil.move(site / "demons", elsewhere)
    (site / "demons").symlink_to(elsewhere, target_is_directory=True)
    before = tree_digest(venv.root)
    elsewhere_before = tree_digest(elsewhere)

    proc = venv.setup_py(
        make_project("ns_pep420_a", tmp_path / "src", "2.0"), "install_atomic", check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"the upgrade wrote through or replaced the link:\n{out}"
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    assert f"{site / 'demons'} is a symbolic link to a directory that other distributions" \
        in errors[0], errors[0]
    assert "demo-ns-b" in errors[0] and "Nothing was changed" in errors[0], errors[0]
    assert "Traceback" not in out, out
    assert tree_digest(venv.root) == before
    assert tree_digest(elsewhere) == elsewhere_before
    assert (site / "demons").is_symlink() and os.readlink(site / "demons") == str(elsewhere)
    assert venv.import_version("demons.alpha.core") == "1.0"
    assert venv.import_version("demons.beta.core") == "1.0"
    assert leftovers(venv.root, elsewhere) == []


# --------------------------------------------------------------------------- modes


def modes(root: Path, rels: list[str]) -> dict[str, str]:
    """``{relpath: "d0750" / "f0640" / "l"}`` for *rels* and everything below them."""
    out: dict[str, str] = {}
    for rel in rels:
        top = root / rel
        paths = [top]
        if top.is_dir() and not top.is_symlink():
            paths += sorted(top.rglob("*"))
        for path in paths:
            st = os.lstat(path)
            kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "f"
            out[str(path.relative_to(root))] = f"{kind}{stat.S_IMODE(st.st_mode):04o}"
    return out


def with_umask(umask: int, *cmd: str | os.PathLike[str]) -> list[str]:
    return ["sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", *(os.fspath(c) for c in cmd)]


@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077], ids=lambda m: f"umask{m:03o}")
def test_modes_follow_umask(umask: int, make_venv: MakeVenv, tmp_path: Path) -> None:
    """Everything the install creates has the mode ``setup.py install`` gives it under the
    same umask: directories and written files 0o777/0o666 & ~umask, copied data files and
    headers their source's mode, scripts executable.  Upgrading keeps following the umask
    of the upgrading process; no directory gets the staging directory's 0755."""
    atomic = make_venv("newest", name="atomic")
    stock = make_venv("newest", name="stock")
    dirs_mode, files_mode = 0o777 & ~umask, 0o666 & ~umask
    site_rel = str(atomic.site_packages.relative_to(atomic.root))
    # Headers: install_atomic puts them where pip does in a venv (include/site/...),
    # setup.py install elsewhere; their modes are compared relative to each one's place.
    header_dirs: dict[Path, Path] = {}
    for venv, command in ((atomic, "install_atomic"), (stock, "install")):
        project = make_project("scripts", tmp_path / venv.root.name, "1.0")
        args: list[str | os.PathLike[str]] = [venv.python, "setup.py", command]
        if command == "install":
            args += ["--single-version-externally-managed", "--record", "record.txt"]
        run(with_umask(umask, *args), cwd=project)
        headers = list(venv.root.glob("include/**/demo.h"))
        assert len(headers) == 1
        header_dirs[venv.root] = headers[0].parent
    assert header_dirs[atomic.root].relative_to(atomic.root).parts[:2] == ("include", "site")
    header_modes = [
        {k.replace(str(d.relative_to(root)), "HEADERS", 1): v
         for k, v in modes(root, [str(d.relative_to(root))]).items()}
        for root, d in header_dirs.items()
    ]
    assert header_modes[0] == header_modes[1]
    rels = [
        f"{site_rel}/demoscripts",
        f"{site_rel}/demo_scripts-1.0-{PY}.egg-info",
        "bin/demo-cli",
        "bin/demo-legacy-script",
        "share",
    ]
    got, want = modes(atomic.root, rels), modes(stock.root, rels)
    # install_atomic also writes bytecode, installed-files.txt and install-atomic-roots.txt
    # (here: PYTHONDONTWRITEBYTECODE).
    extra = {rel: mode for rel, mode in got.items() if rel not in want}
    assert {rel: got[rel] for rel in want} == want
    assert extra, "no bytecode written?"
    for rel, mode in extra.items():
        assert rel.endswith(
            (".pyc", "/__pycache__", "installed-files.txt", "install-atomic-roots.txt")
        ), rel
        assert mode == (f"d{dirs_mode:04o}" if mode[0] == "d" else f"f{files_mode:04o}"), rel
    for rel, mode in got.items():
        if mode[0] == "d":
            assert mode == f"d{dirs_mode:04o}", rel
        elif rel.endswith(".py"):
            assert mode == f"f{files_mode:04o}", rel
    assert got["bin/demo-cli"] == f"f{0o777 & ~umask:04o}"
    assert int(got["bin/demo-legacy-script"][1:], 8) & 0o100
    assert atomic.site_packages.stat().st_mode & 0o777 == 0o755  # untouched

    # Upgrade under another umask: the new version's entries follow the new umask.
    project = make_project("scripts", tmp_path / "upgrade", "2.0")
    run(with_umask(0o022, atomic.python, "setup.py", "install_atomic"), cwd=project)
    upgraded = modes(atomic.root, [f"{site_rel}/demoscripts", "share/demo-scripts"])
    for rel, mode in upgraded.items():
        if mode[0] == "d":
            assert mode == "d0755", rel
        elif rel.endswith((".py", ".pyc")):
            assert mode == "f0644", rel
    assert leftovers(atomic.root) == []


# --------------------------------------------------------------------------- read-only


def make_read_only(*trees: Path) -> None:
    for tree in trees:
        for path in sorted(tree.rglob("*"), reverse=True):
            path.chmod(0o555 if path.is_dir() else 0o444)
        tree.chmod(0o555)


def setpriv_prefix() -> list[str]:
    """Run as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH / CAP_FOWNER: permission
    bits bind as for the files' (non-root) owner."""
    if os.geteuid() != 0:
        return []  # not root: permission bits bind already
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot drop CAP_DAC_OVERRIDE")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]


@pytest.mark.slow
@pytest.mark.parametrize("who", ["root", "owner"])
def test_read_only_old_version_is_replaced(who: str, make_venv: MakeVenv, tmp_path: Path) -> None:
    """demo-pkg 1.0 made read-only (files 0444, directories 0555): upgrading to 2.0 and
    uninstalling succeed and leave nothing of 1.0 behind, as root and as the owner."""
    prefix = setpriv_prefix() if who == "owner" else []
    venv = make_venv("newest")
    site = venv.site_packages
    v1 = make_project("pkg", tmp_path / "src", "1.0")
    v2 = make_project("pkg", tmp_path / "src", "2.0")
    install(venv, v1)
    make_read_only(site / "demopkg", *site.glob("demo_pkg-*.egg-info"))
    assert os.stat(site / "demopkg" / "only_v1.py").st_mode & 0o777 == 0o444

    run([*prefix, venv.python, "setup.py", "install_atomic"], cwd=v2)
    assert venv.import_version("demopkg.only_v2") == "2.0"
    assert not (site / "demopkg" / "only_v1.py").exists()
    assert sorted(p.name for p in site.glob("demo_pkg-*")) == [f"demo_pkg-2.0-{PY}.egg-info"]
    assert leftovers(venv.root) == []

    make_read_only(site / "demopkg", *site.glob("demo_pkg-*.egg-info"))
    run([*prefix, venv.python, "-m", "install_atomic", "uninstall", "demo-pkg", "--target", site])
    assert not (site / "demopkg").exists()
    assert not list(site.glob("demo_pkg-*"))
    assert leftovers(venv.root) == []


@pytest.mark.slow
def test_read_only_namespace_portion_is_replaced(make_venv: MakeVenv, tmp_path: Path) -> None:
    """A read-only portion ``demons/alpha`` of 1.0 next to demo-ns-b: the upgrade, as the
    owner, replaces it (the shared ``demons`` directory stays writable)."""
    prefix = setpriv_prefix()
    venv = make_venv("newest")
    site = venv.site_packages
    install(venv, make_project("ns_pep420_a", tmp_path / "src", "1.0"))
    install(venv, make_project("ns_pep420_b", tmp_path / "src", "1.0"))
    beta = tree_digest(site / "demons" / "beta")
    make_read_only(site / "demons" / "alpha")
    run(
        [*prefix, venv.python, "setup.py", "install_atomic"],
        cwd=make_project("ns_pep420_a", tmp_path / "src", "2.0"),
    )
    assert not (site / "demons" / "alpha" / "dropped.py").exists()
    assert venv.import_version("demons.alpha.core") == "2.0"
    assert tree_digest(site / "demons" / "beta") == beta
    assert leftovers(venv.root) == []
