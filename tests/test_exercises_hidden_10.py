"""Notebook 10: 10.2 accepts correct splits that shuffle differently from the library (it grades
properties, not our RNG call); 10.3's library threshold follows its stated rule. Every exercise's
grading cases: test_exercises_hidden.py."""
from __future__ import annotations

import pytest

from cnclip_edu.course import exercises as X
from cnclip_edu.course.exercises import nb10
from hidden_cases import first_difference as _run


@pytest.mark.parametrize("name", list(nb10._split_alternatives()))
def test_10_2_accepts_a_different_correct_shuffle(name):
    answer = nb10._split_alternatives()[name]
    ex = X.get("10.2")
    assert _run(ex, answer, ex.cases()) is None
    assert _run(ex, answer, ex.hidden(0)) is None
    X.check("10.2", answer)


def test_10_2_rejects_a_split_that_changes_with_the_process_hash():
    ex = X.get("10.2")
    for kind in ("hash", "set"):
        diff = _run(ex, nb10._split_mistake(kind), ex.cases())
        assert diff and "另一个 Python 进程" in diff, diff


def test_threshold_rule():
    from cnclip_edu.eval.threshold import threshold_from_valid

    scores = {1: [0.6], 2: [0.5], 3: [0.4], 4: [0.3]}
    ranked = {1: [1], 2: [9], 3: [3], 4: [9]}
    gold = {1: [1], 2: [2], 3: [3], 4: [4]}
    # candidates -1, .35, .45, .55, 1 are right on 2, 3, 2, 3, 2 captions: .35 and .55 tie, the larger wins
    assert threshold_from_valid(scores, ranked, gold) == pytest.approx(0.55)
    assert threshold_from_valid({1: [0.2]}, {1: [5]}, {1: [4, 5]}) == -1.0
    assert threshold_from_valid({1: [0.2]}, {1: [5]}, {1: [4]}) == 1.0
    with pytest.raises(ValueError):
        threshold_from_valid({}, {}, {})
