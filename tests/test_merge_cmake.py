"""A real build system: a CMake project (a C library, its headers, an executable, data
under ``share/``) installed into a DESTDIR, merged into a live prefix, upgraded with
``--replace`` and uninstalled by manifest, next to another package sharing ``include/``
and ``lib/``.

Everything is real: CMake configures and builds with the C compiler, ``cmake --install``
(version 1) and ``make install`` (version 2, Unix Makefiles) stage the trees, the
installed executable runs from the prefix and the dynamic loader resolves its library
there (``$ORIGIN`` run path, no ``LD_LIBRARY_PATH``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mergekit import Digest, digest, files_of, ia, private, run_ok, write_tree

pytestmark = pytest.mark.slow

INSTALL_PREFIX = "/usr/local"

CMAKELISTS = """\
cmake_minimum_required(VERSION 3.10)
project(greet VERSION {version} LANGUAGES C)
set(CMAKE_INSTALL_RPATH "\\$ORIGIN/../lib")
add_library(greet SHARED greet.c)
set_target_properties(greet PROPERTIES VERSION {version}.0 SOVERSION {major})
add_executable(greet-tool main.c)
target_link_libraries(greet-tool PRIVATE greet)
install(TARGETS greet LIBRARY DESTINATION lib)
install(TARGETS greet-tool RUNTIME DESTINATION bin)
install(FILES {headers} DESTINATION include/greet)
{data}
"""

GREET_C = """\
#include "greet.h"
const char *greet_version(void) {{ return "libgreet {version}"; }}
"""

MAIN_C = """\
#include <stdio.h>
#include "greet.h"
int main(void) { printf("%s\\n", greet_version()); return 0; }
"""

GREET_H = "#ifndef GREET_H\n#define GREET_H\nconst char *greet_version(void);\n#endif\n"

#: The other package, merged first: it shares include/, include/greet/, lib/ and share/.
OTHER: dict[str, str | bytes] = {
    "include/other.h": "/* other 3 */\n",
    "include/greet/greet-plugin.h": "/* a plugin of greet, packaged apart */\n",
    "lib/libother.so.3": b"\x7fELF other 3\n",
    "lib/libother.so": "-> libother.so.3",
    "lib/pkgconfig/other.pc": "Name: other\nVersion: 3\n",
    "share/other/data.txt": "other data\n",
}


def _project(root: Path, version: str, headers: dict[str, str],
             data: dict[str, str]) -> Path:
    """The CMake project of *version*: *headers* (name -> text) go to include/greet,
    *data* (path below share/greet -> text) to share/greet."""
    major = version.split(".")[0]
    files: dict[str, str] = {
        "greet.c": GREET_C.format(version=version), "main.c": MAIN_C,
        "greet.h": GREET_H, **headers,
    }
    install_data = []
    for rel, text in data.items():
        files[f"data/{rel}"] = text
        where = "/".join(["share/greet", *rel.split("/")[:-1]])
        install_data.append(f"install(FILES data/{rel} DESTINATION {where})")
    files["CMakeLists.txt"] = CMAKELISTS.format(
        version=version, major=major, headers=" ".join(["greet.h", *headers]),
        data="\n".join(install_data))
    return write_tree(root, files)


def _build(src: Path, tmp_path: Path, tag: str) -> Path:
    """Configure and build *src* with the Unix Makefiles generator."""
    build = tmp_path / f"build-{tag}"
    run_ok(["cmake", "-S", str(src), "-B", str(build), "-G", "Unix Makefiles",
            "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_INSTALL_PREFIX={INSTALL_PREFIX}"])
    run_ok(["cmake", "--build", str(build)])
    return build


def _staged_files(destdir: Path) -> set[str]:
    """Files and links the DESTDIR holds under the install prefix, relative to it."""
    return files_of(digest(destdir / INSTALL_PREFIX.lstrip("/")))


def _env_without_loader_paths() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}


def _run_tool(prefix: Path) -> tuple[str, str]:
    """What the installed executable prints, and the path at which the dynamic loader
    found libgreet (glibc's ``LD_TRACE_LOADED_OBJECTS``, as ``ldd`` does)."""
    tool = prefix / "bin/greet-tool"
    env = _env_without_loader_paths()
    out = run_ok([str(tool)], env=env).strip()
    # What ldd prints: the dynamic loader lists the libraries it resolved, runs nothing.
    loaded = run_ok([str(tool)], env={**env, "LD_TRACE_LOADED_OBJECTS": "1"})
    resolved = ""
    for line in loaded.splitlines():
        if "libgreet" in line and "=>" in line:
            resolved = os.path.normpath(line.split("=>", 1)[1].split("(")[0].strip())
    return out, resolved


def _files_of(prefix: Path, rels: set[str]) -> Digest:
    d = digest(prefix)
    return {rel: d[rel] for rel in rels if rel in d}


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not on PATH")
def test_cmake_project_merged_upgraded_and_uninstalled(tmp_path: Path) -> None:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.fail("cmake is installed but no C compiler (cc, gcc) is on PATH")
    prefix = tmp_path / "usr-local"
    pkgs = prefix / "var/lib/pkgs"

    # The other package, merged first.
    ia("merge", "--manifest", str(pkgs / "other-3.json"),
       str(write_tree(tmp_path / "other-dest", OTHER)), str(prefix))
    other = _files_of(prefix, set(OTHER))
    assert set(other) == set(OTHER)

    # Version 1: cmake --install into a DESTDIR, then merge.
    v1_src = _project(tmp_path / "greet-1.0", "1.0",
                      {"greet_old.h": "/* dropped in 2.0 */\n", "greet_util.h": "/* 1 */\n"},
                      {"messages.txt": "hello 1\n", "old.txt": "dropped in 2.0\n",
                       "legacy/notes.txt": "a directory only 1.0 has\n"})
    v1_build = _build(v1_src, tmp_path, "1")
    v1_dest = tmp_path / "dest-1"
    run_ok(["cmake", "--install", str(v1_build), "--prefix", INSTALL_PREFIX],
           env={**os.environ, "DESTDIR": str(v1_dest)})
    v1_files = _staged_files(v1_dest)
    assert {"bin/greet-tool", "lib/libgreet.so", "lib/libgreet.so.1", "lib/libgreet.so.1.0.0",
            "include/greet/greet.h", "include/greet/greet_old.h",
            "share/greet/old.txt", "share/greet/legacy/notes.txt"} <= v1_files
    ia("merge", "--strip", INSTALL_PREFIX, "--manifest", str(pkgs / "greet-1.0.json"),
       "--version", "1.0", str(v1_dest), str(prefix))

    assert _run_tool(prefix) == ("libgreet 1.0", str(prefix / "lib/libgreet.so.1"))
    manifest1 = json.loads((pkgs / "greet-1.0.json").read_text())
    assert set(manifest1["files"]) == v1_files
    assert manifest1["version"] == "1.0"
    assert files_of(digest(prefix)) == (v1_files | set(OTHER)
                                        | {"var/lib/pkgs/other-3.json",
                                           "var/lib/pkgs/greet-1.0.json"})
    assert _files_of(prefix, set(OTHER)) == other
    assert not private(prefix)

    # Version 2 drops a header, a data file and a data directory, adds one of each kind,
    # and moves to a new soname; staged by `make install DESTDIR=...`.
    v2_src = _project(tmp_path / "greet-2.0", "2.0",
                      {"greet_new.h": "/* new in 2.0 */\n", "greet_util.h": "/* 2 */\n"},
                      {"messages.txt": "hello 2\n", "new.txt": "new in 2.0\n"})
    v2_build = _build(v2_src, tmp_path, "2")
    v2_dest = tmp_path / "dest-2"
    run_ok(["make", "-C", str(v2_build), "install", f"DESTDIR={v2_dest}"])
    v2_files = _staged_files(v2_dest)
    assert {"include/greet/greet_new.h", "share/greet/new.txt", "lib/libgreet.so.2"} <= v2_files
    # A process still running version 1's executable keeps its mapped library.
    with open(prefix / "lib/libgreet.so.1.0.0", "rb") as held:
        held_bytes = held.read()
        proc = ia("merge", "--strip", INSTALL_PREFIX, "--manifest", str(pkgs / "greet-2.0.json"),
                  "--replace", str(pkgs / "greet-1.0.json"), "--version", "2.0", str(v2_dest),
                  str(prefix))
        held.seek(0)
        assert held.read() == held_bytes
    assert "greet-2.0" in proc.stdout

    after = digest(prefix)
    dropped = v1_files - v2_files
    assert dropped == {"include/greet/greet_old.h", "share/greet/old.txt",
                       "share/greet/legacy/notes.txt", "lib/libgreet.so.1",
                       "lib/libgreet.so.1.0.0"}
    for rel in dropped:
        assert not os.path.lexists(prefix / rel), rel
    assert not os.path.lexists(prefix / "share/greet/legacy")  # held nothing else
    assert files_of(after) == (v2_files | set(OTHER)
                               | {"var/lib/pkgs/other-3.json", "var/lib/pkgs/greet-2.0.json"})
    assert (prefix / "include/greet/greet_new.h").read_text() == "/* new in 2.0 */\n"
    assert (prefix / "include/greet/greet_util.h").read_text() == "/* 2 */\n"
    assert (prefix / "share/greet/messages.txt").read_text() == "hello 2\n"
    assert os.readlink(prefix / "lib/libgreet.so") == "libgreet.so.2"
    assert _run_tool(prefix) == ("libgreet 2.0", str(prefix / "lib/libgreet.so.2"))
    assert not (pkgs / "greet-1.0.json").exists()
    manifest2 = json.loads((pkgs / "greet-2.0.json").read_text())
    assert set(manifest2["files"]) == v2_files and manifest2["version"] == "2.0"
    assert _files_of(prefix, set(OTHER)) == other
    assert json.loads((pkgs / "other-3.json").read_text())["files"] == sorted(OTHER)
    assert not private(prefix)

    # uninstall --manifest removes exactly version 2's files (and its manifest).
    before = files_of(digest(prefix))
    ia("uninstall", "--manifest", str(pkgs / "greet-2.0.json"))
    after_files = files_of(digest(prefix))
    assert after_files <= before
    assert before - after_files == v2_files | {"var/lib/pkgs/greet-2.0.json"}
    assert _files_of(prefix, set(OTHER)) == other
    assert (prefix / "include/greet").is_dir()  # the other package's header is still there
    assert not os.path.lexists(prefix / "share/greet")
    for standard in ("bin", "lib", "include", "share"):
        assert (prefix / standard).is_dir(), standard
    assert not private(prefix)
    # The other package's manifest still describes what is there.
    ia("uninstall", "--manifest", str(pkgs / "other-3.json"))
    assert files_of(digest(prefix)) == set()
    assert not private(prefix)

