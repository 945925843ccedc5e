"""Notebooks 04 and 05: the grading cases drawn from a seed accept the reference and reject the mutants,
and an answer that only calls the library routine the exercise builds is refused (`tripwire.py`)."""
from __future__ import annotations

import pytest
import torch

from cnclip_edu.course import exercises as X
from cnclip_edu.course.exercises.compare import default_compare

IDS = [i for i in X.all_ids() if i[:2] in ("04", "05") and X.get(i).hidden is not None]


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
    caught, needed = 0, len(ex.mutants()) // 2
    for name, wrong in ex.mutants().items():
        if caught >= needed:  # what this test asserts is proven; the rest would only cost time (05.3 spawns)
            break
        try:
            caught += _run(ex, wrong, ex.hidden(0)) is not None
        except Exception:
            caught += 1
    assert caught >= needed, f"{exercise_id}: hidden cases catch only {caught} mutants"


def test_the_library_loss_is_not_an_answer_to_04_1():
    from cnclip_edu.loss import ClipLoss

    with pytest.raises(X.ExerciseFailed, match="调用了库里"):
        X.check("04.1", ClipLoss())
    with pytest.raises(X.ExerciseFailed, match="调用了库里"):
        X.check("04.1", lambda i, t, s: ClipLoss()(i, t, s))


def test_the_library_accumulation_is_not_an_answer_to_04_2():
    from cnclip_edu.train.accumulate import accumulated_step

    def lazy(model, micro, loss_fn):
        model.zero_grad()
        return accumulated_step(model, micro, loss_fn)[0]

    with pytest.raises(X.ExerciseFailed, match="调用了库里"):
        X.check("04.2", lazy)
    X.check("04.2", X.get("04.2").reference)  # the routine is armed again afterwards


def test_hidden_04_2_cases_require_the_feature_cache():
    """The mutants with exact gradients but no memory saving (one graph for all K micro-batches, the
    concatenated batch, a first pass that builds graphs) are refused by the grading cases too."""
    ex = X.get("04.2")
    cache_free = {k: m for k, m in ex.mutants().items() if "梯度对" in k or "根本没有累积" in k}
    assert len(cache_free) == 3, list(cache_free)
    for seed in (0, 1):
        for name, wrong in cache_free.items():
            assert _run(ex, wrong, ex.hidden(seed)) is not None, f"seed {seed}: {name} passed"


def test_the_reference_imported_by_notebook_04_is_not_an_answer_to_04_4():
    from cnclip_edu.course.exercises.nb04 import local_rank_loss

    with pytest.raises(X.ExerciseFailed, match="调用了库里"):
        X.check("04.4", lambda *args: local_rank_loss(*args))
    X.check("04.4", X.get("04.4").reference)  # armed again afterwards
