"""Notebook 09: the grading cases drawn from a seed accept the reference and reject every mutant, for the
exercises whose hidden cases carry the edge inputs (09.5: sums above 2**24; 09.6: a fixed batch axis; 09.8: a long
query, a grayscale picture, another mean and std)."""
from __future__ import annotations

import pytest

from cnclip_edu.course import exercises as X
from cnclip_edu.course.exercises.compare import default_compare


def _first_difference(ex, answer, cases):
    for case in cases:
        try:
            diff = default_compare(case.run(ex.reference), case.run(answer))
        except Exception as err:  # noqa: BLE001 - a mutant that crashes is rejected
            return f"{case.label}: {type(err).__name__}"
        if diff:
            return f"{case.label}: {diff}"
    return None


@pytest.mark.parametrize("exercise_id", ["09.5", "09.6", "09.8"])
def test_hidden_cases_accept_the_reference_and_reject_every_mutant(exercise_id):
    ex = X.get(exercise_id)
    assert ex.builds and ex.hidden is not None
    for seed in (0, 1, 2):
        cases = ex.hidden(seed)
        assert cases and all(c.label for c in cases)
        assert _first_difference(ex, ex.reference, cases) is None
    missed = [name for name, wrong in ex.mutants().items() if _first_difference(ex, wrong, ex.hidden(0)) is None]
    assert not missed, f"{exercise_id}: hidden cases (seed 0) accept {missed}"
