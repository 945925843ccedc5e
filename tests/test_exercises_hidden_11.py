"""Notebook 11: every 11.6 mutant (greedy generation of a left-padded batch) is rejected by the hidden draw of
several seeds, not only by the public cases (every exercise's grading cases: test_exercises_hidden.py)."""
from __future__ import annotations

from cnclip_edu.course import exercises as X
from hidden_cases import first_difference as _run


def test_every_11_6_mutant_is_caught_by_the_hidden_cases_of_several_seeds():
    ex = X.get("11.6")
    for seed in range(3):
        assert _run(ex, ex.reference, ex.hidden(seed)) is None, f"seed {seed}: the reference"
        for name, wrong in ex.mutants().items():
            assert _run(ex, wrong, ex.hidden(seed)) is not None, f"seed {seed}: {name}"


def test_every_11_7_mutant_is_caught_by_the_hidden_cases_of_several_seeds():
    ex = X.get("11.7")
    for seed in range(3):
        assert _run(ex, ex.reference, ex.hidden(seed)) is None, f"seed {seed}: the reference"
        for name, wrong in ex.mutants().items():
            assert _run(ex, wrong, ex.hidden(seed)) is not None, f"seed {seed}: {name}"
