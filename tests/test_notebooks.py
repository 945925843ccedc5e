"""Every course notebook, executed end to end with papermill in one shared work folder, in order,
exactly as `make course` runs them (`course_run` in conftest.py, after the other tests); then the metrics each notebook records are checked against the
floors of DESIGN §6 and the training issue. Each notebook also runs on its own, so one failure does
not hide the others: we keep going and report every notebook."""
from __future__ import annotations

import json
import math
import re
from collections import Counter

import pytest

from cnclip_edu.course import runner as course
from cnclip_edu.course.exercises import all_ids

NOTEBOOKS = course.find_notebooks(course.REPO_NOTEBOOKS)

# metric -> (lowest allowed, highest allowed); checked for the notebook that records it.
# Wall times are recorded (and shown in the course summary) but never bounded here: how fast a shared
# CI machine runs is not a property of the code. Speed is measured in bench/ (docs/benchmarks.md).
FLOORS: dict[str, dict[str, tuple[float, float]]] = {
    # finetune (section 12): the shipped course model on the renamed-colour toy world, 120 steps, lr 1e-4, image tower
    # frozen. Measured on the shipped model before: renamed 0.020, original 0.469; after 100 / 150 steps: renamed
    # 0.216 / 0.358, original 0.292 / 0.263 (forgetting, which the notebook shows and explains)
    "06": {"train_wall_s": (0, math.inf), "train_final_loss": (0, 10),
           "finetune_renamed_t2i_r1_before": (0, 0.1), "finetune_renamed_t2i_r1": (0.15, 1),
           "finetune_original_t2i_r1_before": (0.35, 1), "finetune_original_t2i_r1": (0, 1)},
    "07": {"toy_t2i_r1": (0.40, 1), "toy_t2i_r5": (0.85, 1), "toy_i2t_r1": (0, 1), "toy_i2t_r5": (0, 1),
           "toy_t2i_mean_recall": (0, 1)},
    "08": {"toy_zs_shape_acc": (0, 1), "toy_zs_color_acc": (0.95, 1), "toy_zs_combo_seen_acc": (0.80, 1),
           "toy_zs_combo_heldout_acc": (0.25, 1)},
    # int8 drops = fp32 minus int8 on the toy world (negative: int8 happened to score higher); the aim is
    # <= 0.01 absolute; measured on the shipped course model: R@1 0.0017, zero-shot 0 (notebook 09).
    "09": {"onnx_max_abs_diff": (0, 1e-4), "onnx_int8_t2i_r1_drop": (-0.05, 0.01),
           "onnx_int8_zs_acc_drop": (-0.05, 0.01)},
    # your own data (18 sample photos, 80 steps from the shipped course model): measured valid R@1 0.41, R@5 0.82,
    # train R@1 0.87 (one of 17 valid captions is 0.06 of R@1); before finetuning it sits at chance
    # (1/17 = 0.059), as the notebook's prose says
    "10": {"own_valid_t2i_r1_before": (0, 0.2), "own_valid_t2i_r1": (0.25, 1), "own_valid_t2i_r5": (0.6, 1),
           "own_train_t2i_r1": (0.7, 1)},
    # from CLIP to a chat model (3000 canvases, 200 + 100 + 900 steps, the projector reading the ViT's first block):
    # the default run (seed 0) measured seen 0.733 (colour 0.77), held-out shape 0.65 vs 0.125 text-only (+52.5
    # points), caption exact 0.925; the same recipe on one thread (float sums in another order) and other seeds:
    # seed 0 0.74 / 0.77 / held-out 0.63 vs 0.125 / caption 0.92; seed 1 0.724 / 0.68 / 0.48 vs 0.125 / 0.93;
    # seed 2 0.706 / 0.83 / 0.49 vs 0.0 / 0.82. Floors sit below the lowest of these.
    "11": {"mllm_vqa_seen_acc": (0.65, 1), "mllm_vqa_seen_color_acc": (0.6, 1), "mllm_caption_exact_match": (0.7, 1),
           "mllm_vqa_heldout_shape_acc": (0.4, 1), "mllm_vqa_heldout_shape_text_only_acc": (0, 0.5),
           # since the decoder primer and exercise 11.5 were added (2026-12-06) the default run prints held-out shape
           # 0.615 with the image vs 0.375 text-only (gain 0.24; two runs): text-only now "guesses" 3 of the 8
           # held-out combinations instead of 1 (the notebook explains why text-only is luck per combination)
           "mllm_vqa_heldout_shape_gain": (0.2, 1),
           # issue 25's metrics (recipe.binding_records). One-thread runs of the recipe, seeds 0 / 1 / 2
           # (bench/bench_mllm_binding.py, docs/benchmarks.md mllm-binding): questions naming one shape on canvases
           # with 1 / 2 / 3 shapes 0.996 / 0.488 / 0.407, 1.0 / 0.54 / 0.486, 1.0 / 0.589 / 0.526; per type 形状 0.70 /
           # 0.74 / 0.64, 大小 0.86 each, 位置 0.72 / 0.78 / 0.69, 数量 1.0 each, 有无 0.60 / 0.50 / 0.43, 左右 0.53 /
           # 0.51 / 0.49 (有无 and 左右 are at chance: these floors only catch a broken run). Floors sit below the lowest.
           "mllm_vqa_1shape_acc": (0.9, 1), "mllm_vqa_2shapes_acc": (0.35, 1), "mllm_vqa_3shapes_acc": (0.25, 1),
           "mllm_vqa_seen_shape_acc": (0.5, 1), "mllm_vqa_seen_size_acc": (0.7, 1),
           "mllm_vqa_seen_position_acc": (0.55, 1), "mllm_vqa_seen_count_acc": (0.9, 1),
           "mllm_vqa_seen_exists_acc": (0.3, 1), "mllm_vqa_seen_left_right_acc": (0.35, 1)},
}

pytestmark = pytest.mark.notebooks


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes_and_meets_floors(course_run, nb):
    work, results = course_run
    assert nb.name[:2] in results, f"{nb.name} was not run (CNCLIP_COURSE_SELECT leaves it out)"
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


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_check_of_the_solution_notebook_passes_once(course_run, nb):
    """The teacher's notebook passes each of its registered exercises exactly once (a notebook with no
    exercises registered prints no ✅ at all)."""
    work, results = course_run
    res = results[nb.name[:2]]
    assert res.status == "ok", f"{nb.name} failed: {res.error}"
    executed = json.loads(res.output_path.read_text(encoding="utf-8"))
    text = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", [])
                   if o.get("output_type") == "stream")
    passed = Counter(m.group(1) for m in re.finditer(r"^✅ 练习 (\S+) 通过 \((\d+)/(\d+)\)$", text, flags=re.M)
                     if m.group(2) == m.group(3))
    registered = Counter(i for i in all_ids() if i.split(".")[0] == nb.name[:2])
    assert passed == registered, (f"{nb.name}: ✅ printed {dict(passed)}, registered {sorted(registered)} "
                                  f"(each registered exercise must pass exactly once)")
