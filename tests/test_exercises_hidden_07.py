"""Notebook 07: every 07.4 mutant (inverting the gold annotation), every 07.5 mutant (the pieces joined) and every 07.6 mutant (why a top-1
missed) and every 07.7 mutant (a minimal IVF search) is rejected by the hidden draw of several seeds, not only by the public cases (every exercise's
grading cases: test_exercises_hidden.py)."""
from __future__ import annotations

import pytest

from hidden_cases import assert_hidden_cases_catch_every_mutant


@pytest.mark.parametrize("exercise_id", ["07.4", "07.6", "07.7", "07.5"])
def test_every_mutant_is_caught_by_the_hidden_cases_of_several_seeds(exercise_id):
    assert_hidden_cases_catch_every_mutant(exercise_id, range(5))
