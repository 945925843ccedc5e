"""The generated student notebooks under nbval (`pytest --nbval-lax`), with CNCLIP_QUICK=1: every check
cell raises ExerciseNotAttempted naming its exercise with a 提示, every top-level stub raises its
NotImplementedError, and no other cell fails — so a student who skips every exercise still runs
each notebook to the end. First the plugin that reads nbval's outputs is shown to catch what nbval
alone lets through (a tagged cell that does not raise, or raises the wrong error)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from cnclip_edu.course import student as S
from cnclip_edu.course.exercises import all_ids
from cnclip_edu.course.runner import REPO_NOTEBOOKS, find_notebooks
from cnclip_edu.data.toy import ensure_toy_data
from nbval_student_checks import run_nbval

TESTS = Path(__file__).resolve().parent


def _nb(*sources, raises=()):
    cells = [new_code_cell(s) for s in ("work_dir = '../runs/course'",
                                        "import classroom_fake_exercises\nfrom cnclip_edu.course import check",
                                        *sources)]
    cells[0].metadata["tags"] = ["parameters"]
    for i in raises:
        cells[i].metadata["tags"] = [S.RAISES_TAG]
    book = new_notebook(cells=cells)
    book.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    return book


def test_plugin_catches_what_nbval_alone_lets_through(tmp_path):
    teacher = _nb("def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION",
                  'check("96.1", square)',
                  "n = None  # 你的答案\n### BEGIN SOLUTION\nn = 196\n### END SOLUTION", 'check("96.q1", n)',
                  "print(square)  # a later cell still runs")
    good, _ = S.make_student_version(teacher, "96_good.ipynb")
    books = {"96_good.ipynb": good,
             "96_no_raise.ipynb": _nb('check("96.q1", 196)', raises=[2]),             # a tagged check that passes
             "96_wrong_error.ipynb": _nb('check("96.q1", undefined)', raises=[2]),    # NameError, not the stub
             "96_untagged.ipynb": _nb('check("96.q1", None)')}                        # nbval's own rule
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name, book in books.items():
        nbformat.write(book, str(folder / name))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    rc, output, verdicts, _ = run_nbval(sorted(folder.glob("*.ipynb")), env)
    assert rc == 1, output
    got = {(v["notebook"], v["cell"], v["kind"], v["id"], v["ok"]) for v in verdicts}
    assert got == {("96_good.ipynb", 3, "check", "96.1", True), ("96_good.ipynb", 4, "stub", "96.q1", True),
                   ("96_good.ipynb", 5, "check", "96.q1", True), ("96_no_raise.ipynb", 2, "check", "96.q1", False),
                   ("96_wrong_error.ipynb", 2, "check", "96.q1", False)}, output
    failed = {line.split(" - ")[0] for line in output.splitlines() if line.startswith("FAILED")}
    assert failed == {"FAILED 96_no_raise.ipynb::Cell 2", "FAILED 96_wrong_error.ipynb::Cell 2",
                      "FAILED 96_untagged.ipynb::Cell 2"}, output


@pytest.mark.notebooks
def test_student_notebooks_run_under_nbval(tmp_path):
    """Only notebooks with exercises run: the others' student version is the teacher's, which the course
    run (tests/test_notebooks.py) executes already."""
    folder = tmp_path / "notebooks"
    reports = S.write_student_versions(find_notebooks(REPO_NOTEBOOKS), folder, set(all_ids()))
    with_stubs = [r for r in reports if r.stubs]
    if not with_stubs:
        pytest.skip("no notebook has a solution block yet")
    ensure_toy_data(tmp_path / "runs" / "course")  # the work dir the notebooks' '../runs/course' points to
    t0 = time.perf_counter()
    rc, output, verdicts, seconds = run_nbval([folder / r.name for r in with_stubs], {**os.environ, "CNCLIP_QUICK": "1"})
    wall = time.perf_counter() - t0
    print(f"nbval on {len(with_stubs)} student notebooks: {wall:.0f} s ({seconds})")
    assert rc == 0, output[-6000:]
    seen = {(v["notebook"], v["kind"], v["id"]) for v in verdicts if v["ok"]}
    expected = {(r.name, "check", i) for r in with_stubs for i in r.checks} | \
               {(r.name, "stub", i) for r in with_stubs for i in r.top_level_stubs}
    assert seen == expected and len(verdicts) == len(expected), (sorted(expected - seen), verdicts)
