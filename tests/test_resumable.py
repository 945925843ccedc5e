"""train/resumable.py: the checkpoint save and resume of notebook 06 (exercises 06.6, 06.7), checked by
kill-and-resume against the uninterrupted run; the grading runs are in course/exercises/resume_cases.py."""
from __future__ import annotations

import pytest
import torch

from cnclip_edu.course.exercises import resume_cases as R
from cnclip_edu.train.resumable import resume_from, save_checkpoint


@pytest.mark.parametrize("kw", [dict(kill_after=5), dict(kill_after=None, kill_in_save=2),
                                dict(kill_after=3, train_wrapped=True),
                                dict(steps=9, every=3, kill_after=7, resume_wrapped=True)],
                         ids=["between-saves", "during-a-save", "ddp-then-plain", "plain-then-ddp"])
def test_kill_and_resume_equals_the_uninterrupted_run_bit_for_bit(kw):
    out = R.kill_and_resume(save_checkpoint, resume_from, **kw)
    assert out["训练被杀掉了"] and out["续训"] == "顺利"
    assert out["与不中断的训练逐位相同"]
    assert out["检查点里的键"] == ["model", "optimizer", "rng_state", "step"]
    assert not any(k.startswith("module.") for k in out["检查点里模型参数的名字"])


def test_a_kill_during_the_write_leaves_the_previous_checkpoint_whole(tmp_path):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, model, opt, 3)
    with pytest.raises(R.Killed), R._dying_save(1):
        save_checkpoint(path, model, opt, 4)
    assert resume_from(path, torch.nn.Linear(2, 2), torch.optim.AdamW(model.parameters())) == 3


def test_the_resumed_rng_continues_where_it_was(tmp_path):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(5)
    save_checkpoint(tmp_path / "c.pt", model, opt, 0)
    expected = torch.rand(3)
    torch.manual_seed(99)
    resume_from(tmp_path / "c.pt", model, opt)
    assert torch.equal(torch.rand(3), expected)


def test_the_uninterrupted_run_differs_from_a_run_that_skips_a_step():
    """The kill-and-resume comparison is sharp: one step less changes the parameters."""
    a, b = R.uninterrupted(0, 8), R.uninterrupted(0, 7)
    assert not all(torch.equal(a[k], b[k]) for k in a)
