"""Notebook 04: labels made on the CPU (a bare `torch.arange(N)`) are right on CPU tensors and raise on a GPU.
04.1 and 04.4 catch them on a machine without a GPU too: one public and one grading case run the answer
on features on the `meta` device, which refuses to meet a CPU tensor in one op, as a GPU does."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnclip_edu.course import exercises as X
from hidden_cases import first_difference


def _cpu_label_mutant(ex):
    wrong = [m for name, m in ex.mutants().items() if name.startswith("labels 建在 CPU 上")]
    assert len(wrong) == 1, list(ex.mutants())
    return wrong[0]


@pytest.mark.parametrize("exercise_id", ["04.1", "04.4"])
def test_hidden_cases_catch_labels_made_on_the_cpu(exercise_id):
    ex = X.get(exercise_id)
    wrong = _cpu_label_mutant(ex)
    for seed in (0, 1, 2):
        cases = [c for c in ex.hidden(seed) if c.label == "特征不在 CPU 上"]
        assert len(cases) == 1, [c.label for c in ex.hidden(seed)]
        assert first_difference(ex, ex.reference, cases) is None
        assert first_difference(ex, wrong, cases) is not None, f"seed {seed}: CPU labels passed"
    # everything else the mutant gets right: only the other-device case tells it apart
    others = [c for c in ex.hidden(0) if c.label != "特征不在 CPU 上"]
    assert first_difference(ex, wrong, others) is None


def test_labels_moved_to_the_features_device_pass_04_1():
    def clip_loss(i, t, s):
        logits = s * i @ t.T
        labels = torch.arange(len(logits)).to(logits.device)   # made on the CPU, then moved: right
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    X.check("04.1", clip_loss)
    for seed in (0, 1):
        assert first_difference(X.get("04.1"), clip_loss, X.get("04.1").hidden(seed)) is None
