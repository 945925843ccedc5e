"""Notebook 08: every 08.3, 08.4, 08.5 and 08.6 mutant is rejected by the hidden draw of several seeds (every
exercise's grading cases: test_exercises_hidden.py)."""
from __future__ import annotations

import pytest

from hidden_cases import assert_hidden_cases_catch_every_mutant


@pytest.mark.parametrize("exercise_id", ["08.3", "08.4", "08.5", "08.6"])
def test_every_mutant_is_caught_by_the_hidden_cases_of_several_seeds(exercise_id):
    assert_hidden_cases_catch_every_mutant(exercise_id, range(5))



def test_08_3_accepts_a_softmax_summed_in_another_order():
    """A correct answer that computes the softmax in float64 differs from the library by one unit in some
    probabilities' 6th decimal: the check (and the hidden draw) must still pass it."""
    from cnclip_edu.course import exercises as X
    from cnclip_edu.course.exercises.nb08_elevater import _elevater_mistake
    from hidden_cases import first_difference

    answer = _elevater_mistake("softmax64")
    X.check("08.3", answer)
    ex = X.get("08.3")
    for seed in range(3):
        assert first_difference(ex, answer, ex.hidden(seed)) is None, seed
