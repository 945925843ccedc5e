"""Notebook 01: the mutants of 01.4 and 01.7 added in review round 3 (the per-word cache, the Python int)
are rejected by the hidden draw of several seeds too (every exercise's grading cases: test_exercises_hidden.py)."""
from __future__ import annotations

import pytest

from cnclip_edu.course import exercises as X
from hidden_cases import first_difference as _run


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
