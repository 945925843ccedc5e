"""Notebook 10: the grading cases drawn from a seed accept the reference and reject the mutants; 10.2
accepts correct splits that shuffle differently from the library (it grades properties, not our RNG
call); 10.3's library threshold follows its stated rule."""
from __future__ import annotations

import pytest

from cnclip_edu.course import exercises as X
from cnclip_edu.course.exercises import nb10
from cnclip_edu.course.exercises.compare import default_compare

IDS = [i for i in X.all_ids() if i[:2] == "10"]


def _run(ex, answer, cases):
    compare = ex.compare or default_compare
    for case in cases:
        diff = compare(case.run(ex.reference), case.run(answer))
        if diff:
            return f"{case.label}: {diff}"
    return None


@pytest.mark.parametrize("exercise_id", IDS)
def test_hidden_cases_accept_the_reference_and_reject_mutants(exercise_id):
    ex = X.get(exercise_id)
    assert ex.builds and ex.hidden is not None, f"{exercise_id}: no builds / hidden"
    for seed in (0, 1, 2):
        cases = ex.hidden(seed)
        assert cases and all(c.label for c in cases)
        assert _run(ex, ex.reference, cases) is None
    caught = 0
    for name, wrong in ex.mutants().items():
        try:
            caught += _run(ex, wrong, ex.hidden(0)) is not None
        except Exception:
            caught += 1
    assert caught >= len(ex.mutants()) // 2, f"{exercise_id}: hidden cases catch only {caught} mutants"


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
