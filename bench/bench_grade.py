"""Wall time of grading a class: N students x the course notebooks, with `--jobs 1` and `--jobs 2`.

    .venv/bin/python bench/bench_grade.py                              # 20 students x 00-05, jobs 1 and 2
    .venv/bin/python bench/bench_grade.py --students 4 --jobs 2 --no-write   # a quick look

The class is made from the course's own notebooks, so every kind of work a teacher gets back is in it:
a third of the students hand in the solved notebooks (the teacher's versions), a third the untouched
student versions (every check a stub), a third solved the first half and left the rest. Each run
grades the same class with `cnclip-edu grade` into its own CSV; the script then checks what a teacher
relies on — a solved notebook earns every point, an untouched one none, and the grades do not depend
on `--jobs` — and reports the wall time of each run. Writes section `grade` of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import git_rev, machine_info, markdown_table, write_section  # noqa: E402
from cnclip_edu.course.runner import REPO_NOTEBOOKS, find_notebooks  # noqa: E402
from cnclip_edu.course.student import write_student_versions  # noqa: E402

KINDS = ("solved", "untouched", "half")


def build_class(root: Path, notebooks: list[Path], n: int) -> dict[str, str]:
    """root/sNN/<notebook>.ipynb for n students; returns student -> kind."""
    stub_dir = root / "_student_versions"
    write_student_versions(notebooks, stub_dir)
    subs, kinds = root / "submissions", {}
    half = len(notebooks) // 2
    for k in range(n):
        name, kind = f"s{k:02d}", KINDS[k % len(KINDS)]
        (subs / name).mkdir(parents=True)
        for i, nb in enumerate(notebooks):
            solved = kind == "solved" or (kind == "half" and i < half)
            shutil.copyfile(nb if solved else stub_dir / nb.name, subs / name / nb.name)
        kinds[name] = kind
    return kinds


def grade(subs: Path, out: Path, prefixes: list[str], jobs: int, seed: int) -> float:
    cmd = [sys.executable, "-m", "cnclip_edu", "grade", str(subs), "--out", str(out), "--jobs", str(jobs),
           "--seed", str(seed), "--notebooks", *prefixes]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:  # the grader writes a BOM for Excel
        return {r["student"]: r for r in csv.DictReader(f)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", type=int, default=20)
    ap.add_argument("--notebooks", nargs="+", default=["00", "01", "02", "03", "04", "05"])
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="one graded run per value")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    argv = sys.argv[1:] if argv is None else list(argv)
    a = ap.parse_args(argv)
    # a killed benchmark leaves no temp class behind: SIGTERM unwinds like Ctrl-C, so the folder below is removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    notebooks = [p for pre in a.notebooks for p in find_notebooks(REPO_NOTEBOOKS, [pre])]
    load0 = os.getloadavg()[0]
    rows, grades = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-grade-") as tmp:
        root = Path(tmp)
        kinds = build_class(root, notebooks, a.students)
        for jobs in a.jobs:
            out = root / f"grades-j{jobs}.csv"
            wall = grade(root / "submissions", out, a.notebooks, jobs, a.seed)
            got = read_rows(out)
            grades[jobs] = {s: (r["total"], r["max"]) for s, r in got.items()}
            full = [s for s, k in kinds.items() if k == "solved" and got[s]["total"] == got[s]["max"]]
            zero = [s for s, k in kinds.items() if k == "untouched" and got[s]["total"] == "0"]
            rows.append([jobs, a.students, len(notebooks), round(wall, 1), round(wall / a.students, 1),
                         f"{len(full)}/{sum(k == 'solved' for k in kinds.values())}",
                         f"{len(zero)}/{sum(k == 'untouched' for k in kinds.values())}"])
            print(f"--jobs {jobs}: {wall:.1f} s", flush=True)
    same = len({tuple(sorted(g.items())) for g in grades.values()}) == 1
    md = "\n\n".join([
        f"## Grading a class ({a.students} students x notebooks {' '.join(a.notebooks)})",
        f"Command: `{' '.join(['python bench/bench_grade.py', *argv])}` (git {git_rev()}). Machine: {machine_info()}. "
        f"Load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.",
        markdown_table(["--jobs", "students", "notebooks", "wall s", "s / student", "solved: full marks",
                        "untouched: 0 points"], rows),
        f"The class: a third hand in the solved notebooks, a third the untouched student versions, a third "
        f"solved the first half. Grades identical across the `--jobs` values: {'yes' if same else 'NO'}.",
    ])
    print(md)
    if not a.no_write:
        write_section("grade", md)
    return 0 if same and all(r[5].split("/")[0] == r[5].split("/")[1] and r[6].split("/")[0] == r[6].split("/")[1]
                             for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
