"""Grade handed-in notebooks: run each student's notebooks, count the checks that passed, write a CSV.

    cnclip-edu grade SUBMISSIONS/ --out grades.csv

SUBMISSIONS/ holds one folder per student, named after the student, with that student's notebooks
(the course's file names, e.g. `张三/02_vision_tower.ipynb`; a file that starts with the notebook's
number, `02_…`, is accepted when it is the only one). Every notebook of the course that has
exercises is run with nbclient in a fresh kernel, errors allowed, under:

- `CNCLIP_QUICK=1` and the teacher's own parameters cell (a student's edits to it are replaced), so
  every student runs the same small configuration;
- `CNCLIP_GRADING=1`: `check()` refuses the library's reference passed in place of an answer;
- `CNCLIP_EXERCISE_LOG=<file>`: `check()` appends one line per check, so the grade is what the
  checks themselves reported, and a check that ran before a crash still counts;
- a fresh work folder per student (the toy data is built once and copied in), a time limit per cell
  (the cell is interrupted, the notebook goes on) and per notebook (the kernel is killed).

A notebook that is missing, crashes or runs out of time costs only the exercises it had not passed
yet; the reason goes into the `errors` column and the other notebooks and students are graded as
usual. Students are graded one after another: a course notebook already keeps two CPU cores busy
(notebook 06 trains with two processes), so running students side by side on a small machine would
only make each run slower and the time limits unfair.

The CSV (UTF-8 with a byte-order mark, so that Excel shows the Chinese names) has one row per
student: `student`, one column per exercise id (points earned), `total`, `max`, `errors`.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..cli import InRange
from ..fileio import atomic_write, make_temp_dir
from .runner import KERNEL_ARGS, REPO_NOTEBOOKS, find_notebooks

DEFAULT_TIMEOUT_S = 900        # per notebook: the longest course notebook takes ~1 min with CNCLIP_QUICK=1
DEFAULT_CELL_TIMEOUT_S = 600
ERROR_CHARS = 160              # an error in the CSV is cut to this many characters


@dataclass
class NotebookOutcome:
    notebook: str                                   # the course notebook's file name
    passed: set[str] = field(default_factory=set)   # ids whose check passed
    error: str = ""                                 # "" or a short reason (missing, timeout, crash, cell error)
    wall_s: float = 0.0


@dataclass
class StudentGrade:
    student: str
    notebooks: list[NotebookOutcome]

    @property
    def passed(self) -> set[str]:
        return set().union(*(o.passed for o in self.notebooks)) if self.notebooks else set()

    @property
    def errors(self) -> str:
        return "; ".join(f"{o.notebook}: {o.error}" for o in self.notebooks if o.error)


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def _exercise_points(notebooks: list[Path]) -> dict[str, int]:
    """id -> points for every registered exercise of these notebooks (id "02.1" belongs to "02_…")."""
    from .exercises import all_ids, get

    prefixes = {p.name[:2] for p in notebooks}
    return {i: get(i).points for i in all_ids() if i.split(".")[0] in prefixes}


def find_submission(folder: Path, notebook: str) -> tuple[Path | None, str]:
    """The student's copy of course notebook `notebook` in `folder`: (path, "") or (None, why not)."""
    exact = folder / notebook
    if exact.is_file():
        return exact, ""
    hits = sorted(p for p in folder.glob(f"{notebook[:2]}*.ipynb") if p.is_file())
    if len(hits) == 1:
        return hits[0], ""
    if hits:
        return None, _short(f"多个文件都像这个 notebook (ambiguous): {', '.join(p.name for p in hits)}")
    return None, "没有交 (missing)"


def _prepare(student_nb, teacher_nb, work_dir: Path):
    """The student's notebook with the teacher's parameters cell and `work_dir` injected after it."""
    from nbformat.v4 import new_code_cell

    def params_index(nb) -> int | None:
        return next((i for i, c in enumerate(nb.cells)
                     if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])), None)

    i, t = params_index(student_nb), params_index(teacher_nb) if teacher_nb is not None else None
    if i is not None and t is not None:
        student_nb.cells[i].source = teacher_nb.cells[t].source
    injected = new_code_cell(f"work_dir = {str(work_dir)!r}  # injected by cnclip-edu grade")
    injected.metadata["tags"] = ["injected-parameters"]
    student_nb.cells.insert(0 if i is None else i + 1, injected)
    return student_nb


def _cell_errors(nb) -> str:
    """The first error of a cell other than an exercise's own (a check's verdict, an unanswered stub:
    those show in the points) and how many more, numbered as in the student's notebook (the injected
    cell not counted)."""
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
    return _short(found[0]) + (f" (+{len(found) - 1} 个单元格出错 / more cell errors)" if len(found) > 1 else "")


def _descendants(pid: int) -> list[int]:
    """Every process started under `pid`, also in sessions of their own (torchrun's, notebook 06)."""
    try:
        import psutil

        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except ImportError:
        pass
    except Exception:  # gone already
        return []
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):  # Linux without psutil
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill(client) -> None:
    km = getattr(client, "km", None)
    try:
        if km is not None and km.has_kernel:
            km.shutdown_kernel(now=True)
    except Exception:  # already gone
        pass


def run_notebook(nb, cwd: Path, env: dict[str, str], timeout_s: float, cell_timeout_s: float,
                 kernel_name: str, log: Path | None = None) -> tuple[str, int | None]:
    """Execute `nb` in place (errors allowed) -> ('' or why it stopped early, the size of `log` when the
    time ran out, else None). Neither the kernel nor anything it started outlives the time limit."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    client = NotebookClient(nb, timeout=cell_timeout_s, allow_errors=True, interrupt_on_timeout=True,
                            kernel_name=kernel_name, shutdown_kernel="immediate", extra_arguments=KERNEL_ARGS)
    log_at_deadline = None

    async def execute() -> bool:
        """True if the notebook finished in time; else its kernel and the kernel's children are killed."""
        nonlocal log_at_deadline
        task = asyncio.ensure_future(client.async_execute(cwd=str(cwd), env=env))
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if task in done:
            task.result()  # raises what the run raised
            return True
        log_at_deadline = log.stat().st_size if log is not None and log.exists() else 0
        kernel_pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
        orphans = _descendants(kernel_pid) if kernel_pid else []
        task.cancel()  # nbclient shuts the kernel down (its process group)
        await asyncio.gather(task, return_exceptions=True)  # a cancelled run may end with DeadKernelError
        for pid in orphans:  # what left the kernel's process group (start_new_session=True)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return False

    try:
        return ("", None) if asyncio.run(execute()) else (f"超时 (timeout): 超过 {timeout_s:g} s，已中止", log_at_deadline)
    except DeadKernelError as exc:
        return _short(f"kernel 崩溃 (DeadKernelError): {exc}"), None
    except Exception as exc:  # a broken notebook file, a kernel that would not start, ...
        return _short(f"{type(exc).__name__}: {exc}"), None
    finally:
        _kill(client)


def _read_log(path: Path, upto: int | None = None) -> set[str]:
    """Ids of the checks that passed, from the first `upto` bytes of the log (all if None)."""
    passed = set()
    if path.exists():
        data = path.read_bytes()[:upto]
        for line in data.decode("utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and row.get("passed") is True:
                passed.add(str(row.get("id")))
    return passed


def grade_student(folder: Path, course: list[Path], scratch: Path, shared_data: Path | None = None,
                  timeout_s: float = DEFAULT_TIMEOUT_S, cell_timeout_s: float = DEFAULT_CELL_TIMEOUT_S,
                  kernel_name: str = "python3", executed_dir: Path | None = None) -> StudentGrade:
    """Run one student's notebooks (those of `course`) in a fresh work folder under `scratch`."""
    import nbformat

    root = make_temp_dir(scratch / "student")  # removed below, whatever happens
    work, nb_dir = root / "runs" / "course", root / "notebooks"
    nb_dir.mkdir(parents=True)
    work.mkdir(parents=True)
    if shared_data is not None:
        shutil.copytree(shared_data, work / "data")
    outcomes = []
    try:
        for teacher_path in course:
            outcome = NotebookOutcome(teacher_path.name)
            outcomes.append(outcome)
            path, why = find_submission(folder, teacher_path.name)
            if path is None:
                outcome.error = why
                continue
            log = root / f"{teacher_path.stem}.checks.jsonl"
            env = {**os.environ, "CNCLIP_QUICK": "1", "CNCLIP_GRADING": "1", "CNCLIP_EXERCISE_LOG": str(log)}
            t0 = time.perf_counter()
            try:
                nb = _prepare(nbformat.read(str(path), as_version=4),
                              nbformat.read(str(teacher_path), as_version=4), work)
            except Exception as exc:  # not a notebook
                outcome.error = _short(f"无法读取 (unreadable): {type(exc).__name__}: {exc}")
                continue
            stopped, upto = run_notebook(nb, nb_dir, env, timeout_s, cell_timeout_s, kernel_name, log)
            outcome.error = stopped or _cell_errors(nb)
            outcome.wall_s = time.perf_counter() - t0
            outcome.passed = _read_log(log, upto)  # a timed-out notebook: what had passed by its deadline
            if executed_dir is not None:
                (executed_dir / folder.name).mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, str(executed_dir / folder.name / teacher_path.name))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return StudentGrade(folder.name, outcomes)


def _write_csv(path: Path, grades: list[StudentGrade], points: dict[str, int]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    ids = list(points)
    writer.writerow(["student", *ids, "total", "max", "errors"])
    for g in grades:
        earned = [points[i] if i in g.passed else 0 for i in ids]
        writer.writerow([g.student, *earned, sum(earned), sum(points.values()), g.errors])
    atomic_write(path, buf.getvalue(), encoding="utf-8-sig")


def _prepare_shared_data(scratch: Path) -> Path:
    """The toy world, built once and copied into every student's work folder."""
    from ..data.toy import ensure_toy_data

    shared = scratch / "shared"
    ensure_toy_data(shared)
    return shared / "data"


def grade(submissions: str | os.PathLike, out_csv: str | os.PathLike, notebooks_dir: str | os.PathLike = REPO_NOTEBOOKS,
          select: list[str] | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
          cell_timeout_s: float = DEFAULT_CELL_TIMEOUT_S, kernel_name: str = "python3",
          shared_data: bool = True, executed_dir: str | os.PathLike | None = None,
          progress: bool = True) -> list[StudentGrade]:
    """Grade every student folder of `submissions`; write `out_csv`; return the grades."""
    subs = Path(submissions)
    if not subs.is_dir():
        raise FileNotFoundError(f"cnclip-edu grade: {subs} is not a folder (one sub-folder per student)")
    students = sorted(p for p in subs.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not students:
        raise FileNotFoundError(f"cnclip-edu grade: {subs} has no student folders")
    all_course = find_notebooks(Path(notebooks_dir), select)
    points = _exercise_points(all_course)
    course = [nb for nb in all_course if any(i.startswith(nb.name[:2] + ".") for i in points)]
    if not course:
        raise ValueError(f"cnclip-edu grade: no registered exercises for the notebooks of {notebooks_dir}")
    grades = []
    with tempfile.TemporaryDirectory(prefix="cnclip-grade-") as tmp:
        scratch = Path(tmp)
        data = _prepare_shared_data(scratch) if shared_data else None
        for n, folder in enumerate(students, 1):
            g = grade_student(folder, course, scratch, data, timeout_s, cell_timeout_s, kernel_name,
                              Path(executed_dir) if executed_dir else None)
            grades.append(g)
            _write_csv(Path(out_csv), grades, points)  # rewritten after each student: progress survives a stop
            if progress:
                got = sum(points[i] for i in g.passed if i in points)
                wall = sum(o.wall_s for o in g.notebooks)
                print(f"[{n}/{len(students)}] {g.student}: {got}/{sum(points.values())} ({wall:.0f} s)"
                      + (f"  {g.errors}" if g.errors else ""), flush=True)
    return grades


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cnclip-edu grade", description=__doc__.split("\n\n")[0])
    ap.add_argument("submissions", help="folder with one sub-folder per student, holding that student's notebooks")
    ap.add_argument("--out", required=True, help="the CSV to write (one row per student)")
    ap.add_argument("--notebooks", nargs="*", help="grade only these notebooks (prefix like 02); default: all with exercises")
    ap.add_argument("--notebooks-dir", default=str(REPO_NOTEBOOKS), help="the teacher's notebooks (names, parameters)")
    ap.add_argument("--timeout", type=float, action=InRange, lo=0, lo_open=True, default=DEFAULT_TIMEOUT_S,
                    help="seconds per notebook before its kernel is killed")
    ap.add_argument("--cell-timeout", type=float, action=InRange, lo=0, lo_open=True, default=DEFAULT_CELL_TIMEOUT_S,
                    help="seconds per cell before it is interrupted (the notebook goes on)")
    ap.add_argument("--kernel", default="python3", help="Jupyter kernel for every notebook (default: this Python)")
    ap.add_argument("--executed-dir", default=None, help="also keep the executed notebooks here, DIR/<student>/<notebook>")
    ap.add_argument("--no-shared-data", action="store_true",
                    help="do not build the toy data up front (each notebook then builds what it needs)")
    args = ap.parse_args(argv)
    try:
        grades = grade(args.submissions, args.out, args.notebooks_dir, args.notebooks, args.timeout,
                       args.cell_timeout, args.kernel, not args.no_shared_data, args.executed_dir)
    except (FileNotFoundError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{len(grades)} students graded -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
