"""The grader (`cnclip-edu grade`) on tiny synthetic notebooks and test-only exercises: all correct, a
wrong answer, a kernel crash mid-notebook, a timeout, a missing notebook, and the library's reference
handed in as an answer — each costs only what it should, and never stops the grading of the others."""
from __future__ import annotations

import csv
import os
import runpy
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from cnclip_edu.course import grade as G

TESTS = Path(__file__).resolve().parent

TIMEOUT_S = 30   # per notebook (kernel start and imports take a few seconds on a busy machine); then killed


def nb(*sources, params="work_dir = '../runs/course'\nmax_steps = 10 ** 9"):
    cells = [new_code_cell(params), new_code_cell("import os, classroom_fake_exercises\nfrom cnclip_edu.course import check")]
    cells[0].metadata["tags"] = ["parameters"]
    cells += [new_code_cell(s) for s in sources]
    book = new_notebook(cells=cells)
    book.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    return book


SETTINGS = ("assert os.environ['CNCLIP_QUICK'] == '1' and os.environ['CNCLIP_GRADING'] == '1'\n"
            "assert max_steps == 3, 'the teacher parameters cell replaces the student one'\n"
            "assert os.path.isdir(work_dir) and work_dir.endswith(os.path.join('runs', 'course'))")
SQUARE = ["def square(x):\n    return x * x", 'check("96.1", square)']
Q1 = ['check("96.q1", 196)']
NEG = ["def neg(x):\n    return -x", 'check("97.1", neg)']


# a process outside the kernel's process group, as notebook 06's torchrun (start_new_session=True)
ORPHAN = ("import subprocess, sys\n"
          "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
          "open({path!r}, 'w').write(str(child.pid))")


def pid_file_cell(path):
    return f"open({str(path)!r}, 'w').write(str(os.getpid()))"


@pytest.fixture
def fake_exercises(monkeypatch):
    """96.1, 96.q1 and 97.1 (tests/classroom_fake_exercises.py), here and in the notebooks' kernels."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    module = runpy.run_path(str(TESTS / "classroom_fake_exercises.py"))
    yield
    module["unregister_all"]()


def write(path, book):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(book, str(path))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_grade_costs_only_what_each_failure_should(tmp_path, fake_exercises):
    course = tmp_path / "course"
    teacher_params = "work_dir = '../runs/course'\nmax_steps = 3"
    write(course / "96_alpha.ipynb", nb(*SQUARE, *Q1, params=teacher_params))
    write(course / "97_beta.ipynb", nb(*NEG, params=teacher_params))
    write(course / "95_no_exercises.ipynb", nb("1/0", params=teacher_params))  # never run: nothing to grade
    subs = tmp_path / "submissions"
    crash_pid, sleep_pid, orphan_pid = tmp_path / "crash.pid", tmp_path / "sleep.pid", tmp_path / "orphan.pid"
    students = {
        "张三": [nb(SETTINGS, *SQUARE, *Q1), nb(*NEG)],                               # all correct
        "bob": [nb(*SQUARE, 'check("96.q1", 195)', "print('still running')"), nb(*NEG)],   # one wrong
        "carol": [nb(*SQUARE, pid_file_cell(crash_pid), "os._exit(1)", *Q1), nb(*NEG)],  # crash mid-notebook
        "dave": [nb(*SQUARE, pid_file_cell(sleep_pid), ORPHAN.format(path=str(orphan_pid)),        # timeout, with a
                    "import time\ntime.sleep(600)", *Q1), nb(*NEG)],                              # child of its own
        "erin": [nb(*SQUARE, *Q1), None],                                                 # 97 not handed in
        "frank": [nb(*SQUARE, *Q1), nb("from cnclip_edu.course.exercises import get",     # the reference itself
                                        'check("97.1", get("97.1").reference)')],
    }
    for name, (a, b) in students.items():
        write(subs / name / ("96_alpha-renamed.ipynb" if name == "frank" else "96_alpha.ipynb"), a)
        if b is not None:
            write(subs / name / "97_beta.ipynb", b)
    (subs / ".ipynb_checkpoints").mkdir()   # not a student

    out = tmp_path / "grades.csv"
    executed = tmp_path / "executed"
    assert G.main([str(subs), "--out", str(out), "--notebooks-dir", str(course), "--timeout", str(TIMEOUT_S),
                   "--cell-timeout", "300", "--executed-dir", str(executed), "--no-shared-data"]) == 0

    with open(out, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["student", "96.1", "96.q1", "97.1", "total", "max", "errors"]
    got = {r["student"]: (r["96.1"], r["96.q1"], r["97.1"], r["total"], r["max"]) for r in rows}
    assert got == {
        "bob": ("2", "0", "3", "5", "6"),
        "carol": ("2", "0", "3", "5", "6"),
        "dave": ("2", "0", "3", "5", "6"),
        "erin": ("2", "1", "0", "3", "6"),
        "frank": ("2", "1", "0", "3", "6"),
        "张三": ("2", "1", "3", "6", "6"),
    }
    errors = {r["student"]: r["errors"] for r in rows}
    assert errors["张三"] == "" and errors["bob"] == "" and errors["frank"] == ""
    assert errors["carol"].startswith("96_alpha.ipynb: kernel 崩溃 (DeadKernelError)")
    assert errors["dave"] == f"96_alpha.ipynb: 超时 (timeout): 超过 {TIMEOUT_S} s，已中止"
    assert errors["erin"] == "97_beta.ipynb: 没有交 (missing)"
    assert not alive(int(sleep_pid.read_text())), "the timed-out kernel must be killed"
    assert not alive(int(orphan_pid.read_text())), "and what it started in a session of its own (like torchrun)"
    assert not alive(int(crash_pid.read_text()))
    bob = nbformat.read(str(executed / "bob" / "96_alpha.ipynb"), as_version=4)
    outputs = [o for c in bob.cells for o in c.get("outputs", [])]
    assert any(o.get("ename") == "ExerciseFailed" for o in outputs), "the wrong answer's message is kept"
    assert any("still running" in o.get("text", "") for o in outputs), "cells after a failed check still run"


def test_cell_errors_are_reported_a_slow_cell_interrupted_and_later_checks_count(tmp_path, fake_exercises):
    course, subs = tmp_path / "course", tmp_path / "subs"
    write(course / "97_beta.ipynb", nb(*NEG))
    stub = 'n = None\n# 在此作答 (YOUR CODE HERE)\nraise NotImplementedError("练习 97.q9")'  # unanswered: no error
    write(subs / "ann" / "97_beta.ipynb", nb(stub, "import time\ntime.sleep(600)", "undefined_name", *NEG))
    grades = G.grade(subs, tmp_path / "g.csv", course, timeout_s=120, cell_timeout_s=20, shared_data=False,
                     progress=False)
    assert grades[0].passed == {"97.1"}
    assert grades[0].errors == ("97_beta.ipynb: cell 4: 超时被中断 (interrupted at the cell time limit) "
                                "(+1 个单元格出错 / more cell errors)")


def test_submission_lookup(tmp_path):
    (tmp_path / "02_vision_tower.ipynb").write_text("{}")
    assert G.find_submission(tmp_path, "02_vision_tower.ipynb") == (tmp_path / "02_vision_tower.ipynb", "")
    (tmp_path / "03_a.ipynb").write_text("{}")
    (tmp_path / "03_b.ipynb").write_text("{}")
    path, why = G.find_submission(tmp_path, "03_text_tower_and_clip.ipynb")
    assert path is None and "ambiguous" in why and "03_a.ipynb, 03_b.ipynb" in why
    assert G.find_submission(tmp_path, "04_contrastive_loss.ipynb") == (None, "没有交 (missing)")


def test_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        G.main([str(tmp_path), "--out", "x.csv", "--timeout", "0"])
    assert "--timeout must be > 0" in capsys.readouterr().err
    assert G.main([str(tmp_path / "nope"), "--out", str(tmp_path / "x.csv")]) == 1
    assert "is not a folder" in capsys.readouterr().err
