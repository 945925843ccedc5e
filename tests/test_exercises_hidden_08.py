"""Notebook 08: every 08.3, 08.4 and 08.5 mutant is rejected by the hidden draw of several seeds (every
exercise's grading cases: test_exercises_hidden.py)."""
from __future__ import annotations

import pytest

from hidden_cases import assert_hidden_cases_catch_every_mutant


@pytest.mark.parametrize("exercise_id", ["08.3", "08.4", "08.5"])
def test_every_mutant_is_caught_by_the_hidden_cases_of_several_seeds(exercise_id):
    assert_hidden_cases_catch_every_mutant(exercise_id, range(5))

