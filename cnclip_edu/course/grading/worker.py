"""One student's notebooks, run in fresh kernels by a process of their own: `python -m ...grading.worker`.

The grader starts one worker per student (inside namespaces where they work, see sandbox.py) and
writes the job to its stdin as JSON; the job holds no secret a kernel could use to raise a grade
(seeds only decide which hidden inputs are drawn). The worker

1. reads the job, opens its private copy and the shared toy data, and (namespaces) mounts the
   sandbox; then copies the student's files into a fresh work folder;
2. runs each notebook cell by cell in a new kernel (memory-capped, stdout/stderr to /dev/null), with
   a time limit per cell (interrupted, the notebook goes on) and per notebook (then stopped);
3. after a cell that called `check("NN.k", ...)`, and once more at the end, executes the grader's
   probe in the same kernel (probe.py) and collects the files it wrote;
4. after each notebook kills every process the kernel left behind (also in new sessions);
5. writes one JSON answer on a private copy of its stdout (the kernel inherits /dev/null instead, so
   nothing a notebook prints can pass for the worker's answer) and exits.

It decides no grade: the grader decodes and judges the probe files in its own process.
"""
from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import sandbox

CHECK_CALL = re.compile(r"""(?<![\w.])check\(\s*(?P<q>["'])(?P<id>[^"']+)(?P=q)""")
MAX_RESULT_BYTES = 256 * 2 ** 20
GRACE_S = 20   # beyond a cell's limit, for a kernel that does not answer its interrupt


def _kernelspec(job_dir: Path, kernel_name: str, memory_bytes: int, namespaces: bool) -> str:
    """A kernel spec whose command is the chosen kernel's, started by launch.py (memory cap) and, with
    namespaces, in a nested user+mount namespace (locks the sandbox's mounts)."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(kernel_name)
    kernel_argv = list(spec.argv)
    # jupyter_client runs a spec's bare "python" as this interpreter; behind our launcher it would be whatever
    # `python` is first on PATH (in CI: not the venv's, without ipykernel), so do the same substitution here
    if kernel_argv and kernel_argv[0] in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        kernel_argv[0] = sys.executable
    argv = [*sandbox.kernel_prefix(namespaces), sys.executable, "-m", "cnclip_edu.course.grading.launch",
            "--memory", str(int(memory_bytes)), "--", *kernel_argv]
    folder = job_dir / "jupyter" / "kernels" / "cnclip-grade"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "cnclip-grade",
                                                    "language": spec.language, "env": spec.env}))
    return "cnclip-grade"


def _read_probe(out: Path, ids: list[str]) -> dict[str, dict]:
    """The files the probe wrote, as text and base64 blobs (decoded by the grader, not here)."""
    found: dict[str, dict] = {}
    total = 0
    for exercise_id in ids:
        doc = out / f"{exercise_id}.json"
        if not doc.is_file() or doc.is_symlink():
            continue
        text = doc.read_text(encoding="utf-8", errors="replace")
        blobs, k = [], 0
        while (out / f"{exercise_id}.{k}.npy").is_file() and not (out / f"{exercise_id}.{k}.npy").is_symlink():
            data = (out / f"{exercise_id}.{k}.npy").read_bytes()
            total += len(data)
            blobs.append(base64.b64encode(data).decode())
            k += 1
        total += len(text)
        if total > MAX_RESULT_BYTES:
            found[exercise_id] = {"error": "结果太大 (results too large)"}
            continue
        found[exercise_id] = {"json": text, "blobs": blobs}
    return found


def cell_errors(nb) -> str:
    """The first error of a cell other than an exercise's own (a check's verdict, an unanswered stub:
    those show in the points) and how many more, numbered as in the student's notebook (the grader's
    injected cell not counted)."""
    cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    found = []
    for n, cell in enumerate(cells, 1):
        for out in cell.get("outputs", []):
            if out.get("output_type") != "error" or out.get("ename") in ("ExerciseNotAttempted", "ExerciseFailed"):
                continue
            if out.get("ename") == "NotImplementedError" and str(out.get("evalue", "")).startswith("练习 "):
                continue  # the student version's stub, left as handed out
            if out.get("ename") == "KeyboardInterrupt":  # nbclient interrupts a cell at its time limit
                found.append(f"cell {n}: 超时被中断 (interrupted at the cell time limit)")
            else:
                found.append(f"cell {n}: {out.get('ename')}: {out.get('evalue')}")
    if not found:
        return ""
    first = " ".join(found[0].split())[:159]
    return first + (f" (+{len(found) - 1} 个单元格出错 / more cell errors)" if len(found) > 1 else "")


class _Stop(Exception):
    """The kernel is gone or unresponsive: no more cells, no more probes."""


async def _run_notebook(nb, cwd: Path, env: dict[str, str], job: dict, spec_base: dict, probe_dir: Path,
                        kernel_name: str) -> dict[str, Any]:
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError
    from nbformat import NotebookNode

    from .probe import injected_source
    from ..runner import KERNEL_ARGS

    ids = spec_base["ids"]
    outcome: dict[str, Any] = {"error": "", "probes": {}}
    client = NotebookClient(nb, timeout=job["cell_timeout_s"], allow_errors=True, interrupt_on_timeout=True,
                            kernel_name=kernel_name, shutdown_kernel="immediate", extra_arguments=KERNEL_ARGS,
                            resources={"metadata": {"path": str(cwd)}})
    probes = 0

    async def execute(cell, index: int, limit: float, history: bool = True) -> None:
        client.timeout = max(1, math.ceil(limit))
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(client.async_execute_cell(cell, index, store_history=history), limit + GRACE_S)
        except asyncio.TimeoutError:
            raise _Stop(f"超时 (timeout)：单元格超过 {limit:.0f} s 且不响应中断，kernel 已中止") from None
        except DeadKernelError as exc:
            if time.monotonic() - t0 >= limit:  # died after its interrupt at the time limit was ignored
                raise _Stop(f"超时 (timeout)：单元格超过 {limit:.0f} s 且不响应中断，kernel 已中止") from None
            raise _Stop(f"kernel 崩溃 (DeadKernelError): {exc}"[:160]) from None

    async def probe(which: list[str]) -> None:
        nonlocal probes
        probes += 1
        out = probe_dir / f"p{probes}"
        spec = {**spec_base, "ids": which, "out": str(out)}
        cell = NotebookNode(cell_type="code", source=injected_source(str(Path(__file__).parent), spec),
                            metadata={}, outputs=[], execution_count=None)
        nb.cells.append(cell)  # nbclient stores the executed cell back at its index; taken out again below
        stopped = ""
        try:
            await execute(cell, len(nb.cells) - 1, job["probe_timeout_s"], history=False)
        except _Stop as stop:
            stopped = str(stop)
            raise
        finally:
            nb.cells.remove(cell)
            found = _read_probe(out, which)
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            ename = errors[0].get("ename", "") if errors else ""
            if errors:
                outcome.setdefault("probe_errors", []).append(f"{ename}: {errors[0].get('evalue')}"[:200])
            for i in which:  # the probe stopped before this one
                if ename == "KeyboardInterrupt" or stopped.startswith("超时"):   # its answer ran past the limit
                    found.setdefault(i, {"timeout": True})
                elif "崩溃" in stopped:   # the answer, re-run, killed its kernel
                    found.setdefault(i, {"crash": "重新运行答案时 kernel 崩溃"})
                else:
                    found.setdefault(i, {"error": f"评分代码没有运行完 (probe stopped): {ename or stopped or '?'}"[:160]})
            outcome["probes"].update(found)

    try:
        async with client.async_setup_kernel(cwd=str(cwd), env=env, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL):
            deadline = time.monotonic() + job["timeout_s"]   # from the kernel's start: a busy machine's
            try:                                              # slow start-up is not the student's time
                for index, cell in enumerate(nb.cells):
                    if cell.cell_type != "code":
                        continue
                    left = deadline - time.monotonic()
                    if left > 0:
                        await execute(cell, index, min(job["cell_timeout_s"], left))
                    if time.monotonic() >= deadline:
                        outcome["error"] = f"超时 (timeout): 超过 {job['timeout_s']:g} s，后面的单元格没有运行"
                        break
                    checked = [m["id"] for m in CHECK_CALL.finditer(cell.source) if m["id"] in ids]
                    if checked:
                        await probe(sorted(set(checked)))
                rest = [i for i in ids if i not in outcome["probes"]]
                if rest:  # checks made by code the pattern did not see, and the ids never checked
                    await probe(rest)
            except _Stop as stop:
                outcome["error"] = str(stop)
    except DeadKernelError as exc:
        outcome["error"] = outcome["error"] or f"kernel 崩溃 (DeadKernelError): {exc}"[:160]
    except Exception as exc:  # a kernel that would not start, ...
        outcome["error"] = outcome["error"] or f"{type(exc).__name__}: {exc}"[:160]
    return outcome


def run_job(job: dict) -> dict[str, Any]:
    import nbformat

    namespaces = bool(job.get("namespaces"))
    job_dir = Path(job["job_dir"])
    notes: list[str] = []
    sandbox.become_subreaper()
    # what this student may read is copied out before the sandbox hides the rest of the machine
    src_fd = os.open(job_dir, os.O_RDONLY | os.O_DIRECTORY)
    data_fd = os.open(job["shared_data"], os.O_RDONLY | os.O_DIRECTORY) if job.get("shared_data") else None
    mpl = Path(os.environ.get("MPLCONFIGDIR") or Path.home() / ".cache" / "matplotlib")
    mpl_cache = None
    if mpl.is_dir():  # read before the sandbox hides /tmp (a copy in memory: a font list, ~100 KB)
        mpl_cache = {p.name: p.read_bytes() for p in mpl.glob("*.json") if p.is_file()}
    if namespaces:
        notes += sandbox.apply_plan(job["plan"])
    work = job_dir / "work"          # the same path as outside, now on the sandbox's own tmpfs
    files, runs = work / "files", work / "runs" / "course"
    if not files.exists():
        shutil.copytree(f"/proc/self/fd/{src_fd}/files", files, symlinks=True)
    runs.mkdir(parents=True, exist_ok=True)
    if data_fd is not None and not (runs / "data").exists():
        shutil.copytree(f"/proc/self/fd/{data_fd}", runs / "data", symlinks=True)
    os.close(src_fd)
    if data_fd is not None:
        os.close(data_fd)
    kernel = _kernelspec(work, job.get("kernel_name", "python3"), job.get("memory_bytes", 0), namespaces)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNCLIP_")}
    env.update({"CNCLIP_QUICK": "1", "CNCLIP_GRADING": "1", "JUPYTER_PATH": str(work / "jupyter"),
                "JUPYTER_RUNTIME_DIR": str(work / "runtime"), "TMPDIR": str(work / "tmp"),
                "IPYTHONDIR": str(work / "ipython"), "MPLCONFIGDIR": str(work / "matplotlib"),
                "PYTHONNOUSERSITE": "1"})   # no user site-packages: nothing a kernel planted there runs later
    (work / "tmp").mkdir(exist_ok=True)
    (work / "matplotlib").mkdir(exist_ok=True)
    for name, data in (mpl_cache or {}).items():   # the font list: not rebuilt by every kernel
        (work / "matplotlib" / name).write_bytes(data)
    os.environ["JUPYTER_PATH"] = env["JUPYTER_PATH"]
    os.environ["JUPYTER_RUNTIME_DIR"] = env["JUPYTER_RUNTIME_DIR"]
    results = []
    for item in job["notebooks"]:
        t0 = time.perf_counter()
        nb = nbformat.reads(item["source"], as_version=4)
        cwd = files / item.get("folder", "")
        cwd.mkdir(parents=True, exist_ok=True)
        spec = {"ids": item["ids"], "seeds": job["seeds"], "case_timeout_s": job["case_timeout_s"]}
        outcome = asyncio.run(_run_notebook(nb, cwd, env, job, spec, work / "probe" / item["name"], kernel))
        sandbox.kill_descendants()
        outcome.update(name=item["name"], wall_s=round(time.perf_counter() - t0, 2), cell_errors=cell_errors(nb))
        outcome["executed"] = nbformat.writes(nb) if job.get("keep_executed") else None
        results.append(outcome)
    return {"notebooks": results, "sandbox_problems": notes}


def main() -> int:
    answer = os.fdopen(os.dup(1), "w", encoding="utf-8")   # not inherited: os.dup makes it non-inheritable
    job = json.loads(sys.stdin.read())
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    try:
        result = run_job(job)
    except Exception as exc:  # reported to the grader, which names it in the student's row
        import traceback

        result = {"fatal": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
    finally:
        sandbox.kill_descendants()
    answer.write(json.dumps(result, ensure_ascii=False))
    answer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
