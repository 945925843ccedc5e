"""Notebook 08: the grading cases drawn from a seed accept the reference and reject the mutants
(the grader, not these cases, turns `builds` into tripwires)."""
from __future__ import annotations

import pytest

from cnclip_edu.course import exercises as X
from cnclip_edu.course.exercises.compare import default_compare

IDS = [i for i in X.all_ids() if i[:2] == "08" and X.get(i).hidden is not None]


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
    assert ex.builds, f"{exercise_id}: no builds"
    for seed in (0, 1):
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


def test_every_08_4_mutant_is_caught_by_the_hidden_cases_of_several_seeds():
    ex = X.get("08.4")
    for seed in range(5):
        for name, wrong in ex.mutants().items():
            assert _run(ex, wrong, ex.hidden(seed)) is not None, f"seed {seed}: {name}"

