"""Notebook 06: the lower bound of 06.2's clamp (1 <= s, so ln s >= 0) is graded — the public case that starts
logit_scale below 0 and the hidden draw of several seeds both reject a step that clamps only from above
(every exercise's grading cases: test_exercises_hidden.py). And 06.5's requirement 1 (each rank on GPU
LOCAL_RANK, nccl) is graded on a CPU machine: the public probe case and the hidden draw both reject the
workers that ignore the device, pick the GPU by RANK, or never call set_device, and accept an answer that
calls set_device before init_process_group."""
from __future__ import annotations

from cnclip_edu.course import exercises as X
from hidden_cases import first_difference as _run

NO_LOWER_BOUND = "只截上限、没有下限：s 可以小于 1"


def test_06_2_rejects_a_clamp_without_a_lower_bound():
    ex = X.get("06.2")
    wrong = ex.mutants()[NO_LOWER_BOUND]
    assert _run(ex, wrong, [c for c in ex.cases() if "-0.5" in c.label]) is not None
    for seed in range(3):
        hidden = [c for c in ex.hidden(seed) if "0 以下" in c.label]
        assert hidden and _run(ex, ex.reference, hidden) is None, f"seed {seed}: the reference"
        assert _run(ex, wrong, hidden) is not None, f"seed {seed}: {NO_LOWER_BOUND}"


DEVICE_MUTANTS = ("不管 device", "按全局 RANK 选 GPU", "用了 nccl，却没有 torch.cuda.set_device")


def _set_device_first(out_dir, epochs=2, batch_size=4, lr=0.1, seed=0, n_pairs=24, device="cpu"):
    """The order the other way round (also right): the GPU first, then the process group; the probe stops there."""
    import os

    import torch
    import torch.distributed as dist

    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(f"cuda:{os.environ['LOCAL_RANK']}"))
    dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    raise AssertionError("the probe stops once the backend and the GPU are chosen")


def test_06_5_grades_the_device_requirement_on_a_cpu_machine():
    ex = X.get("06.5")
    mutants = {name: fn for name, fn in ex.mutants().items() if name.startswith(DEVICE_MUTANTS)}
    assert len(mutants) == len(DEVICE_MUTANTS)
    public = [c for c in ex.cases() if c.label.startswith("要求 1")]
    assert public and _run(ex, ex.reference, public) is None
    assert _run(ex, _set_device_first, public) is None
    for name, wrong in mutants.items():
        assert _run(ex, wrong, public) is not None, name
    for seed in range(3):
        hidden = [c for c in ex.hidden(seed) if c.label.startswith("要求 1")]
        assert hidden and _run(ex, ex.reference, hidden) is None, f"seed {seed}: the reference"
        for name, wrong in mutants.items():
            assert _run(ex, wrong, hidden) is not None, f"seed {seed}: {name}"
