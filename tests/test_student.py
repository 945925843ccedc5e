"""The student-version generator (`cnclip-edu student`): stubs, tags and cleared outputs on tiny
synthetic notebooks, each refusal named as notebook:cell:line, and the real course notebooks turned
into student versions with no marker left, one stub per solution block and no outputs."""
from __future__ import annotations

import json
import re
import stat

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from cnclip_edu.course import student as S
from cnclip_edu.course.runner import REPO_NOTEBOOKS, find_notebooks
from cnclip_edu.course import exercises as X
from cnclip_edu.course.exercises import all_ids, core

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def notebook(*cells):
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return nb


def md(text, tags=()):
    cell = new_markdown_cell(text)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def code(text, tags=(), outputs=()):
    cell = new_code_cell(text, outputs=list(outputs), execution_count=7 if outputs else None)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


TEACHER = notebook(
    code("work_dir = '../runs/course'", tags=["parameters"]),
    md("## 练习"),
    code("def square(x):\n"
         "    \"\"\"Element-wise square.\"\"\"\n"
         "    ### BEGIN SOLUTION\n"
         "    y = x * x\n"
         "    return y\n"
         "    ### END SOLUTION",
         outputs=[new_output("stream", name="stdout", text="hello\n")]),
    code('check("98.1", square)', outputs=[new_output("stream", name="stdout", text="✅ 练习 98.1 通过 (2/2)\n")]),
    code("n_patches = None  # 你的答案\n### BEGIN SOLUTION\nn_patches = (224 // 16) ** 2\n### END SOLUTION"),
    code('check("98.q1", n_patches)'),
    md("为什么？"),
    md("<details><summary>参考答案</summary>因为……</details>", tags=["solution"]),
    code("for i in range(2):\n    ### BEGIN SOLUTION\n    total = i\n    ### END SOLUTION\n"
         "check(\"98.2\", total)"),
)


def test_student_version_stubs_tags_and_clears():
    before = json.dumps(TEACHER)
    student, report = S.make_student_version(TEACHER, "98_toy.ipynb")
    assert json.dumps(TEACHER) == before, "the teacher's notebook must not be modified"
    cells = student.cells
    assert cells[2].source == ('def square(x):\n    """Element-wise square."""\n'
                               '    # 在此作答 (YOUR CODE HERE)\n    raise NotImplementedError("练习 98.1")')
    assert cells[4].source == ('n_patches = None  # 你的答案\n# 在此作答 (YOUR CODE HERE)\n'
                               'raise NotImplementedError("练习 98.q1")')
    assert cells[7].source == S.MARKDOWN_PLACEHOLDER and cells[6].source == "为什么？"
    assert cells[8].source.splitlines()[1:3] == ["    # 在此作答 (YOUR CODE HERE)",
                                                 '    raise NotImplementedError("练习 98.2")']
    tagged = [i for i, c in enumerate(cells) if S.RAISES_TAG in c.metadata.get("tags", [])]
    # check cells (3, 5, 8) and the top-level stubs (4; 8: the loop body runs at top level)
    assert tagged == [3, 4, 5, 8]
    assert cells[0].metadata["tags"] == ["parameters"] and student.metadata["kernelspec"] == KERNELSPEC
    assert all(c.outputs == [] and c.execution_count is None for c in cells if c.cell_type == "code")
    assert report.stubs == ["98.1", "98.q1", "98.2"] and report.checks == ["98.1", "98.q1", "98.2"]
    assert report.top_level_stubs == ["98.q1", "98.2"] and report.markdown_answers == 1


def test_stub_in_a_method_and_a_magic_cell_are_not_top_level():
    nb = notebook(code("%matplotlib inline\nclass Net:\n    def forward(self, x):\n        ### BEGIN SOLUTION\n"
                       "        return x\n        ### END SOLUTION"),
                  code("check('98.1', Net().forward)"))
    student, report = S.make_student_version(nb, "t.ipynb")
    assert report.top_level_stubs == [] and "tags" not in student.cells[0].metadata
    assert student.cells[1].metadata["tags"] == [S.RAISES_TAG]


@pytest.mark.parametrize("cells, where, what", [
    ([code("x = 1\n### BEGIN SOLUTION\nx = 2"), code("check('98.1', x)")], "t.ipynb:cell 1:line 2",
     "BEGIN SOLUTION without ### END SOLUTION"),
    ([md("intro"), code("x = 2\n    ### END SOLUTION"), code("check('98.1', x)")], "t.ipynb:cell 2:line 2",
     "END SOLUTION without ### BEGIN SOLUTION"),
    ([code("### BEGIN SOLUTION\nx = 2\n### BEGIN SOLUTION\n### END SOLUTION"), code("check('98.1', x)")],
     "t.ipynb:cell 1:line 3", "nested ### BEGIN SOLUTION"),
    ([md("答案\n### BEGIN SOLUTION\n42"), code("x = 1")], "t.ipynb:cell 1:line 2", "markdown cell"),
    ([code("x = None\n### BEGIN SOLUTION\nx = 2\n### END SOLUTION"), code("print(x)")], "t.ipynb:cell 1:line 2",
     "no check"),
    ([code("x = 2"), code("check('98.1', x)")], "t.ipynb:cell 2:line 1", "no solution block before it"),
    ([code("x = 2  ### BEGIN SOLUTION"), code("check('98.1', x)")], "t.ipynb:cell 1:line 1", "alone on its line"),
    ([md("<details><summary>参考答案</summary>42</details>")], "t.ipynb:cell 1", "not tagged 'solution'"),
    ([md("提示：\nEND SOLUTION")], "t.ipynb:cell 1:line 2", "markdown cell"),
    ([code("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
      code("def g():\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION"), code("check('98.1', f)")],
     "t.ipynb:cell 3:line 1", "one solution block per exercise"),
])
def test_refusals_name_notebook_cell_and_line(cells, where, what):
    with pytest.raises(S.SolutionMarkerError) as err:
        S.make_student_version(notebook(*cells), "t.ipynb")
    assert any(p.startswith(where + ":") and what in p for p in err.value.problems), err.value.problems


def test_a_code_answer_cell_is_emptied_and_may_hold_no_exercise():
    """An answer key's own experiment (a code cell tagged `solution`) prints the answer: the student gets a
    comment instead. It must not also be an exercise's block or check (it would vanish with its stub)."""
    nb = notebook(md("思考题：一只猫的概率是多少？"), code("print('P(一只猫) = 0.01')", tags=["solution"],
                                                        outputs=[{"output_type": "stream", "name": "stdout",
                                                                  "text": "P(一只猫) = 0.01\n"}]))
    student, report = S.make_student_version(nb, "t.ipynb")
    assert student.cells[1].source == S.CODE_ANSWER_PLACEHOLDER and "0.01" not in json.dumps(student)
    assert report.code_answers == 1 and "1 code answers" in report.summary()
    bad = notebook(code("x = None\n### BEGIN SOLUTION\nx = 2\n### END SOLUTION", tags=["solution"]),
                   code("check('98.1', x)"))
    with pytest.raises(S.SolutionMarkerError, match=r"t.ipynb:cell 1: a code cell tagged 'solution'"):
        S.make_student_version(bad, "t.ipynb")


def test_prose_may_name_the_markers_and_the_answer_notes():
    nb = notebook(md("答案在 `### BEGIN SOLUTION` 与 `### END SOLUTION` 之间，练习末尾折叠的“参考答案”也是。"),
                  code("x = None\n### BEGIN SOLUTION\nx = 2\n### END SOLUTION"), code("check('98.1', x)"))
    student, report = S.make_student_version(nb, "t.ipynb")
    assert student.cells[0].source == nb.cells[0].source and report.stubs == ["98.1"]


def test_unknown_exercise_id_is_refused():
    nb = notebook(code("x = None\n### BEGIN SOLUTION\nx = 2\n### END SOLUTION"), code("check('98.7', x)"))
    with pytest.raises(S.SolutionMarkerError, match=r"t.ipynb:cell 2:line 1: check\('98.7'\) names no registered"):
        S.make_student_version(nb, "t.ipynb", known_ids={"98.1"})


@pytest.fixture
def fake_ids():
    """The ids of TEACHER, registered for the test only (the CLI refuses unknown ids)."""
    fakes = [X.Exercise(i, "测试", 1, "提示", reference=1) for i in ("98.1", "98.q1", "98.2")]
    all_ids()
    for ex in fakes:
        X.register(ex)
    yield
    for ex in fakes:
        core._REGISTRY.pop(ex.id)


def test_cli_writes_one_notebook_and_refuses_without_writing(tmp_path, capsys, fake_ids):
    good, bad, out = tmp_path / "98_good.ipynb", tmp_path / "99_bad.ipynb", tmp_path / "out"
    nbformat.write(TEACHER, str(good))
    nbformat.write(notebook(code("### BEGIN SOLUTION\nx = 1")), str(bad))
    assert S.main([str(good), str(bad), "--out", str(out)]) == 1
    assert "99_bad.ipynb:cell 1:line 1: ### BEGIN SOLUTION without ### END SOLUTION" in capsys.readouterr().err
    assert not out.exists() or not list(out.iterdir()), "a refused run must write nothing"

    assert S.main([str(good), "--out", str(out)]) == 0
    assert "98_good.ipynb: 3 stubs (2 at top level), 3 checks, 1 markdown answers" in capsys.readouterr().out
    assert [p.name for p in out.iterdir()] == ["98_good.ipynb"], "no temporary file may be left"
    assert stat.S_IMODE((out / "98_good.ipynb").stat().st_mode) & 0o044 == 0o044, "readable like a plain write"
    written = nbformat.read(str(out / "98_good.ipynb"), as_version=4)
    assert 'raise NotImplementedError("练习 98.1")' in written.cells[2].source


# ----------------------------------------------------------------------------- the real notebooks
REAL = find_notebooks(REPO_NOTEBOOKS)
_MARKER = re.compile(r"(BEGIN|END)\s+SOLUTION")


@pytest.fixture(scope="module")
def real_students(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    reports = S.write_student_versions(REAL, out, set(all_ids()))
    return out, {r.name: r for r in reports}


@pytest.mark.parametrize("path", REAL, ids=[p.name for p in REAL])
def test_real_notebook_student_version(real_students, path):
    out, reports = real_students
    teacher = nbformat.read(str(path), as_version=4)
    student = nbformat.read(str(out / path.name), as_version=4)
    code_text = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    assert not _MARKER.search(code_text), f"{path.name}: a solution marker is left in a code cell"
    assert not any(S._MARKDOWN_MARKER.search(c.source) for c in student.cells), f"{path.name}: a marker line is left"
    n_blocks = sum(c.source.count("BEGIN SOLUTION") for c in teacher.cells if c.cell_type == "code")
    stubs = re.findall(r'raise NotImplementedError\("练习 ([^"]+)"\)', "\n".join(c.source for c in student.cells))
    assert len(stubs) == n_blocks == len(reports[path.name].stubs), f"{path.name}: one stub per solution block"
    assert sorted(stubs) == sorted(reports[path.name].checks), f"{path.name}: one check per stub"
    assert all(i.startswith(path.name[:2] + ".") for i in stubs), f"{path.name}: ids of another notebook {stubs}"
    assert all(not c.outputs and c.execution_count is None for c in student.cells if c.cell_type == "code")
    n_solution_md = sum(S.SOLUTION_TAG in c.metadata.get("tags", []) for c in teacher.cells if c.cell_type == "markdown")
    assert not any(S._ANSWER_NOTE.search(c.source) for c in student.cells), f"{path.name}: a 参考答案 note is left"
    assert reports[path.name].markdown_answers == n_solution_md
    assert student.metadata["kernelspec"] == teacher.metadata["kernelspec"]
    assert len(student.cells) == len(teacher.cells)
