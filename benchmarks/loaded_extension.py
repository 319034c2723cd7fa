"""A loaded C extension under upgrade: rename (install_atomic) vs in-place overwrite (cp).

``fastext`` is a C extension project in two versions.  Its module ``_core``
carries an 8 MiB read-only table (``.incbin`` of a generated file: all bytes 1
in version 1, 2 in version 2; the ``.so`` is ~8 MiB, like a large real
extension) and two functions: ``version()`` and ``table_sum()``, which reads
one byte of every 4 KiB page of the table, so every call touches the whole
mapping.

A long-running process imports it and calls both in a loop, remembering the
first answers; meanwhile the installed extension is replaced several times:

* **install_atomic**: ``python setup.py install_atomic`` alternating the two
  versions (the package directory is swapped by a rename; the old ``.so``
  inode stays mapped until the process exits);
* **setup.py install --force**: setuptools' own install, for reference;
* **cp -R**: ``cp -R <built tree>/fastext <prefix>/`` over a throwaway copy
  of the installed tree that the process imports from (``PYTHONPATH``): cp
  truncates and rewrites the mapped ``.so`` in place, as ``cp -R`` into a
  prefix does.

Each run reports how the process ended (exit status or signal), how many
loop iterations it made and whether any call answered differently from the
first (it must keep returning its old, mapped results).

Usage: ``python3 benchmarks/loaded_extension.py`` (``--quick``: one run each,
two replacements).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import _common as c

NAME = "loaded_extension"
VERSIONS = ("1.0", "2.0")
TABLE_MIB = 8

C_SOURCE = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* TABLE_MIB MiB of read-only data from fastext/table.bin, page aligned. */
__asm__(
    ".section .rodata\n"
    ".global fastext_table\n"
    ".hidden fastext_table\n"
    ".type fastext_table, @object\n"
    ".balign 4096\n"
    "fastext_table:\n"
    ".incbin \"fastext/table.bin\"\n"
    ".size fastext_table, . - fastext_table\n"
    ".previous\n");
extern const unsigned char fastext_table[];
#define TABLE_SIZE ((size_t)TABLE_MIB * 1024 * 1024)

static PyObject *version(PyObject *self, PyObject *args) {
    return PyLong_FromLong(VERSION_NUMBER);
}

static PyObject *table_sum(PyObject *self, PyObject *args) {
    volatile const unsigned char *p = fastext_table;
    unsigned long s = 0;
    for (size_t i = 0; i < TABLE_SIZE; i += 4096)
        s += p[i];
    return PyLong_FromUnsignedLong(s);
}

static PyMethodDef methods[] = {
    {"version", version, METH_NOARGS, "the version compiled in"},
    {"table_sum", table_sum, METH_NOARGS, "sum of one byte per page of the table"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_core", NULL, -1, methods};

PyMODINIT_FUNC PyInit__core(void) { return PyModule_Create(&module); }
"""

WORKER = r'''
import json, os, sys, time
from fastext import _core

stop, max_seconds = sys.argv[1], float(sys.argv[2])
v0, s0 = _core.version(), _core.table_sum()
print("READY", v0, s0, flush=True)
calls = changed = 0
first_change = None
deadline = time.monotonic() + max_seconds
while time.monotonic() < deadline and not os.path.exists(stop):
    v, s = _core.version(), _core.table_sum()
    if (v, s) != (v0, s0):
        changed += 1
        first_change = first_change or [v, s]
    calls += 1
print(json.dumps({"calls": calls, "version": v0, "sum": s0, "changed": changed,
                  "first_change": first_change}), flush=True)
'''


def make_project(root: Path, version: str) -> Path:
    number = VERSIONS.index(version) + 1
    project = root / f"fastext-{version}"
    c.write_files(project, {
        "setup.py": c.setup_py(
            "fastext", version, packages="['fastext']",
            ext_modules=(
                "[Extension('fastext._core', ['fastext/_core.c'],"
                f" define_macros=[('VERSION_NUMBER', '{number}'), ('TABLE_MIB', '{TABLE_MIB}')],"
                " depends=['fastext/table.bin'])]"
            ),
        ),
        "fastext/__init__.py": f'VERSION = "{version}"\n',
        "fastext/_core.c": C_SOURCE,
        "fastext/table.bin": bytes([number]) * (TABLE_MIB << 20),
    })
    return project


def built_tree(project: Path) -> Path:
    found = sorted(project.glob("build/lib.*/fastext"))
    if not found:
        raise c.BenchmarkError(f"no build/lib.*/fastext in {project.name}")
    return found[0].parent


def status(rc: int) -> str:
    if rc < 0:
        return f"killed by {signal.Signals(-rc).name}"
    return f"exit {rc}"


def one_run(python: Path, env: dict[str, str], replace: list[list[str]], cwd: Path,
            work: Path) -> dict[str, Any]:
    stop = work / "stop"
    stop.unlink(missing_ok=True)
    proc = subprocess.Popen([str(python), "-c", WORKER, str(stop), "300"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    if not ready.startswith("READY"):
        proc.kill()
        raise c.BenchmarkError(c.scrub(f"worker did not start: {ready} {proc.stderr.read()}"))
    time.sleep(0.2)
    done, failures, durations = 0, [], []
    for cmd in replace:
        if proc.poll() is not None:
            break
        t = time.monotonic()
        r = subprocess.run(cmd[1:], cwd=cmd[0], env=c.clean_env(), capture_output=True,
                           text=True, check=False, timeout=600)
        durations.append(time.monotonic() - t)
        done += 1
        if r.returncode != 0:
            failures.append(c.scrub((r.stdout + r.stderr)[-1000:]))
        time.sleep(0.2)
    stop.write_text("stop\n")
    out, err = proc.communicate(timeout=120)
    result: dict[str, Any] = {
        "replacements": done,
        "replacement_failures": failures,
        "median_replacement_s": round(c.median(durations), 3),
        "status": status(proc.returncode),
        "returncode": proc.returncode,
    }
    try:
        result.update(json.loads(out.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        result["stderr"] = c.scrub(err[-300:])
    return result


def series(label: str, runs: int, make: Any) -> dict[str, Any]:
    results = []
    for i in range(runs):
        c.log(f"{label}: run {i + 1}/{runs}")
        results.append(make())
    return {"mode": label, "runs": results}


def markdown(all_series: list[dict[str, Any]]) -> str:
    rows = []
    for s in all_series:
        runs = s["runs"]
        statuses = {}
        for r in runs:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        survived = sum(r["returncode"] == 0 for r in runs)
        changed = sum(bool(r.get("changed")) for r in runs)
        rows.append([
            s["mode"], len(runs), sum(r["replacements"] for r in runs),
            f"{survived}/{len(runs)}",
            ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())),
            f"{changed}/{len(runs)}",
            f"{sum(r.get('calls', 0) for r in runs):,}",
        ])
    return c.md_table(
        ["replaced by", "runs", "replacements made", "process survived", "how it ended",
         "runs with changed answers", "calls answered (survivors)"],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="runs per installer")
    p.add_argument("--cp-runs", type=int, default=6, help="runs of the cp case")
    p.add_argument("--replacements", type=int, default=4, help="replacements per run")
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.cp_runs, args.replacements = 1, 1, 2
    with c.workdir(args, NAME) as work:
        src = {v: make_project(work / "src", v) for v in VERSIONS}
        builder = c.make_venv(work / "builder")
        for v in VERSIONS:
            builder.run("setup.py", "-q", "build", cwd=src[v])
        all_series = []
        for label, cmd in (("install_atomic", ["setup.py", "install_atomic"]),
                           ("setup.py install --force", ["setup.py", "install", "--force"])):
            base = work / label.split()[0]
            venv = c.make_venv(base / "venv")
            proj = {}
            for v in VERSIONS:
                proj[v] = base / src[v].name
                shutil.copytree(src[v], proj[v], symlinks=True)
            venv.run(*cmd, cwd=proj[VERSIONS[0]])
            replace = [[str(proj[VERSIONS[(i + 1) % 2]]), str(venv.python), *cmd]
                       for i in range(args.replacements)]

            def make(venv: c.Venv = venv, replace: list[list[str]] = replace,
                     base: Path = base, cmd: list[str] = cmd,
                     first: Path = proj[VERSIONS[0]]) -> dict[str, Any]:
                venv.run(*cmd, cwd=first)  # start each run from version 1
                return one_run(venv.python, c.clean_env(), replace, base, base)

            all_series.append(series(label, args.runs, make))

        cp_base = work / "cp"
        prefix = cp_base / "prefix"
        trees = {v: built_tree(src[v]) for v in VERSIONS}
        replace = [[str(cp_base), "cp", "-R", str(trees[VERSIONS[(i + 1) % 2]] / "fastext"),
                    str(prefix) + "/"] for i in range(args.replacements)]

        def make_cp() -> dict[str, Any]:
            shutil.rmtree(prefix, ignore_errors=True)
            prefix.mkdir(parents=True)
            shutil.copytree(trees[VERSIONS[0]] / "fastext", prefix / "fastext")
            env = c.clean_env({"PYTHONPATH": str(prefix)})
            return one_run(builder.python, env, replace, cp_base, cp_base)

        all_series.append(series("cp -R (in place)", args.cp_runs, make_cp))
        so = next(trees[VERSIONS[0]].glob("fastext/_core*.so"))
        data = {"benchmark": NAME, "quick": args.quick, "so_bytes": so.stat().st_size,
                "machine": c.machine_info(builder, work), "series": all_series}
    c.save_results(NAME, data, args)
    atomic = all_series[0]["runs"]
    goals = {
        "install_atomic: the process survives every upgrade": all(
            r["returncode"] == 0 for r in atomic),
        "install_atomic: old results throughout": all(r.get("changed") == 0 for r in atomic),
        "install_atomic: every upgrade succeeded": all(
            not r["replacement_failures"] for r in atomic),
    }
    return c.report(markdown(all_series), goals)


if __name__ == "__main__":
    raise SystemExit(main())
