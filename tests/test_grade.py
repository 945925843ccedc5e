"""The grader (`cnclip-edu grade`): verdicts decided in the grader's process, hidden cases, tripwires,
students isolated from each other and from the teacher, feedback.

Two classes are graded. The first is built from tiny synthetic notebooks and test-only exercises
(tests/classroom_fake_exercises.py): correct, wrong only on a hidden case, a wrapper around the
'library', a crash after a check, a timeout with a process in a new session, a missing notebook,
the reference itself, a deleted check — each costs what it should and no more. The second is built
from the course's notebooks 00-01 (their exercise cells): honest, empty, log forger, checker patcher,
library wrapper, symlinked solution, vandal, memory hog, odd folder names; the honest student's
grade is the same with and without the vandal in the class."""
from __future__ import annotations

import csv
import io
import os
import re
import runpy
import shutil
import stat
import time
import uuid
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

from cnclip_edu.course import grade as G
from cnclip_edu.course.grading import protocol, report, sandbox, submissions, tripwires
from cnclip_edu.course.runner import REPO_NOTEBOOKS
from cnclip_edu.course.student import make_student_version

TESTS = Path(__file__).resolve().parent
NAMESPACES = sandbox.probe()[0] and os.environ.get("CNCLIP_GRADE_ISOLATION", "auto") != "none"


# ----------------------------------------------------------------------------- helpers
def nb(*sources, params="work_dir = '../runs/course'\nmax_steps = 10 ** 9"):
    cells = [new_code_cell(params), new_code_cell("import os, classroom_fake_exercises\nfrom cnclip_edu.course import check")]
    cells[0].metadata["tags"] = ["parameters"]
    cells += [new_code_cell(s) for s in sources]
    book = new_notebook(cells=cells)
    book.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    return book


def write(path: Path, book) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(book, str(path))


def rows_of(path: Path) -> dict[str, dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return {r["student"]: r for r in csv.DictReader(f)}


def processes_with(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if token.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def orphan_cell(token: str, delay: float, action: str) -> str:
    """A process that leaves the kernel's session (setsid) and, `delay` s later, runs `action`."""
    code = f"import time; time.sleep({delay}); {action}"
    return ("import subprocess, sys\n"
            f"subprocess.Popen([sys.executable, '-c', {code!r}, {token!r}], start_new_session=True,\n"
            "                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)")


@pytest.fixture
def fake_exercises(monkeypatch):
    """96.1, 96.q1 and 97.1 (tests/classroom_fake_exercises.py), here and in the notebooks' kernels."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    module = runpy.run_path(str(TESTS / "classroom_fake_exercises.py"))
    yield
    module["unregister_all"]()


# ----------------------------------------------------------------------------- plain data, tripwires
def test_protocol_round_trip_keeps_types_and_refuses_objects():
    value = {"a": torch.arange(6).reshape(2, 3), 3: (np.float32(1.5), np.zeros((2, 2), dtype=np.int8)),
             "bf": torch.ones(2, dtype=torch.bfloat16), "xs": [1, 2.5, float("nan"), None, True, "字"], "e": ...,
             "raw": b"\x00\xff", "s": {1, "a"}}
    text, blobs = protocol.dumps(value)
    back = protocol.loads(text, blobs)
    assert back["a"].dtype == torch.int64 and back["a"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert isinstance(back[3], tuple) and isinstance(back[3][0], np.float32) and back[3][1].dtype == np.int8
    assert back["bf"].dtype == torch.bfloat16 and back["e"] is Ellipsis
    assert back["raw"] == b"\x00\xff" and back["s"] == {1, "a"}
    assert back["xs"][:2] == [1, 2.5] and np.isnan(back["xs"][2]) and back["xs"][3:] == [None, True, "字"]
    for bad in (print, torch.nn.Linear(2, 2), np.array([object()], dtype=object), object()):
        with pytest.raises(protocol.NotPlainData):
            protocol.encode(bad)
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):  # an object array the kernel forged is never unpickled
        protocol.decode({"value": {"t": "ndarray", "b": 0}}, [pickled.getvalue()])


def test_tripwires_catch_captured_references_and_restore_the_library():
    import cnclip_edu.tokenizer as T

    tok = T.get_tokenizer()
    captured, alias = tok.basic_tokenize, T.tokenize          # taken before the wires are armed
    wrapper = lambda t: tok.basic_tokenize(t)  # noqa: E731

    def swallow(t):  # an answer that tries to hide the trip
        try:
            return tok.basic_tokenize(t)
        except Exception:
            return ["x"]

    armed = tripwires.arm(["cnclip_edu.tokenizer.Tokenizer.basic_tokenize", "cnclip_edu.tokenizer.tokenize",
                           "no_such_module.f"])
    try:
        for answer in (captured, wrapper, swallow, lambda t: alias(t)):
            with pytest.raises(tripwires.Tripped):
                answer("Café")
        assert armed.missing == ["no_such_module.f"] and armed.intact()
        assert armed.hits[0] == "cnclip_edu.tokenizer.Tokenizer.basic_tokenize"
        assert tok.wordpiece("unaffable") == ["u", "##na", "##ff", "##able"]  # what is not built still works
    finally:
        armed.disarm()
    assert captured("Café naïve") == ["cafe", "naive"] and alias("杰").shape == (1, 52)

    def outer():
        n = 2
        def closure(x):  # noqa: E306 - a function with a free variable
            return x * n
        return closure
    fn = outer()
    import types
    holder = types.ModuleType("holder_for_test")
    holder.fn = fn
    import sys
    sys.modules["holder_for_test"] = holder
    try:
        armed = tripwires.arm(["holder_for_test.fn"])
        with pytest.raises(tripwires.Tripped):
            fn(3)
        armed.disarm()
        assert fn(3) == 6
    finally:
        del sys.modules["holder_for_test"]


@pytest.mark.slow
def test_every_exercise_result_is_plain_data():
    """The grader compares results in its own process, so every case of every exercise (public, and hidden
    for one seed) must return plain data. ~1 min (notebook 09's export case): run with -m slow."""
    from cnclip_edu.course.exercises import all_ids, get

    bad = []
    for i in all_ids():
        ex = get(i)
        for case in [*ex.run_cases(), *(ex.hidden(0) if ex.hidden else [])]:
            try:
                protocol.encode(case.run(ex.reference))
            except protocol.NotPlainData as exc:
                bad.append(f"{i} {case.label}: {exc}")
    assert not bad, bad


def test_the_verdict_trusts_nothing_the_kernel_claims(fake_exercises):
    """Probe files as a kernel could forge them: only results equal to the reference's score."""
    import base64
    import json

    from cnclip_edu.course.grading import verdict

    def probe(doc, blobs=()):
        return {"json": json.dumps(doc), "blobs": [base64.b64encode(b).decode() for b in blobs]}

    seed = 5
    hidden = [c.run(lambda x: x * x) for c in classroom_fake_exercises_hidden(seed)]
    right = {"status": "ran", "cases": [{"result": 9}, {"result": 4}] + [{"result": h} for h in hidden], "intact": True}

    def judged(doc, blobs=()):
        r = verdict.judge("96.1", probe(doc, blobs), seed, True, "")
        return r.reason, r.points

    assert judged(right) == ("ok", 2)
    assert judged({"status": "passed", "points": 2}) == ("bad_results", 0)          # a verdict is not a result
    assert judged({**right, "cases": right["cases"][:2]}) == ("bad_results", 0)     # the hidden cases skipped
    assert judged({**right, "cases": right["cases"] + [{"result": 1}]}) == ("bad_results", 0)
    assert judged({**right, "intact": False}) == ("library", 0)                      # the wire was taken out
    assert judged({**right, "hits": ["classroom_fake_exercises.library_square"]}) == ("library", 0)
    assert judged({**right, "cases": [{"result": 9}, {"result": 4}, {"result": 0}, {"result": 0}]}) == ("hidden", 0)
    pickled = io.BytesIO()
    np.save(pickled, np.array([9], dtype=object), allow_pickle=True)
    forged = {**right, "cases": [{"result": {"t": "ndarray", "b": 0}}] + right["cases"][1:]}
    assert judged(forged, [pickled.getvalue()]) == ("bad_results", 0)
    assert verdict.judge("96.q1", probe({"status": "value", "value": 196}), seed, True, "").points == 1
    assert verdict.judge("96.q1", probe({"status": "value", "value": None}), seed, True, "").reason == "stub"
    assert verdict.judge("96.q1", None, seed, False, "").reason == "check_deleted"
    assert verdict.judge("96.q1", None, seed, True, "超时 (timeout): ...").reason == "timeout"


def classroom_fake_exercises_hidden(seed):
    from cnclip_edu.course.exercises import get

    return get("96.1").hidden(seed)


# ----------------------------------------------------------------------------- reading hand-ins, CSV
def test_submissions_are_read_without_following_links(tmp_path):
    subs = tmp_path / "subs"
    (subs / "...dots").mkdir(parents=True)
    (subs / ".ipynb_checkpoints").mkdir()
    (subs / "a").mkdir()
    (subs / "a" / "01_tokenizer.ipynb").write_text("{}")
    (subs / "a" / "00_quickstart.ipynb").symlink_to(tmp_path / "elsewhere.ipynb")
    os.mkfifo(subs / "a" / "pipe")
    (subs / "linked").symlink_to(subs / "a")
    (subs / "notes.txt").write_text("x")
    students, skipped = submissions.read_submissions(subs)
    assert [s.student for s in students] == ["...dots", "a", "linked"]
    assert skipped == [".ipynb_checkpoints (工具生成的文件夹，不是学生 a tool's folder)", "notes.txt (不是文件夹 not a folder)"]
    a = students[1]
    assert a.files == {"01_tokenizer.ipynb": b"{}"}
    assert a.refused == ["00_quickstart.ipynb (符号链接被拒绝 symlink refused)", "pipe (不是普通文件 not a regular file)"]
    assert "symlink refused" in students[2].error
    assert submissions.find_submission(a.files, a.refused, "00_quickstart.ipynb") == (
        None, "00_quickstart.ipynb: 符号链接被拒绝 (symlink refused)")
    assert submissions.find_submission(a.files, a.refused, "01_tokenizer.ipynb") == ("01_tokenizer.ipynb", "")
    files = {"03_a.ipynb": b"", "03_b.ipynb": b"", "02_mine.ipynb": b""}
    assert submissions.find_submission(files, [], "02_vision_tower.ipynb") == ("02_mine.ipynb", "")
    assert "03_a.ipynb, 03_b.ipynb" in submissions.find_submission(files, [], "03_text.ipynb")[1]
    assert submissions.find_submission(files, [], "04_x.ipynb") == (None, "没有交 (missing)")


def test_csv_cells_that_look_like_formulas_are_escaped():
    grades = [report.StudentGrade("=2+3"), report.StudentGrade("@x", notebook_errors=["-1 problem"]),
              report.StudentGrade("张 三")]
    text = report.csv_text(grades, [], {})
    rows = list(csv.reader(io.StringIO(text)))
    assert [r[0] for r in rows[1:]] == ["'=2+3", "'@x", "张 三"]
    assert rows[2][-1] == "'-1 problem"
    assert report.feedback_name("...dots") == "_...dots.md" and report.feedback_name("a/b") == "a_b.md"


def test_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        G.main([str(tmp_path), "--out", "x.csv", "--timeout", "0"])
    assert "--timeout must be > 0" in capsys.readouterr().err
    assert G.main([str(tmp_path / "nope"), "--out", str(tmp_path / "x.csv")]) == 1
    assert "is not a folder" in capsys.readouterr().err
    assert G.parse_size if hasattr(G, "parse_size") else True
    from cnclip_edu.course.grading import parse_size
    assert parse_size("8G") == 8 * 2 ** 30 and parse_size("512m") == 512 * 2 ** 20 and parse_size("0") == 0


# ----------------------------------------------------------------------------- a synthetic class
SQUARE = ["def square(x):\n    return x * x", 'check("96.1", square)']
Q1 = ['check("96.q1", 196)']
NEG = ["def neg(x):\n    return -x", 'check("97.1", neg)']


def test_grade_costs_only_what_each_failure_should(tmp_path, fake_exercises):
    course, subs = tmp_path / "course", tmp_path / "submissions"
    teacher_params = "work_dir = '../runs/course'\nmax_steps = 3"
    write(course / "96_alpha.ipynb", nb(*SQUARE, *Q1, params=teacher_params))
    write(course / "97_beta.ipynb", nb(*NEG, params=teacher_params))
    write(course / "95_no_exercises.ipynb", nb("1/0", params=teacher_params))  # never run: nothing to grade
    token = f"cnclip-orphan-{uuid.uuid4().hex}"
    settings = ("assert os.environ['CNCLIP_QUICK'] == '1' and os.environ['CNCLIP_GRADING'] == '1'\n"
                "assert max_steps == 3, 'the teacher parameters cell replaces the student one'\n"
                "assert os.path.isdir(work_dir) and work_dir.endswith(os.path.join('runs', 'course'))")
    slow = "import time\ntime.sleep(600)"
    students = {
        "张三": [nb(settings, *SQUARE, *Q1), nb(*NEG)],                                  # all correct
        "bob": [nb("def square(x):\n    return x * x if abs(x) < 100 else 0",         # public cases pass,
                   'check("96.1", square)', 'check("96.q1", 195)'), None],              # a hidden one fails
        "carol": [nb(slow, "undefined_name", *SQUARE, "os._exit(1)", *Q1), None],      # interrupted cell, crash
        "dave": [nb(*SQUARE, orphan_cell(token, 600, "pass"), *["import time\ntime.sleep(5)"] * 12, *Q1), None],  # timeout
        "erin": [nb("from cnclip_edu.course.exercises import get", 'check("96.1", get("96.1").reference)',
                    "n = 196  # its check cell deleted"), None],                        # the reference itself
        "frank": [nb("square = lambda x: classroom_fake_exercises.library_square(x)",   # the 'library'
                     'check("96.1", square)', *Q1), None],
    }
    for name, (a, b) in students.items():
        write(subs / name / ("96_alpha-renamed.ipynb" if name == "frank" else "96_alpha.ipynb"), a)
        if b is not None:
            write(subs / name / "97_beta.ipynb", b)
    out = tmp_path / "out" / "grades.csv"
    t0 = time.perf_counter()
    assert G.main([str(subs), "--out", str(out), "--notebooks-dir", str(course), "--timeout", "45",
                   "--cell-timeout", "25", "--no-shared-data", "--jobs", "3", "--seed", "7"]) == 0
    print(f"graded {len(students)} students in {time.perf_counter() - t0:.0f} s")
    rows = rows_of(out)
    assert list(next(iter(rows.values()))) == ["student", "96.1", "96.q1", "97.1", "total", "max", "errors"]
    got = {s: (r["96.1"], r["96.q1"], r["97.1"], r["total"]) for s, r in rows.items()}
    assert got == {"bob": ("0", "0", "0", "0"), "carol": ("2", "0", "0", "2"), "dave": ("2", "0", "0", "2"),
                   "erin": ("0", "0", "0", "0"), "frank": ("0", "1", "0", "1"), "张三": ("2", "1", "3", "6")}
    errors = {s: r["errors"] for s, r in rows.items()}
    missing = "97_beta.ipynb: 没有交 (missing)"
    assert errors["张三"] == ""
    assert errors["bob"] == (f"{missing}; 96.1: 隐藏用例不对 (wrong on a hidden case)：隐藏用例（类型：很大的数）; "
                             "96.q1: 公开用例不对 (wrong on a public case)")
    assert errors["carol"].startswith("96_alpha.ipynb: kernel 崩溃 (DeadKernelError)")
    assert errors["carol"].endswith("96_alpha.ipynb: cell 3: 超时被中断 (interrupted at the cell time limit) (+1 个"
                                    f"单元格出错 / more cell errors); {missing}; 96.q1: 没有运行到检查 (check not reached)")
    # the notebook's 45 s run out inside a sleeping cell: the grader interrupts it with the time left; whether the
    # interrupt lands in that window ("超过 45 s") or the kernel has to be stopped ("不响应中断，kernel 已中止") depends
    # on the machine's load — both are the notebook's timeout, and the grades above are the same either way
    assert errors["dave"].startswith("96_alpha.ipynb: 超时 (timeout)"), errors["dave"]
    assert ("超过 45 s，后面的单元格没有运行; " in errors["dave"]) or ("kernel 已中止; " in errors["dave"]), errors["dave"]
    assert errors["dave"].endswith(f"{missing}; 96.q1: 超时 (timeout)")
    assert errors["erin"] == (f"{missing}; 96.1: 用了库自己的实现 (library used)：交上来的是库里的参考实现本身; "
                              "96.q1: 检查格被删除 (check deleted)")
    assert errors["frank"] == f"{missing}; 96.1: 用了库自己的实现 (library used)：classroom_fake_exercises.library_square"
    assert processes_with(token) == [], "the timed-out kernel's process in a session of its own is killed"
    feedback = (tmp_path / "out" / "grades_feedback" / "bob.md").read_text(encoding="utf-8")
    assert "隐藏用例（类型：很大的数）" in feedback and "提示：逐元素相乘。" in feedback
    assert not re.search(r"\d{4,}", feedback), "a hidden case's input never appears in the feedback"
    summary = (tmp_path / "out" / "grades_feedback" / "_summary.md").read_text(encoding="utf-8")
    assert "| 96.1 平方 | 3/6 | 50% |" in summary and "| 97.1 取反 | 1/6 | 17% | 没有交 5 |" in summary


# ----------------------------------------------------------------------------- the course's notebooks 00-01
COURSE_00_01 = ["00_quickstart.ipynb", "01_tokenizer.ipynb"]
CHECK_NAME = re.compile(r"""check\(\s*["'](?P<id>\d\d\.q?\d+)["']\s*,\s*(?P<name>\w+)""")


def slim(book):
    """The notebook's exercise cells only: the parameters and set-up cells, every solution cell and check
    cell, and the cells defining a function a solution uses (the rest only shows things; grading runs what
    a student hands in, so a shorter notebook grades the same answers in a fraction of the time)."""
    code = [c for c in book.cells if c.cell_type == "code"]
    solutions = "\n".join(c.source for c in code if "### BEGIN SOLUTION" in c.source)
    keep = []
    for i, c in enumerate(code):
        defined = re.findall(r"^def (\w+)", c.source, re.M)
        if (i <= setup_index(code) or "### BEGIN SOLUTION" in c.source or CHECK_NAME.search(c.source)
                or any(re.search(rf"\b{name}\(", solutions) for name in defined)):
            keep.append(c)
    out = nbformat.v4.new_notebook(cells=keep, metadata=book.metadata)
    return nbformat.from_dict(nbformat.reads(nbformat.writes(out), as_version=4))


def setup_index(code_cells) -> int:
    """The set-up cell: the first code cell that imports `check` (parameters and their check come before)."""
    return next((i for i, c in enumerate(code_cells) if re.search(r"from cnclip_edu\.course import .*\bcheck\b", c.source)), 1)


def with_answers(book, answers: dict[str, str]):
    """`book` with the solution cell before each check of an id in `answers` replaced: the code there
    may use NAME, the name the check cell passes."""
    book = nbformat.reads(nbformat.writes(book), as_version=4)
    cells = book.cells
    for i, c in enumerate(cells):
        m = CHECK_NAME.search(c.source)
        if m and m["id"] in answers:
            j = max(k for k in range(i) if "### BEGIN SOLUTION" in cells[k].source)
            cells[j].source = answers[m["id"]].replace("NAME", m["name"])
    return book


def insert_after_setup(book, source: str):
    book = nbformat.reads(nbformat.writes(book), as_version=4)
    code = [k for k, c in enumerate(book.cells) if c.cell_type == "code"]
    book.cells.insert(code[setup_index([book.cells[k] for k in code])] + 1, new_code_cell(source))
    return book


def student(book, name):
    return make_student_version(book, name)[0]


def test_a_class_of_cheats_gets_what_it_earned(tmp_path):
    course, subs, out_dir = tmp_path / "course", tmp_path / "submissions", tmp_path / "out"
    course.mkdir()
    for name in COURSE_00_01:
        shutil.copy(REPO_NOTEBOOKS / name, course / name)
    teacher = {name: slim(nbformat.read(str(course / name), as_version=4)) for name in COURSE_00_01}
    nb00, nb01 = teacher[COURSE_00_01[0]], teacher[COURSE_00_01[1]]
    out = out_dir / "grades.csv"
    token = f"cnclip-vandal-{uuid.uuid4().hex}"
    marker = tmp_path / "the-vandal-was-here"
    honest_files = [subs / "honest" / n for n in COURSE_00_01]
    vandal = (
        "import json, pathlib\n"
        f"found = {{}}\n"
        f"for p in {[str(p) for p in honest_files] + [str(course / COURSE_00_01[0]), str(out)]!r}:\n"
        "    try:\n"
        "        found[p] = len(open(p, 'rb').read())          # another student's answers, the teacher's, the CSV\n"
        "        open(p, 'a').write('VANDAL')                   # ... and spoil them\n"
        "    except Exception as exc:\n"
        "        found[p] = type(exc).__name__\n"
        "print(found)\n"
        + orphan_cell(token, 5, f"[open(p, 'w').write('student,total\\\\nvandal,99') for p in "
                                f"{[str(out), str(honest_files[0])]!r}]; open({str(marker)!r}, 'w').write('x')"))
    forge = ("import json, os\n"
             "log = os.environ.get('CNCLIP_EXERCISE_LOG') or os.path.join(work_dir, 'checks.jsonl')\n"
             "with open(log, 'a') as f:\n"
             "    for i in ('00.1', '00.q1'):\n"
             "        f.write(json.dumps({'id': i, 'passed': True, 'points': 9}) + '\\n')")
    patch = ("from cnclip_edu.course.exercises import compare, core\n"
             "core._judge = lambda exercise, answer: 1\n"
             "compare.default_compare = lambda *args, **kwargs: None")
    library = {"01.1": "from cnclip_edu.tokenizer import get_tokenizer as _g\nNAME = lambda t: _g().basic_tokenize(t)",
               "01.2": "from cnclip_edu.tokenizer import get_tokenizer as _g\nNAME = _g().wordpiece"}  # captured
    deleted = [m["id"] for c in nb00.cells for m in CHECK_NAME.finditer(c.source)][-1]   # 00's last check
    no_last_check = nbformat.reads(nbformat.writes(nb00), as_version=4)
    no_last_check.cells = [c for c in no_last_check.cells if f'check("{deleted}"' not in c.source]
    class_ = {
        "honest": [nb00, nb01],
        "empty": [None, student(nb01, COURSE_00_01[1])],            # the student version, untouched
        # forges the exercise log, then patches the checker: the notebook's own checks now pass the stubs
        "forger-patcher": [insert_after_setup(insert_after_setup(student(nb00, COURSE_00_01[0]), patch), forge), None],
        "wrapper": [None, with_answers(nb01, library)],               # thin wrappers around the library
        # solves 00, then attacks the others and the teacher, leaves a process behind, and hogs memory
        "vandal-hog": [insert_after_setup(insert_after_setup(nb00, vandal), "hog = bytearray(64 * 2 ** 30)  # 64 GB"),
                       None],
        "=2+3": [no_last_check, None],                                # solved 00 but deleted one check cell
    }
    for name, books in class_.items():
        for book, file in zip(books, COURSE_00_01):
            if book is not None:
                write(subs / name / file, book)
    for file in COURSE_00_01:
        (subs / "symlinked").mkdir(exist_ok=True)
        (subs / "symlinked" / file).symlink_to(course / file)
    (subs / "...dots").mkdir()
    (subs / "张 三 李").mkdir()
    (subs / "张 三 李" / "作业.txt").write_text("忘了交 notebook")
    (subs / ".ipynb_checkpoints").mkdir()
    before = {p: p.read_bytes() for p in [*honest_files, course / COURSE_00_01[0], course / COURSE_00_01[1]]}

    t0 = time.perf_counter()
    grades = G.grade(subs, out, course, timeout_s=120, cell_timeout_s=90, probe_timeout_s=120, jobs=2, seed=3,
                     executed_dir=tmp_path / "executed", shared_data=False, memory_limit="8G")
    print(f"graded {len(grades)} students in {time.perf_counter() - t0:.0f} s")
    csv_after = out.read_bytes()
    time.sleep(6)  # the vandal's process would have struck by now

    by = {g.student: g for g in grades}
    ids00 = [i for i in by["honest"].results if i.startswith("00.")]
    ids01 = [i for i in by["honest"].results if i.startswith("01.")]

    def reasons(name, ids):
        return {by[name].results[i].reason for i in ids}

    assert by["honest"].total == by["honest"].max_points > 0 and by["honest"].errors == ""
    assert by["empty"].total == 0 and reasons("empty", ids01) <= {"stub", "needs"}
    assert by["forger-patcher"].total == 0 and reasons("forger-patcher", ids00) == {"stub"}
    executed = (tmp_path / "executed" / "forger-patcher" / COURSE_00_01[0]).read_text(encoding="utf-8")
    assert "✅ 练习 00.1" in executed, "the patched checker did pass the stub inside the kernel"
    assert {i: by["wrapper"].results[i].reason for i in ("01.1", "01.2")} == {"01.1": "library", "01.2": "library"}
    assert "01.1: 用了库自己的实现 (library used)：cnclip_edu.tokenizer.Tokenizer.basic_tokenize" in by["wrapper"].errors
    assert by["symlinked"].total == 0 and all(
        f"{n}: 符号链接被拒绝 (symlink refused)" in by["symlinked"].errors for n in COURSE_00_01)
    assert reasons("vandal-hog", ids00) == {"ok"} and reasons("vandal-hog", ids01) == {"missing"}
    assert "MemoryError" in by["vandal-hog"].errors
    assert by["=2+3"].results[deleted].reason == "check_deleted"
    assert {by["=2+3"].results[i].reason for i in ids00 if i != deleted} <= {"ok"}
    assert by["...dots"].total == 0 and by["张 三 李"].total == 0
    assert by["张 三 李"].errors.startswith(f"{COURSE_00_01[0]}: 没有交 (missing)")

    rows = rows_of(out)
    names = sorted(["=2+3", "...dots", "empty", "forger-patcher", "honest", "symlinked", "vandal-hog", "wrapper", "张 三 李"])
    assert list(rows) == [report.cell(n) for n in names], "every folder has a row (sorted), none runs as a formula"
    assert rows["'=2+3"]["errors"].endswith(f"{deleted}: 检查格被删除 (check deleted)")
    assert out.read_bytes() == csv_after, "nothing rewrote the CSV after the grader"
    assert not marker.exists() and processes_with(token) == [], "the vandal's process in a new session was killed"
    if NAMESPACES:  # the kernels could not even see these folders
        assert {p: p.read_bytes() for p in before} == before
        vandal = nbformat.read(str(tmp_path / "executed" / "vandal-hog" / COURSE_00_01[0]), as_version=4)
        printed = "".join(o.get("text", "") for c in vandal.cells if "found = {}" in c.source for o in c.outputs)
        assert printed.count("'FileNotFoundError'") == 4, printed  # hidden: the folders look empty
    # the honest student alone, same seed: the same grade (a fresh copy of the course: without namespaces the
    # vandal did spoil the teacher's files on disk, which the class's grading had read before it ran)
    alone, course2 = tmp_path / "alone", tmp_path / "course2"
    course2.mkdir()
    for n in COURSE_00_01:
        write(alone / "honest" / n, nb00 if n == COURSE_00_01[0] else nb01)
        shutil.copy(REPO_NOTEBOOKS / n, course2 / n)
    again = G.grade(alone, tmp_path / "alone.csv", course2, timeout_s=120, cell_timeout_s=90, jobs=2, seed=3,
                    shared_data=False, progress=False)
    assert [(r.id, r.points, r.reason) for r in again[0].results.values()] == \
           [(r.id, r.points, r.reason) for r in by["honest"].results.values()]
