"""Notebook 11: every 11.7 mutant (greedy generation of a left-padded batch) and every 11.4 mutant (one decoder
block) is rejected by the hidden draw of several seeds, not only by the public cases (every exercise's grading
cases: test_exercises_hidden.py)."""
from __future__ import annotations

import pytest

from hidden_cases import assert_hidden_cases_catch_every_mutant


@pytest.mark.parametrize("exercise_id", ["11.7", "11.4"])
def test_every_mutant_is_caught_by_the_hidden_cases_of_several_seeds(exercise_id):
    assert_hidden_cases_catch_every_mutant(exercise_id, range(3))
