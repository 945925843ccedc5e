"""Every course notebook, executed end to end with papermill in one shared work folder, in order,
exactly as `make course` runs them; then the metrics each notebook records are checked against the
floors of DESIGN §6 and the training issue. Each notebook also runs on its own, so one failure does
not hide the others: we keep going and report every notebook."""
from __future__ import annotations

import json
import math

import pytest

from cnclip_edu.course import runner as course

NOTEBOOKS = course.find_notebooks(course.REPO_NOTEBOOKS)

# metric -> (lowest allowed, highest allowed); checked for the notebook that records it.
# Wall times are recorded (and shown in the course summary) but never bounded here: how fast a shared
# CI machine runs is not a property of the code. Speed is measured in bench/ (docs/benchmarks.md).
FLOORS: dict[str, dict[str, tuple[float, float]]] = {
    "06": {"train_wall_s": (0, math.inf), "train_final_loss": (0, 10)},
    "07": {"toy_t2i_r1": (0.40, 1), "toy_t2i_r5": (0.85, 1), "toy_i2t_r1": (0, 1), "toy_i2t_r5": (0, 1),
           "toy_t2i_mean_recall": (0, 1)},
    "08": {"toy_zs_shape_acc": (0, 1), "toy_zs_color_acc": (0.95, 1), "toy_zs_combo_seen_acc": (0.80, 1),
           "toy_zs_combo_heldout_acc": (0.25, 1)},
    # int8 drops = fp32 minus int8 on the toy world (negative: int8 happened to score higher); the aim is
    # <= 0.01 absolute; measured on the shipped course model: R@1 0.0017, zero-shot 0 (notebook 09, 2 CPU cores).
    "09": {"onnx_max_abs_diff": (0, 1e-4), "onnx_int8_t2i_r1_drop": (-0.05, 0.01),
           "onnx_int8_zs_acc_drop": (-0.05, 0.01)},
}

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def course_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("course")
    results = {nb.name[:2]: course.run_notebook(nb, work, {}) for nb in NOTEBOOKS}
    return work, results


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes_and_meets_floors(course_run, nb):
    work, results = course_run
    res = results[nb.name[:2]]
    assert res.status == "ok", f"{nb.name} failed: {res.error}\nexecuted notebook: {res.output_path}"
    executed = json.loads(res.output_path.read_text(encoding="utf-8"))
    figures = sum("image/png" in o.get("data", {}) for c in executed["cells"] for o in c.get("outputs", []))
    assert figures >= 1, f"{nb.name}: the executed notebook shows no figure (plots must render inline)"
    metrics = course.load_metrics(work)
    for name, (lo, hi) in FLOORS.get(nb.name[:2], {}).items():
        assert name in res.metrics, f"{nb.name} did not record {name}"
        value = metrics[name]
        assert math.isfinite(value) and lo <= value <= hi, f"{nb.name}: {name}={value} outside [{lo}, {hi}]"
