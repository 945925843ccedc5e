"""Notebook 07: every 07.4 mutant (inverting the gold annotation) and every 07.5 mutant (why a top-1
missed) is rejected by the hidden draw of several seeds, not only by the public cases (every exercise's
grading cases: test_exercises_hidden.py)."""
from __future__ import annotations

from cnclip_edu.course import exercises as X
from hidden_cases import first_difference as _run


def test_every_07_4_mutant_is_caught_by_the_hidden_cases_of_several_seeds():
    ex = X.get("07.4")
    for seed in range(5):
        assert _run(ex, ex.reference, ex.hidden(seed)) is None, f"seed {seed}: the reference"
        for name, wrong in ex.mutants().items():
            assert _run(ex, wrong, ex.hidden(seed)) is not None, f"seed {seed}: {name}"


def test_every_07_5_mutant_is_caught_by_the_hidden_cases_of_several_seeds():
    ex = X.get("07.5")
    for seed in range(5):
        assert _run(ex, ex.reference, ex.hidden(seed)) is None, f"seed {seed}: the reference"
        for name, wrong in ex.mutants().items():
            assert _run(ex, wrong, ex.hidden(seed)) is not None, f"seed {seed}: {name}"
