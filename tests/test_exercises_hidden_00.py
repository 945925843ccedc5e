"""Notebook 00: exercise 00.3's fake world refuses a caption that is not in the training phrasing
(the grading cases of every exercise: test_exercises_hidden.py)."""
from __future__ import annotations

import pytest

from cnclip_edu.course import exercises as X


def test_probe_rank_refuses_a_caption_outside_the_training_phrasing():
    ex = X.get("00.3")
    with pytest.raises(X.ExerciseFailed) as err:
        X.check("00.3", ex.mutants()["描述没有用训练数据的句式"])
    assert "不是训练数据的句式" in str(err.value)
