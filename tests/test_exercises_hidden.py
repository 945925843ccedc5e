"""Every exercise's grading cases (`hidden`, drawn from a per-student seed): the reference passes them for
several seeds, and they reject the exercise's mutants — as many as the exercise's rule below asks.

Default: the reference on seeds 0 and 1; at least half the mutants rejected on seed 0 (the public cases
already reject every one, tests/test_exercises.py). Exercises whose hidden draw carries edge inputs the
public cases lack are held to more."""
from __future__ import annotations

import pytest

from cnclip_edu.course import exercises as X
from hidden_cases import first_difference

DEFAULT = {"seeds": (0, 1), "mutant_seeds": (0,), "per_mutant": 1, "share": 0.5}
# id or notebook prefix -> the rule; "per_mutant": of mutant_seeds, how many must reject each counted mutant
RULES = {
    "00": {"seeds": (0, 1, 2), "mutant_seeds": (0, 1, 2), "per_mutant": 2, "share": 1.0},
    "06.3": {"seeds": (0, 1, 2), "mutant_seeds": (0, 1, 2), "per_mutant": 3, "share": 1.0},
    "06.6": {"seeds": (0, 1, 2), "mutant_seeds": (0, 1, 2), "per_mutant": 3, "share": 1.0},  # kill-and-resume
    "06.7": {"seeds": (0, 1, 2), "mutant_seeds": (0, 1, 2), "per_mutant": 3, "share": 1.0},
    "09.5": {"seeds": (0, 1, 2), "mutant_seeds": (0,), "per_mutant": 1, "share": 1.0},  # sums above 2**24
    "09.6": {"seeds": (0, 1, 2), "mutant_seeds": (0,), "per_mutant": 1, "share": 1.0},   # a fake clock
    "09.7": {"seeds": (0, 1, 2), "mutant_seeds": (0,), "per_mutant": 1, "share": 1.0},
    "09.8": {"seeds": (0, 1), "mutant_seeds": (0,), "per_mutant": 1, "share": 1.0},   # a pathlib.Path case
    "09.9": {"seeds": (0, 1, 2), "mutant_seeds": (0,), "per_mutant": 1, "share": 1.0},
    "10": {"seeds": (0, 1, 2), "mutant_seeds": (0,), "per_mutant": 1, "share": 0.5},
}
IDS = [i for i in X.all_ids() if X.get(i).hidden is not None]


def _rule(exercise_id: str) -> dict:
    return {**DEFAULT, **RULES.get(exercise_id[:2], {}), **RULES.get(exercise_id, {})}


@pytest.mark.parametrize("exercise_id", IDS)
def test_hidden_cases_accept_the_reference_and_reject_mutants(exercise_id):
    ex, rule = X.get(exercise_id), _rule(exercise_id)
    assert ex.builds, f"{exercise_id}: no builds (the grader's tripwires)"
    for seed in rule["seeds"]:
        cases = ex.hidden(seed)
        assert cases and all(c.label for c in cases), f"{exercise_id}: seed {seed} draws no labelled case"
        diff = first_difference(ex, ex.reference, cases)
        assert diff is None, f"{exercise_id}: the reference fails its own hidden case (seed {seed}): {diff}"
    mutants = ex.mutants() if ex.mutants else {}
    needed = len(mutants) if rule["share"] >= 1 else int(len(mutants) * rule["share"])
    caught, missed = 0, []
    for name, wrong in mutants.items():
        if caught >= needed:  # what the rule asks is proven; the rest would only cost time (05.3 spawns workers)
            break
        hits = sum(first_difference(ex, wrong, ex.hidden(s)) is not None for s in rule["mutant_seeds"])
        if hits >= rule["per_mutant"]:
            caught += 1
        else:
            missed.append(name)
    assert caught >= needed, (f"{exercise_id}: hidden cases reject {caught} mutants, the rule asks {needed}; "
                              f"let through: {missed}")
