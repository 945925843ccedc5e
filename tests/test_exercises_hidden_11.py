"""Notebook 11: every mutant of 11.9 (greedy generation of a left-padded batch), 11.5 (one decoder block), 11.8 (one
training step) and 11.3 (the MLP projector) is rejected by the hidden draw of several seeds, not only by the public
cases (every exercise's grading cases: test_exercises_hidden.py)."""
from __future__ import annotations

import pytest

from hidden_cases import assert_hidden_cases_catch_every_mutant


@pytest.mark.parametrize("exercise_id", ["11.9", "11.5", "11.8", "11.3"])
def test_every_mutant_is_caught_by_the_hidden_cases_of_several_seeds(exercise_id):
    assert_hidden_cases_catch_every_mutant(exercise_id, range(3))
