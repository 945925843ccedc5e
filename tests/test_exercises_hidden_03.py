"""Notebook 03: the grading cases drawn from a seed accept the reference and reject the mutants, and
03.6's check sees the arguments of the student's `torch.load` / `load_state_dict` (a bare
`torch.load(path)` is refused even where torch's default happens to be safe)."""
from __future__ import annotations

import pytest
import torch

from cnclip_edu.course import exercises as X
from cnclip_edu.course.exercises.compare import default_compare

IDS = [i for i in X.all_ids() if i[:2] == "03" and X.get(i).hidden is not None]


def _run(ex, answer, cases):
    compare = ex.compare or default_compare
    for case in cases:
        diff = compare(case.run(ex.reference), case.run(answer))
        if diff:
            return f"{case.label}: {diff}"
    return None


@pytest.mark.parametrize("exercise_id", IDS)
def test_hidden_cases_accept_the_reference_and_reject_mutants(exercise_id):
    ex = X.get(exercise_id)
    assert ex.builds, f"{exercise_id}: no builds"
    for seed in (0, 1):
        cases = ex.hidden(seed)
        assert cases and all(c.label for c in cases)
        assert _run(ex, ex.reference, cases) is None
    caught = 0
    for name, wrong in ex.mutants().items():
        try:
            caught += _run(ex, wrong, ex.hidden(0)) is not None
        except Exception:
            caught += 1
    assert caught >= len(ex.mutants()) // 2, f"{exercise_id}: hidden cases catch only {caught} mutants"


def _bare_load(model, path):
    from cnclip_edu.model.checkpoint import normalize_keys

    model.load_state_dict(normalize_keys(torch.load(path)["state_dict"]), strict=True)
    return model


def test_03_6_refuses_a_bare_torch_load_and_says_why():
    with pytest.raises(X.ExerciseFailed, match="weights_only=True") as err:
        X.check("03.6", _bare_load)
    assert "2.6" in str(err.value) and "map_location" in str(err.value)


def test_03_6_record_restores_load_state_dict():
    from cnclip_edu.course.exercises import nb03

    before = torch.nn.Module.load_state_dict
    assert nb03._explicit_arguments(nb03._library_load).startswith("weights_only=True")
    assert torch.nn.Module.load_state_dict is before
