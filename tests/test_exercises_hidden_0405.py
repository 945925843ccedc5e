"""Notebooks 04 and 05: an answer that only calls the library routine the exercise builds is refused
(`tripwire.py`), and 04.2's hidden cases require the feature cache. Every exercise's grading cases:
test_exercises_hidden.py."""
from __future__ import annotations

import pytest
import torch

from cnclip_edu.course import exercises as X
from hidden_cases import first_difference as _run


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


def test_hidden_05_3_cases_require_both_base64_alphabets():
    """A Dataset that decodes with plain `b64decode` (silently dropping the URL-safe '-' and '_', as
    05.1 teaches) is refused by the grading case built from a URL-safe TSV, for every seed."""
    ex = X.get("05.3")
    wrong = [m for name, m in ex.mutants().items() if "URL 安全" in name]
    assert len(wrong) == 1
    for seed in (0, 1):
        cases = [c for c in ex.hidden(seed) if "URL 安全" in c.label]
        assert len(cases) == 1, [c.label for c in ex.hidden(seed)]
        assert _run(ex, ex.reference, cases) is None
        assert _run(ex, wrong[0], cases) is not None, f"seed {seed}: the standard-alphabet decode passed"
