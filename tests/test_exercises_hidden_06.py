"""Notebook 06: the lower bound of 06.2's clamp (1 <= s, so ln s >= 0) is graded — the public case that starts
logit_scale below 0 and the hidden draw of several seeds both reject a step that clamps only from above
(every exercise's grading cases: test_exercises_hidden.py)."""
from __future__ import annotations

from cnclip_edu.course import exercises as X
from hidden_cases import first_difference as _run

NO_LOWER_BOUND = "只截上限、没有下限：s 可以小于 1"


def test_06_2_rejects_a_clamp_without_a_lower_bound():
    ex = X.get("06.2")
    wrong = ex.mutants()[NO_LOWER_BOUND]
    assert _run(ex, wrong, [c for c in ex.cases() if "-0.5" in c.label]) is not None
    for seed in range(3):
        hidden = [c for c in ex.hidden(seed) if "0 以下" in c.label]
        assert hidden and _run(ex, ex.reference, hidden) is None, f"seed {seed}: the reference"
        assert _run(ex, wrong, hidden) is not None, f"seed {seed}: {NO_LOWER_BOUND}"
