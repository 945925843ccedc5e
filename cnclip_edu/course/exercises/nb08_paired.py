"""Exercise 08.4 of notebook 08 (zero-shot classification): a paired comparison of two classifiers.

08.4 (the analytic half: is a difference beyond noise?) is compared with `eval.paired.paired_gap` on
boolean "right / wrong" arrays for two classifiers graded on the same images, built so that each mistake
shows: many images both get right (an unpaired or sqrt(N) standard error differs), a difference of
exactly two standard errors with m >= 10 disagreeing images (`>=` instead of `>`; the tie sits where the
notebook uses the student's `beyond`, not at m < 10 where the exact sign test decides), a classifier that is worse (a missing abs or a
reversed sign), and two identical classifiers (no disagreeing image: standard error 0).
"""
from __future__ import annotations

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 08.4 paired comparison
def _library_paired(ok_base, ok_other):
    from cnclip_edu.eval.paired import paired_gap

    return paired_gap(ok_base, ok_other)


def _paired_arrays(both: int, neither: int, only_base: int, only_other: int, seed: int):
    """(N,) booleans for base and other: `both` images right under both, ... , in a shuffled order."""
    import numpy as np

    rows = [(1, 1)] * both + [(0, 0)] * neither + [(1, 0)] * only_base + [(0, 1)] * only_other
    rows = np.array(rows, dtype=bool).reshape(-1, 2)
    rows = rows[np.random.default_rng(seed).permutation(len(rows))]
    return rows[:, 0].copy(), rows[:, 1].copy()


def _paired_run(f, counts, seed):
    """The answer on one pair of arrays -> (difference, standard error, beyond two SE) as plain numbers."""
    result = f(*_paired_arrays(*counts, seed))
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        return f"应当返回 (差几张, 标准误, 是否超出两个标准误) 三个值，得到 {result!r}"
    d, se, beyond = result
    return float(d), float(se), bool(beyond)


_PAIRED_CASES = [  # (label, (both right, both wrong, only base right, only other right))
    ("200 张图，150 张两边都对；other 多对 7 张，只有 9 张图两边不同", (150, 41, 1, 8)),
    ("140 张图；16 张图两边不同，other 多对 8 张：差正好是两个标准误", (100, 24, 4, 12)),
    ("60 张图；other 少对 5 张（更差），5 张图两边不同", (40, 15, 5, 0)),
    ("30 张图，两个分类器每张图的对错完全一样", (20, 10, 0, 0)),
    ("320 张图；两边各有十几张独有的对，差在噪声以内", (250, 40, 14, 16)),
]


def _paired_cases():
    return [Case(label, lambda f, c=c, s=i: _paired_run(f, c, s)) for i, (label, c) in enumerate(_PAIRED_CASES)]


def _paired_hidden(seed: int):
    import random

    rng = random.Random(seed)
    k = rng.randint(2, 4)            # m = 4k^2 = 16, 36 or 64 disagreeing images: m >= 10
    runs = [("一边明显更好", (rng.randint(50, 200), rng.randint(5, 40), rng.randint(0, 2), rng.randint(12, 25))),
            ("一边明显更差", (rng.randint(50, 200), rng.randint(5, 40), rng.randint(12, 25), rng.randint(0, 2))),
            # a = 2k^2 + 2k right only under one, b = 2k^2 - 2k only under the other: |a - b| = 4k = 2 sqrt(a + b)
            ("差正好是两个标准误", (rng.randint(10, 80), rng.randint(0, 10)) + tuple(
                sorted((2 * k * k + 2 * k, 2 * k * k - 2 * k), reverse=rng.random() < 0.5))),
            ("两边差不多", (rng.randint(100, 300), rng.randint(10, 50), rng.randint(8, 15), rng.randint(8, 15))),
            ("两边完全一样", (rng.randint(5, 60), rng.randint(0, 30), 0, 0))]
    return [Case(kind, lambda f, c=c, s=rng.randrange(10 ** 6): _paired_run(f, c, s)) for kind, c in runs]


def _paired_mistake(kind: str):
    def paired_gap(ok_base, ok_other):
        import numpy as np

        ok_base, ok_other = np.asarray(ok_base, dtype=bool), np.asarray(ok_other, dtype=bool)
        n = len(ok_base)
        d = int(ok_other.sum()) - int(ok_base.sum())
        if kind == "reversed":
            d = -d
        m = int(np.sum(ok_base != ok_other))
        if kind == "one_way":
            m = int(np.sum(ok_other & ~ok_base))
        se = float(np.sqrt(m))
        if kind == "sqrt_n":
            se = float(np.sqrt(n))
        elif kind == "unpaired":
            p, q = ok_base.mean(), ok_other.mean()
            se = float(np.sqrt(n * p * (1 - p) + n * q * (1 - q)))
        elif kind == "m_not_sqrt":
            se = float(m)
        if kind == "fraction":
            d = d / n
        beyond = abs(d) > 2 * se
        if kind == "geq":
            beyond = abs(d) >= 2 * se
        elif kind == "no_abs":
            beyond = d > 2 * se
        return d, se, beyond
    return paired_gap


register(Exercise(
    id="08.4", title="配对比较：两个分类器在同一批图上的差，超出噪声了吗", points=2,
    hint="两边都对、两边都错的图对差没有贡献；差只来自一边对、一边错的那些图。假设两个分类器一样好，"
         "这样的每张图是 +1 还是 -1 各占一半，m 张图的和的方差是 m。差要超过两个标准误（严格大于）才算超出噪声，"
         "变好、变差都算。",
    reference=_library_paired,
    cases=_paired_cases,
    hidden=_paired_hidden,
    builds=("cnclip_edu.eval.paired.paired_gap",),
    mutants=lambda: {
        "差的方向反了（base 减 other）": _paired_mistake("reversed"),
        "标准误用了全部图片数 √N": _paired_mistake("sqrt_n"),
        "当成两组独立的图（两个二项分布的标准误）": _paired_mistake("unpaired"),
        "只数了 other 对、base 错的图": _paired_mistake("one_way"),
        "标准误写成了 m 而不是 √m": _paired_mistake("m_not_sqrt"),
        "差写成了比例而不是张数": _paired_mistake("fraction"),
        "超出两个标准误用了 >=（正好两个标准误也算超出）": _paired_mistake("geq"),
        "忘了取绝对值（变差的永远不算超出）": _paired_mistake("no_abs"),
    },
))
