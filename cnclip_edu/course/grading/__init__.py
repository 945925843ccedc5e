"""Grade handed-in notebooks so that a teacher can trust the grades: `cnclip-edu grade SUBMISSIONS/ --out grades.csv`.

SUBMISSIONS/ holds one folder per student, named after the student, with that student's notebooks
(the course's file names, e.g. `张三/02_vision_tower.ipynb`; a file that starts with the notebook's
number, `02_…`, is accepted when it is the only one). What happens, in order:

1. every student folder and the teacher's notebooks are read into memory (submissions.py) before
   any student code runs; symbolic links are refused and named; every folder gets a CSV row;
2. students are graded side by side (`--jobs`, default: half the cores), each by a worker process
   of its own (worker.py) in a sandbox (sandbox.py): a private copy in a fresh temp folder,
   namespaces where Linux allows them, a memory cap per kernel, every leftover process killed;
3. each notebook runs in a fresh kernel under `CNCLIP_QUICK=1` with the teacher's parameters cell;
   after each check cell the grader injects its probe (probe.py): the recorded answer is re-run on
   the public cases and on hidden ones drawn from a per-student seed, with the library routines
   the exercise builds turned into tripwires (tripwires.py); only plain data comes back
   (protocol.py);
4. the grader judges in its own process (verdict.py): reference results computed here, compared
   here; nothing the kernel says about itself counts;
5. the CSV, one Markdown feedback file per student and a pass-rate summary (report.py) are written
   by the grader alone, after all the students' processes are gone.

See the README's "Grading and its threat model" for what this resists and what it does not.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ...cli import InRange
from ..runner import REPO_NOTEBOOKS, find_notebooks
from . import report, sandbox, submissions, verdict
from .report import StudentGrade
from .submissions import Submission, find_submission, read_submissions
from .verdict import ExerciseResult
from .worker import CHECK_CALL

DEFAULT_TIMEOUT_S = 900        # per notebook: the longest course notebook takes ~1 min with CNCLIP_QUICK=1
DEFAULT_CELL_TIMEOUT_S = 600
DEFAULT_PROBE_TIMEOUT_S = 300  # one probe (an exercise's public + hidden cases)
DEFAULT_CASE_TIMEOUT_S = 60    # one case of one answer
DEFAULT_MEMORY = "8G"          # per kernel (address space: importing torch alone maps ~3 GB)

__all__ = ["grade", "main", "StudentGrade", "ExerciseResult", "find_submission", "read_submissions"]


def parse_size(text: str) -> int:
    """'8G', '512M', '0' (no limit) -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)[bB]?\s*", str(text))
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 8G, 512M, 0 for none)")
    scale = {"": 1, "k": 2 ** 10, "m": 2 ** 20, "g": 2 ** 30, "t": 2 ** 40}[m[2].lower()]
    return int(float(m[1]) * scale)


def _exercise_points(notebooks: list[Path]) -> dict[str, int]:
    """id -> points for every registered exercise of these notebooks (id "02.1" belongs to "02_…")."""
    from ..exercises import all_ids, get

    prefixes = {p.name[:2] for p in notebooks}
    return {i: get(i).points for i in all_ids() if i.split(".")[0] in prefixes}


def _prepare(student_nb, teacher_nb, work_dir: str):
    """The student's notebook with the teacher's parameters cell and `work_dir` injected after it."""
    from nbformat.v4 import new_code_cell

    def params_index(nb) -> int | None:
        return next((i for i, c in enumerate(nb.cells)
                     if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])), None)

    i, t = params_index(student_nb), params_index(teacher_nb) if teacher_nb is not None else None
    if i is not None and t is not None:
        student_nb.cells[i].source = teacher_nb.cells[t].source
    injected = new_code_cell(f"work_dir = {work_dir!r}  # injected by cnclip-edu grade")
    injected.metadata["tags"] = ["injected-parameters"]
    student_nb.cells.insert(0 if i is None else i + 1, injected)
    return student_nb


def _checked_ids(nb) -> set[str]:
    return {m["id"] for c in nb.cells if c.cell_type == "code" for m in CHECK_CALL.finditer(c.source)}


class _Grader:
    """Grades one student at a time per thread; everything shared is read-only after __init__."""

    def __init__(self, course: list[Path], teacher: dict[str, bytes], points: dict[str, int], scratch: Path,
                 shared_data: Path | None, options: dict):
        import nbformat

        self.course, self.points, self.scratch, self.shared_data, self.o = course, points, scratch, shared_data, options
        self.teacher = {name: nbformat.reads(data.decode("utf-8"), as_version=4) for name, data in teacher.items()}
        self.ids_of = {nb.name: [i for i in points if i.startswith(nb.name[:2] + ".")] for nb in course}
        self.counter = 0
        self.lock = threading.Lock()
        self.problems: list[str] = []   # what the sandbox could not set up (printed once each)

    def _job_dir(self) -> Path:
        with self.lock:
            self.counter += 1
            k = self.counter
        path = self.scratch / "jobs" / f"{k:04d}"
        path.mkdir(parents=True, mode=0o700)
        return path

    def grade(self, sub: Submission) -> StudentGrade:
        import nbformat

        t0 = time.perf_counter()
        g = StudentGrade(sub.student)
        course_files = {p.name for p in self.course}   # a refused notebook is named with its notebook's error
        g.folder_errors += [f"已拒绝 (refused): {r}" for r in sub.refused if r.split(" (")[0] not in course_files]
        if sub.error:
            g.folder_errors.insert(0, sub.error)
        job_dir = self._job_dir()
        work = job_dir / "work" / "runs" / "course"
        items, checked = [], {}
        for teacher_path in self.course:
            name, ids = teacher_path.name, self.ids_of[teacher_path.name]
            rel, why = (None, "") if sub.error else find_submission(sub.files, sub.refused, name)
            if sub.error:
                why = "没有交 (missing)"
            nb = None
            if rel is not None:
                try:
                    nb = nbformat.reads(sub.files[rel].decode("utf-8"), as_version=4)
                except Exception as exc:  # noqa: BLE001 - not a notebook
                    why = f"无法读取 (unreadable): {type(exc).__name__}: {exc}"[:160]
            if nb is None:
                if not why.startswith(name):
                    why = f"{name}: {why}"
                g.notebook_errors.append(why)
                for i in ids:
                    g.results[i] = ExerciseResult(i, 0, self.points[i], "missing", why)
                continue
            checked[name] = _checked_ids(nb)
            nb = _prepare(nb, self.teacher[name], str(work))
            items.append({"name": name, "source": nbformat.writes(nb), "ids": ids,
                          "folder": str(Path(rel).parent) if "/" in rel else ""})
        if items:
            outcomes, fatal = self._run_worker(sub, job_dir, items)
            if fatal:
                g.notebook_errors.append(f"评分进程出错 (worker failed): {fatal}"[:200])
            for item in items:
                name = item["name"]
                out = outcomes.get(name, {"error": fatal or "没有结果 (no result)", "probes": {}})
                error = out.get("error") or ""
                g.notebook_errors += [f"{name}: {e}" for e in (error, out.get("cell_errors")) if e]
                for i in item["ids"]:
                    seed = verdict.student_seed(self.o["secret"], sub.student, i)
                    g.results[i] = verdict.judge(i, out.get("probes", {}).get(i), seed, i in checked[name], error)
                if out.get("executed") and self.o.get("executed_dir"):
                    folder = Path(self.o["executed_dir"]) / report.feedback_name(sub.student)[:-3]
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / name).write_text(out["executed"], encoding="utf-8")
        shutil.rmtree(job_dir, ignore_errors=True)
        order = {nb.name: k for k, nb in enumerate(self.course)}
        g.notebook_errors.sort(key=lambda e: order.get(e.split(":")[0], len(order)))  # course order, stable
        g.results = {i: g.results[i] for i in self.points if i in g.results}
        g.wall_s = time.perf_counter() - t0
        return g

    def _run_worker(self, sub: Submission, job_dir: Path, items: list[dict]) -> tuple[dict[str, dict], str]:
        files = job_dir / "files"
        for rel, data in sub.files.items():
            target = files / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        files.mkdir(exist_ok=True)
        o = self.o
        job = {"job_dir": str(job_dir), "shared_data": str(self.shared_data) if self.shared_data else None,
               "notebooks": items, "namespaces": o["namespaces"], "plan": o["plan"],
               "seeds": {i: verdict.student_seed(o["secret"], sub.student, i) for it in items for i in it["ids"]},
               "timeout_s": o["timeout_s"], "cell_timeout_s": o["cell_timeout_s"],
               "probe_timeout_s": o["probe_timeout_s"], "case_timeout_s": o["case_timeout_s"],
               "memory_bytes": o["memory_bytes"], "kernel_name": o["kernel_name"],
               "keep_executed": bool(o.get("executed_dir"))}
        budget = sum(o["timeout_s"] + o["probe_timeout_s"] * (2 + len(it["ids"])) + 60 for it in items) + 60
        log = open(job_dir / "worker.log", "wb")
        proc = subprocess.Popen(sandbox.worker_command(o["namespaces"]), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=log, start_new_session=True, cwd=str(job_dir))
        try:
            out, _ = proc.communicate(json.dumps(job).encode(), timeout=budget)
        except subprocess.TimeoutExpired:
            self._kill(proc)
            out, _ = proc.communicate()
            return {}, f"超时 (timeout)：整个学生超过 {budget:.0f} s，已中止"
        finally:
            self._kill(proc)
            log.close()
        try:
            result = json.loads(out.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            tail = (job_dir / "worker.log").read_bytes()[-300:].decode("utf-8", "replace")
            return {}, f"rc {proc.returncode}: {' '.join(tail.split())[-160:]}"
        if "fatal" in result:
            return {}, str(result["fatal"])
        for problem in result.get("sandbox_problems", []):
            with self.lock:
                if problem not in self.problems:
                    self.problems.append(problem)
                    print(f"沙箱问题 (sandbox problem): {problem}", file=sys.stderr, flush=True)
        return {nb["name"]: nb for nb in result.get("notebooks", [])}, ""

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        """The worker and everything under it (with namespaces its PID namespace dies with it)."""
        for pid in sandbox.descendants(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass


def _prepare_shared_data(scratch: Path) -> Path:
    """The toy world, built once and copied into every student's work folder."""
    from ...data.toy import ensure_toy_data

    shared = scratch / "shared"
    ensure_toy_data(shared)
    return shared / "data"


def _eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60} 分 {seconds % 60:02d} 秒" if seconds >= 60 else f"{seconds} 秒"


def grade(submissions_dir: str | os.PathLike, out_csv: str | os.PathLike,
          notebooks_dir: str | os.PathLike = REPO_NOTEBOOKS, select: list[str] | None = None,
          timeout_s: float = DEFAULT_TIMEOUT_S, cell_timeout_s: float = DEFAULT_CELL_TIMEOUT_S,
          kernel_name: str = "python3", shared_data: bool = True, executed_dir: str | os.PathLike | None = None,
          progress: bool = True, jobs: int | None = None, memory_limit: str | int = DEFAULT_MEMORY,
          feedback_dir: str | os.PathLike | None = None, seed: int | None = None,
          probe_timeout_s: float = DEFAULT_PROBE_TIMEOUT_S, case_timeout_s: float = DEFAULT_CASE_TIMEOUT_S,
          isolation: str = "auto") -> list[StudentGrade]:
    """Grade every student folder of `submissions_dir`; write the CSV, the feedback files and the summary
    (next to the CSV unless `feedback_dir`); return the grades sorted by student."""
    subs = Path(submissions_dir).resolve()
    if not subs.is_dir():
        raise FileNotFoundError(f"cnclip-edu grade: {subs} is not a folder (one sub-folder per student)")
    all_course = find_notebooks(Path(notebooks_dir), select)
    points = _exercise_points(all_course)
    course = [nb for nb in all_course if any(i.startswith(nb.name[:2] + ".") for i in points)]
    if not course:
        raise ValueError(f"cnclip-edu grade: no registered exercises for the notebooks of {notebooks_dir}")
    # 1. everything the students could later touch is read now
    teacher = submissions.read_teacher(course)
    students, skipped = read_submissions(subs)
    if not students:
        raise FileNotFoundError(f"cnclip-edu grade: {subs} has no student folders")
    out_csv = Path(out_csv).resolve()
    feedback = Path(feedback_dir).resolve() if feedback_dir else out_csv.with_name(out_csv.stem + "_feedback")
    for folder in (out_csv.parent, feedback, *( [Path(executed_dir).resolve()] if executed_dir else [])):
        folder.mkdir(parents=True, exist_ok=True)
    isolation = os.environ.get("CNCLIP_GRADE_ISOLATION", isolation)   # e.g. to try the fallback on a host with namespaces
    if isolation == "auto":
        namespaces, how = sandbox.probe()
    elif isolation == "namespaces":
        namespaces, how = sandbox.probe()
        if not namespaces:
            raise RuntimeError(f"cnclip-edu grade: --isolation namespaces: {how}")
    else:
        namespaces, how = False, "没有用命名空间 (--isolation none)：学生之间只靠子进程收割和内存上限隔开"
    jobs = max(1, int(jobs if jobs else (os.cpu_count() or 2) // 2))
    if progress:
        print(f"{len(students)} 个学生，{len(course)} 个 notebook，{len(points)} 道练习；并行 {jobs} 个；隔离：{how}", flush=True)
        for s in skipped:
            print(f"跳过 (skipped): {s}", flush=True)
    grades: list[StudentGrade] = []
    with tempfile.TemporaryDirectory(prefix="cnclip-grade-") as tmp:
        scratch = Path(tmp).resolve()
        os.chmod(scratch, 0o700)
        data = _prepare_shared_data(scratch) if shared_data else None
        protect = [subs, Path(notebooks_dir).resolve(), out_csv.parent, feedback]
        protect += [Path(executed_dir).resolve()] if executed_dir else []
        options = {"namespaces": namespaces, "plan": sandbox.plan(protect, scratch) if namespaces else None,
                   "timeout_s": timeout_s, "cell_timeout_s": cell_timeout_s, "probe_timeout_s": probe_timeout_s,
                   "case_timeout_s": case_timeout_s, "memory_bytes": parse_size(memory_limit),
                   "kernel_name": kernel_name, "executed_dir": str(Path(executed_dir).resolve()) if executed_dir else None,
                   "secret": seed if seed is not None else secrets.randbits(62)}
        grader = _Grader(course, teacher, points, scratch, data, options)
        t0, done_lock = time.perf_counter(), threading.Lock()

        def one(sub: Submission) -> StudentGrade:
            g = grader.grade(sub)
            with done_lock:
                grades.append(g)
                if progress:
                    n = len(grades)
                    left = (time.perf_counter() - t0) / n * (len(students) - n)
                    bar = "█" * round(20 * n / len(students))
                    print(f"[{bar:<20}] {n}/{len(students)} {g.student}: {g.total}/{g.max_points} "
                          f"({g.wall_s:.0f} s) · 还剩约 {_eta(left)} (ETA)" + (f"  {g.errors}"[:200] if g.errors else ""),
                          flush=True)
            return g

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, students))
    # 5. written by the grader alone, every student's processes gone
    grades.sort(key=lambda g: g.student)
    ids = list(points)
    report.write_csv(out_csv, grades, ids, points)
    from ..exercises import get

    hints = {i: get(i).hint for i in ids}
    titles = {i: get(i).title for i in ids}
    for g in grades:
        (feedback / report.feedback_name(g.student)).write_text(report.feedback_markdown(g, hints, titles), encoding="utf-8")
    summary = report.summary_markdown(grades, ids, titles, how)
    (feedback / "_summary.md").write_text(summary, encoding="utf-8")
    if progress:
        print(summary)
    return grades


def main(argv: list[str] | None = None) -> int:
    from ...cli import require

    for package in ("nbformat", "nbclient", "ipykernel"):  # one line naming the extra, before anything runs
        require(package, "cnclip-edu grade")
    ap = argparse.ArgumentParser(prog="cnclip-edu grade", description=__doc__.split("\n\n")[0])
    ap.add_argument("submissions", help="folder with one sub-folder per student, holding that student's notebooks")
    ap.add_argument("--out", required=True, help="the CSV to write (one row per student)")
    ap.add_argument("--notebooks", nargs="*", help="grade only these notebooks (prefix like 02); default: all with exercises")
    ap.add_argument("--notebooks-dir", default=str(REPO_NOTEBOOKS), help="the teacher's notebooks (names, parameters)")
    ap.add_argument("--jobs", type=int, action=InRange, lo=1, default=None,
                    help="students graded side by side (default: half the CPU cores, at least 1)")
    ap.add_argument("--timeout", type=float, action=InRange, lo=0, lo_open=True, default=DEFAULT_TIMEOUT_S,
                    help="seconds per notebook; then its remaining cells are skipped (or its kernel killed)")
    ap.add_argument("--cell-timeout", type=float, action=InRange, lo=0, lo_open=True, default=DEFAULT_CELL_TIMEOUT_S,
                    help="seconds per cell before it is interrupted (the notebook goes on)")
    ap.add_argument("--probe-timeout", type=float, action=InRange, lo=0, lo_open=True, default=DEFAULT_PROBE_TIMEOUT_S,
                    help="seconds for the grader's re-run of the answers after one check cell")
    ap.add_argument("--case-timeout", type=float, action=InRange, lo=0, lo_open=True, default=DEFAULT_CASE_TIMEOUT_S,
                    help="seconds for one answer on one case")
    ap.add_argument("--memory-limit", default=DEFAULT_MEMORY,
                    help="address space per kernel, e.g. 8G (0: none); an allocation beyond it is a MemoryError")
    ap.add_argument("--isolation", choices=["auto", "namespaces", "none"], default="auto",
                    help="auto: Linux namespaces where they work (else say so and go on without); namespaces: require them")
    ap.add_argument("--seed", type=int, default=None, action=InRange, lo=0, help="secret that draws the hidden cases (default: random per run)")
    ap.add_argument("--feedback-dir", default=None, help="per-student feedback files (default: <out>_feedback/ next to the CSV)")
    ap.add_argument("--kernel", default="python3", help="Jupyter kernel for every notebook (default: this Python)")
    ap.add_argument("--executed-dir", default=None, help="also keep the executed notebooks here, DIR/<student>/<notebook>")
    ap.add_argument("--no-shared-data", action="store_true",
                    help="do not build the toy data up front (each notebook then builds what it needs)")
    args = ap.parse_args(argv)
    try:
        grades = grade(args.submissions, args.out, args.notebooks_dir, args.notebooks, args.timeout,
                       args.cell_timeout, args.kernel, not args.no_shared_data, args.executed_dir,
                       jobs=args.jobs, memory_limit=args.memory_limit, feedback_dir=args.feedback_dir,
                       seed=args.seed, probe_timeout_s=args.probe_timeout, case_timeout_s=args.case_timeout,
                       isolation=args.isolation)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{len(grades)} students graded -> {args.out}")
    return 0
