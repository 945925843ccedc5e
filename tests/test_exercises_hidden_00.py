"""Notebook 00: the grading cases drawn from a seed accept the reference and reject the mutants, and
exercise 00.3's fake world refuses a caption that is not in the training phrasing."""
from __future__ import annotations

import pytest

from cnclip_edu.course import exercises as X
from cnclip_edu.course.exercises.compare import default_compare

IDS = [i for i in X.all_ids() if i[:2] == "00"]


def _run(ex, answer, cases):
    compare = ex.compare or default_compare
    for case in cases:
        diff = compare(case.run(ex.reference), case.run(answer))
        if diff:
            return f"{case.label}: {diff}"
    return None


@pytest.mark.parametrize("exercise_id", IDS)
def test_hidden_cases_accept_the_reference_and_reject_every_mutant(exercise_id):
    ex = X.get(exercise_id)
    assert ex.builds and ex.hidden is not None, f"{exercise_id}: no builds / hidden"
    for seed in (0, 1, 2):
        cases = ex.hidden(seed)
        assert cases and all(c.label for c in cases)
        assert _run(ex, ex.reference, cases) is None
    for name, wrong in ex.mutants().items():
        caught = 0
        for seed in (0, 1, 2):
            try:
                caught += _run(ex, wrong, ex.hidden(seed)) is not None
            except Exception:
                caught += 1
        assert caught >= 2, f"{exercise_id}: hidden cases let the mutant {name!r} pass for {3 - caught} of 3 seeds"


def test_probe_rank_refuses_a_caption_outside_the_training_phrasing():
    ex = X.get("00.3")
    with pytest.raises(X.ExerciseFailed) as err:
        X.check("00.3", ex.mutants()["描述没有用训练数据的句式"])
    assert "不是训练数据的句式" in str(err.value)
