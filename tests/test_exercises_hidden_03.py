"""Notebook 03: 03.7's check sees the arguments of the student's `torch.load` / `load_state_dict` (a bare
`torch.load(path)` is refused even where torch's default happens to be safe). Every exercise's grading
cases: test_exercises_hidden.py."""
from __future__ import annotations

import pytest
import torch

from cnclip_edu.course import exercises as X


def _bare_load(model, path):
    from cnclip_edu.model.checkpoint import normalize_keys

    obj = torch.load(path)                     # wrapped checkpoint or bare state_dict, both accepted
    model.load_state_dict(normalize_keys(obj.get("state_dict", obj)), strict=True)
    return model


def test_03_6_refuses_a_bare_torch_load_and_says_why():
    with pytest.raises(X.ExerciseFailed, match="weights_only=True") as err:
        X.check("03.7", _bare_load)
    assert "2.6" in str(err.value) and "map_location" in str(err.value)


def test_03_6_record_restores_load_state_dict():
    from cnclip_edu.course.exercises import nb03_checkpoint

    before = torch.nn.Module.load_state_dict
    assert nb03_checkpoint._explicit_arguments(nb03_checkpoint._library_load).startswith("weights_only=True")
    assert torch.nn.Module.load_state_dict is before


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_03_8_hidden_draw_rejects_every_mutant(seed):
    """The whole text tower (03.9): every seed's hidden configuration tells each plausible wrong module apart
    (names, table sizes, the embedding LayerNorm's eps), and the reference passes it."""
    from hidden_cases import first_difference

    ex = X.get("03.9")
    cases = ex.hidden(seed)
    assert first_difference(ex, ex.reference, cases) is None
    let_through = [name for name, wrong in ex.mutants().items() if first_difference(ex, wrong, cases) is None]
    assert not let_through, let_through


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_03_5_hidden_draw_rejects_every_mutant(seed):
    """Which tower lost the information (03.5): every seed's hidden draw (rows other than 0 and 1, a near
    pair whose gap lies between ln 2 and 2 with a cosine above 0.99) tells each wrong verdict apart."""
    from hidden_cases import first_difference

    ex = X.get("03.5")
    cases = ex.hidden(seed)
    assert first_difference(ex, ex.reference, cases) is None
    let_through = [name for name, wrong in ex.mutants().items() if first_difference(ex, wrong, cases) is None]
    assert not let_through, let_through
