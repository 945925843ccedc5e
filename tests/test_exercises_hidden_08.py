"""Notebook 08: every 08.3, 08.4 and 08.5 mutant is rejected by the hidden draw of several seeds (every
exercise's grading cases: test_exercises_hidden.py)."""
from __future__ import annotations

import pytest

from cnclip_edu.course import exercises as X
from hidden_cases import first_difference as _run


@pytest.mark.parametrize("exercise_id", ["08.3", "08.4", "08.5"])
def test_every_mutant_is_caught_by_the_hidden_cases_of_several_seeds(exercise_id):
    ex = X.get(exercise_id)
    for seed in range(5):
        for name, wrong in ex.mutants().items():
            assert _run(ex, wrong, ex.hidden(seed)) is not None, f"seed {seed}: {name}"

