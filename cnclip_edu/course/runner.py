"""Run the whole course: every notebook in order, with papermill, into one work folder.

    cnclip-edu course                                   # all notebooks -> runs/course/
    cnclip-edu course --notebooks 05 06 07 -p device cuda -p batch_size 256

Notebooks record their key numbers with `record("toy_t2i_r1", 0.93, work_dir)`; they land in
`<work_dir>/metrics.json`, and the summary table shows, per notebook, what it recorded.
A failing notebook stops the run: we print the failing cell's error and where the executed
notebook was written, because that file shows every output up to the failure.
"""
from __future__ import annotations

import argparse
import ast
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .metrics import DEFAULT_WORK_DIR, METRICS_FILE, load_metrics, record

def _course_notebooks() -> Path:
    """The teacher notebooks: a checkout's top-level notebooks/, else the copy an installed wheel ships."""
    repo = Path(__file__).resolve().parents[2] / "notebooks"
    return repo if repo.is_dir() else Path(__file__).resolve().parents[1] / "notebooks"


REPO_NOTEBOOKS = _course_notebooks()


# ----------------------------------------------------------------------------- runner
@dataclass
class NotebookResult:
    name: str
    status: str  # "ok" | "failed"
    wall_s: float
    output_path: Path
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""


def find_notebooks(notebooks_dir: Path, select: list[str] | None = None) -> list[Path]:
    """Notebooks in order; `select` items match a prefix ('05') or a full name."""
    all_nbs = sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if not select:
        return all_nbs
    chosen = []
    for s in select:
        hits = [p for p in all_nbs if p.name == s or p.stem == s or p.name.startswith(s)]
        if not hits:
            raise SystemExit(f"cnclip-edu course: no notebook matches {s!r} in {notebooks_dir}")
        chosen += [h for h in hits if h not in chosen]
    return sorted(chosen)


def _describe_error(exc: BaseException) -> str:
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    cell = getattr(exc, "exec_count", None)
    where = f" (cell execution count {cell})" if cell is not None else ""
    return f"{ename}: {evalue}{where}"


# ipykernel logs a warning that TCP on localhost is unencrypted at every kernel start: once per notebook
# in the middle of the course's progress bar. Errors still reach the terminal; outputs are in the notebook.
# CRITICAL, not ERROR: a kernel stopped in the middle of a reply (Ctrl-C, a time limit) logs a 20-line
# "ZMQError: Socket operation on non-socket" at ERROR level, which says nothing to the user.
KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]


def run_notebook(path: Path, work_dir: Path, parameters: dict, kernel_name: str | None = None) -> NotebookResult:
    import papermill as pm

    out_dir = work_dir / "executed"
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / path.name
    before = load_metrics(work_dir)
    t0 = time.perf_counter()
    params = {"work_dir": str(work_dir), **parameters}
    status, error = "ok", ""
    try:
        pm.execute_notebook(
            str(path), str(out_path), parameters=params, cwd=str(path.parent),
            kernel_name=kernel_name, progress_bar=False, log_output=False,
            extra_arguments=KERNEL_ARGS,
        )
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell's error
        status, error = "failed", _describe_error(exc)
    wall = time.perf_counter() - t0
    if status == "ok":
        record(f"{path.stem}_wall_s", round(wall, 1), work_dir)
    after = load_metrics(work_dir)
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    return NotebookResult(path.name, status, wall, out_path, changed, error)


def format_summary(results: list[NotebookResult], total_s: float) -> str:
    rows = [("notebook", "status", "wall s", "metrics")]
    for r in results:
        # the runner's own "<notebook>_wall_s" is the column before; a notebook's metrics (train_wall_s) stay
        shown = {k: v for k, v in r.metrics.items() if k != f"{Path(r.name).stem}_wall_s"}
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(shown.items())) or "-"
        rows.append((r.name, r.status, f"{r.wall_s:.1f}", metrics))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3])
        if i == 0:
            lines.append("-" * (sum(widths) + 6 + 40))
    lines.append(f"course_wall_s = {total_s:.1f}")
    return "\n".join(lines)


def run_course(notebooks: list[Path], work_dir: str | os.PathLike = DEFAULT_WORK_DIR,
               parameters: dict | None = None, kernel_name: str | None = None) -> list[NotebookResult]:
    """Execute `notebooks` in order; stop at the first failure. Prints the summary."""
    from tqdm.auto import tqdm

    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    results: list[NotebookResult] = []
    t0 = time.perf_counter()
    bar = tqdm(notebooks, desc="course", unit="notebook")
    for nb in bar:
        bar.set_postfix_str(nb.name)
        try:
            res = run_notebook(nb, work, dict(parameters or {}), kernel_name)
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM turned into it by cnclip_edu.cli
            bar.close()
            name = signal.Signals(getattr(stop, "signum", signal.SIGINT)).name
            print(f"\ncnclip-edu course: stopped ({name}) while running {nb.name}; its outputs up to the stop: "
                  f"{work / 'executed' / nb.name}; work folder: {work}", file=sys.stderr)
            stop.reported = True  # cli.main prints nothing more
            raise
        results.append(res)
        tqdm.write(f"{res.status:>6}  {nb.name}  ({res.wall_s:.1f} s)")
        if res.status != "ok":
            tqdm.write(f"\n{nb.name} failed: {res.error}\nExecuted notebook (outputs up to the failure): {res.output_path}")
            break
    bar.close()
    total = time.perf_counter() - t0
    if all(r.status == "ok" for r in results):
        record("course_wall_s", round(total, 1), work)
    summary = format_summary(results, total)
    (work / "summary.md").write_text("```\n" + summary + "\n```\n", encoding="utf-8")
    print("\n" + summary)
    print(f"\nmetrics: {work / METRICS_FILE}\nexecuted notebooks: {work / 'executed'}")
    return results


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


COURSE_PACKAGES = ("papermill", "nbformat", "nbclient", "ipykernel", "matplotlib")  # what running notebooks needs


def main(argv: list[str] | None = None) -> int:
    from ..cli import require

    for package in COURSE_PACKAGES:  # before anything starts: one line naming the extra, not a failed notebook
        require(package, "cnclip-edu course")
    ap = argparse.ArgumentParser(prog="cnclip-edu course", description=__doc__.split("\n\n")[0])
    ap.add_argument("--notebooks", nargs="*", help="which notebooks (prefix like 05 or full name); default: all")
    ap.add_argument("--work-dir", "--work_dir", default=DEFAULT_WORK_DIR, help="one folder for data, runs and metrics")
    ap.add_argument("--notebooks-dir", default=str(REPO_NOTEBOOKS))
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="papermill parameter passed to every notebook (value parsed as a Python literal)")
    ap.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's own)")
    args = ap.parse_args(argv)
    nbs = find_notebooks(Path(args.notebooks_dir), args.notebooks)
    if not nbs:
        print(f"no notebooks found in {args.notebooks_dir}", file=sys.stderr)
        return 1
    params = {k: _parse_value(v) for k, v in args.parameter}
    results = run_course(nbs, args.work_dir, params, args.kernel)
    return 0 if results and all(r.status == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
