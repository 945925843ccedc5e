"""Notebook 01: the grading cases drawn from a seed accept the reference and reject the mutants; the
cases 01.4 and 01.7 added in review round 3 (the per-word cache, the Python int) hold in the hidden draw too."""
from __future__ import annotations

import pytest

from cnclip_edu.course import exercises as X
from cnclip_edu.course.exercises.compare import default_compare

IDS = [i for i in X.all_ids() if i.startswith("01.") and X.get(i).hidden is not None]


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


@pytest.mark.parametrize("exercise_id, mutant", [
    ("01.4", "没有缓存：每次遇到同一个词都重新切"),
    ("01.4", "按整条文本缓存（文本几乎不重复，词才重复）"),
    ("01.4", "缓存放在函数外面，换了词表还用旧的 id"),
    ("01.7", "返回了 numpy 的整数 (numpy.int64)，不是 Python int"),
    ("01.7", "用 > 而不是 ≥：q·N 正好是整数时多放了一条"),
])
def test_hidden_cases_catch_the_review_mutants(exercise_id, mutant):
    ex = X.get(exercise_id)
    for seed in (0, 1, 2):
        assert _run(ex, ex.mutants()[mutant], ex.hidden(seed)) is not None, (mutant, seed)
