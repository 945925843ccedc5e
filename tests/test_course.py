"""The course runner: order, parameters, metrics, summary, and how a failure is reported."""
from __future__ import annotations

import json

import nbformat
import pytest

from cnclip_edu.course import runner as course


def _write_nb(path, body: str, params: str = "work_dir = 'x'\nscale = 1"):
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


@pytest.fixture()
def nb_dir(tmp_path):
    d = tmp_path / "nbs"
    d.mkdir()
    _write_nb(d / "01_a.ipynb", "from cnclip_edu.course import record\nrecord('toy_a', 0.5 * scale, work_dir)")
    _write_nb(d / "02_b.ipynb", "raise ValueError('boom in cell two')")
    _write_nb(d / "03_c.ipynb", "from cnclip_edu.course import record\nrecord('toy_c', 1, work_dir)")
    return d


def test_record_and_load_metrics(tmp_path):
    assert course.record("x", 0.25, tmp_path) == 0.25
    course.record("y", 2, tmp_path)
    assert course.load_metrics(tmp_path) == {"x": 0.25, "y": 2.0}


def test_find_notebooks_by_prefix(nb_dir):
    assert [p.name for p in course.find_notebooks(nb_dir)] == ["01_a.ipynb", "02_b.ipynb", "03_c.ipynb"]
    assert [p.name for p in course.find_notebooks(nb_dir, ["03", "01"])] == ["01_a.ipynb", "03_c.ipynb"]
    with pytest.raises(SystemExit, match="no notebook matches '99'"):
        course.find_notebooks(nb_dir, ["99"])


def test_course_runs_passes_parameters_and_summarises(nb_dir, tmp_path, capfd):
    work = tmp_path / "work"
    rc = course.main(["--notebooks-dir", str(nb_dir), "--notebooks", "01", "--work-dir", str(work), "-p", "scale", "3"])
    assert rc == 0
    metrics = json.loads((work / "metrics.json").read_text())
    assert metrics["toy_a"] == 1.5  # parameter reached the notebook
    assert "01_a_wall_s" in metrics and "course_wall_s" in metrics
    out, err = capfd.readouterr()  # capfd: the kernel's own stderr too
    assert "01_a.ipynb" in out and "toy_a=1.5" in out and "course_wall_s" in out
    assert "without encryption" not in err  # ipykernel's per-start warning is kept out of the progress bar
    assert (work / "executed" / "01_a.ipynb").exists() and (work / "summary.md").exists()


def test_summary_hides_only_the_runners_own_wall_time(tmp_path):
    res = course.NotebookResult("06_train.ipynb", "ok", 12.0, tmp_path / "06_train.ipynb",
                                {"06_train_wall_s": 12.0, "train_wall_s": 9.5, "train_final_loss": 0.36})
    row = next(line for line in course.format_summary([res], 12.5).splitlines() if line.startswith("06_train"))
    assert "train_wall_s=9.5" in row and "train_final_loss=0.36" in row and "06_train_wall_s" not in row


def test_course_stops_at_failure_and_names_cell_and_file(nb_dir, tmp_path, capsys):
    work = tmp_path / "work"
    rc = course.main(["--notebooks-dir", str(nb_dir), "--work-dir", str(work)])
    assert rc == 1
    out = capsys.readouterr().out
    assert "02_b.ipynb failed: ValueError: boom in cell two" in out
    assert str(work / "executed" / "02_b.ipynb") in out
    assert "toy_c" not in course.load_metrics(work)  # stopped before 03
