"""train/single.py: the single-process loop of notebook 06 (exercise 06.3); its grading cases are held to
every mutant on three seeds in test_exercises_hidden.py."""
from __future__ import annotations

import pytest
import torch

from cnclip_edu.course.exercises import loop_cases
from cnclip_edu.train.single import train_loop


def test_steps_run_past_an_epoch_with_every_group_at_the_steps_lr():
    out = loop_cases.run_loop(train_loop, n=10, batch_size=4, steps=5, warmup=2, base_lr=1e-2)
    assert len(out["返回的损失"]) == 5 and len(out["每一步"]) == 5           # 2 batches per epoch: 3 epochs
    lrs = [s["lr 每个参数组"] for s in out["每一步"]]
    assert all(len(set(step)) == 1 and len(step) == 2 for step in lrs)     # both AdamW groups, same lr
    assert lrs[0][0] == pytest.approx(1e-2 / 2)                            # warmup: (0 + 1) / 2 of base
    assert all(s["训练模式"] for s in out["每一步"])
    assert all(s["正样本矩阵"] is not None for s in out["每一步"])


def test_known_positives_false_passes_no_mask():
    out = loop_cases.run_loop(train_loop, steps=2, known_positives=False)
    assert [s["正样本矩阵"] for s in out["每一步"]] == [None, None]


def test_an_empty_loader_is_an_error_not_an_endless_loop():
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="no batch"):
        train_loop(model, [], opt, None, 3, 0.1, 0, lambda *a: 0.0, lambda *a: 0.1)
