"""Notebook 00: exercise 00.3's fake world refuses a caption that is not in the training phrasing
and a render number outside the rounds (the grading cases of every exercise: test_exercises_hidden.py), and its tie cases really tie."""
from __future__ import annotations

import pytest

from cnclip_edu.course import exercises as X


def test_probe_rank_refuses_a_caption_outside_the_training_phrasing():
    ex = X.get("00.3")
    with pytest.raises(X.ExerciseFailed) as err:
        X.check("00.3", ex.mutants()["描述没有用训练数据的句式"])
    assert "不是训练数据的句式" in str(err.value)


def test_probe_rank_tie_cases_really_tie():
    """The tie cases must give captions exactly the right one's probability (a rounding difference would
    turn the tie into a plain order and let `(p >= p[0]).sum()` through): the right caption keeps the
    rank the case asks for in every round, with `ties` others equal to it."""
    from cnclip_edu.course.exercises import nb00_probe as nb00
    from cnclip_edu.eval.hard_negatives import probe_rank

    for n, ranks, seed, ties in [(5, [2, 1], 3, [2, 3]), (3, [1], 0, [2]), (8, [4, 1, 2], 7, [4, 1, 0]), (6, [1], 11, [1])]:
        table = nb00._probe_table(n, ranks, seed, ties)
        for k, t in enumerate(ties):
            row = table[0, k].softmax(dim=-1)
            assert int((row == row[0]).sum()) == t + 1, (n, ranks, seed, ties, row)
        combos = [("红色", s) for s in ["圆形", "正方形", "三角形", "五角星", "十字", "菱形", "a", "b"][:n]]
        draw, logits_of = nb00._fake_world(combos, table)
        assert probe_rank(combos, draw, logits_of, len(ranks))[1] == ranks
    for seed in range(5):   # every hidden draw's first case holds a tie
        assert "一样高" in nb00._probe_hidden(seed)[0].label


def test_probe_rank_fake_world_refuses_a_render_outside_the_rounds():
    from cnclip_edu.course.exercises import nb00_probe as nb00

    draw, _ = nb00._fake_world([("红色", "圆形"), ("红色", "菱形")], nb00._probe_table(2, [1, 2], 0))
    with pytest.raises(ValueError, match="第几轮"):
        draw("红色", "圆形", 2)
