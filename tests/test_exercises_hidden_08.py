"""Notebook 08: every 08.4 mutant is rejected by the hidden draw of several seeds (every exercise's
grading cases: test_exercises_hidden.py)."""
from __future__ import annotations

from cnclip_edu.course import exercises as X
from hidden_cases import first_difference as _run


def test_every_08_4_mutant_is_caught_by_the_hidden_cases_of_several_seeds():
    ex = X.get("08.4")
    for seed in range(5):
        for name, wrong in ex.mutants().items():
            assert _run(ex, wrong, ex.hidden(seed)) is not None, f"seed {seed}: {name}"

